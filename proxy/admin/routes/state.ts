import type { FastifyPluginAsync } from 'fastify';
import { StoreUnavailableError } from '../../state/store.js';
import type { SwitchRecord } from '../../state/switch-record.js';
import { ADMIN_ERRORS } from '../errors.js';
import { integerParam, readParams } from '../params.js';

export interface StateRoutesOptions {
  /**
   * The body of GET /admin/status; built from memory only, never waits on a
   * slot (with workers, it asks them over IPC, with a timeout).
   */
  status: () => object | Promise<object>;
  history: (limit: number) => Promise<SwitchRecord[]>;
}

const HISTORY_DEFAULT = 50;
const HISTORY_MAX = 1000;

/** GET /admin/status and GET /admin/history: what the proxy applies and how it came to. */
export const stateRoutes: FastifyPluginAsync<StateRoutesOptions> = async (app, options) => {
  app.get('/admin/status', async (request) => {
    readParams(request, []);
    return options.status();
  });

  app.get('/admin/history', async (request) => {
    const params = readParams(request, ['limit']);
    const limit =
      params.limit === undefined
        ? HISTORY_DEFAULT
        : integerParam('limit', params.limit, { min: 1, max: HISTORY_MAX });
    try {
      return { history: await options.history(limit) };
    } catch (error) {
      if (error instanceof StoreUnavailableError) {
        throw ADMIN_ERRORS.historyUnavailable.create(error.message);
      }
      throw error;
    }
  });
};

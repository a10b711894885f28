import type { FastifyPluginAsync } from 'fastify';
import { readParams } from '../params.js';

/** Prometheus exposition, as a prom-client Registry provides it. */
export interface MetricsSource {
  readonly contentType: string;
  metrics(): Promise<string>;
}

export interface OperationsRoutesOptions {
  metrics: MetricsSource;
}

/** GET /metrics and GET /healthz: for Prometheus and the supervisor, without a key. */
export const operationsRoutes: FastifyPluginAsync<OperationsRoutesOptions> = async (
  app,
  options,
) => {
  app.get('/metrics', async (request, reply) => {
    readParams(request, []);
    const text = await options.metrics.metrics();
    return reply.type(options.metrics.contentType).send(text);
  });

  app.get('/healthz', async (request) => {
    readParams(request, []);
    return { status: 'ok' };
  });
};

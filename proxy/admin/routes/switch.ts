import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Slot } from '../../../common/slot.js';
import { ADMIN_ERRORS } from '../errors.js';
import { shownGateResult } from '../health-gate.js';
import { booleanParam, integerParam, readParams, slotParam, type Params } from '../params.js';
import type {
  SwitchOutcome,
  SwitchRefusal,
  SwitchRequest,
  SwitchService,
} from '../switch-service.js';

export interface SwitchRoutesOptions {
  switches: Pick<SwitchService, 'switch' | 'rollback'>;
}

/** POST /admin/switch and POST /admin/rollback: moving traffic. */
export const switchRoutes: FastifyPluginAsync<SwitchRoutesOptions> = async (app, options) => {
  const { switches } = options;

  app.post('/admin/switch', async (request, reply) => {
    const params = readParams(request, ['slot', 'force', 'expect_epoch']);
    const slot = slotParam(params.slot);
    const outcome = await switches.switch(slot, switchRequest(request, params));
    return sendOutcome(reply, outcome, slot);
  });

  app.post('/admin/rollback', async (request, reply) => {
    const params = readParams(request, ['force', 'expect_epoch']);
    const outcome = await switches.rollback(switchRequest(request, params));
    return sendOutcome(reply, outcome, outcome.ok ? outcome.state.active : undefined);
  });
};

const REFUSALS = {
  store_unavailable: ADMIN_ERRORS.storeUnavailable,
  epoch_conflict: ADMIN_ERRORS.epochConflict,
  target_unhealthy: ADMIN_ERRORS.targetUnhealthy,
  no_previous_slot: ADMIN_ERRORS.noPreviousSlot,
} satisfies Record<SwitchRefusal, { create(why: string): Error }>;

const ACTOR = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;

function sendOutcome(reply: FastifyReply, outcome: SwitchOutcome, slot: Slot | undefined) {
  if (outcome.ok) {
    const { active, previous, epoch, switched_at } = outcome.state;
    return reply.send({ active, previous, epoch, changed: outcome.changed, switched_at });
  }
  const details: Record<string, unknown> = {};
  if (slot) details.slot = slot;
  if (outcome.state) {
    details.active = outcome.state.active;
    details.epoch = outcome.state.epoch;
  }
  if (outcome.health) details.health = shownGateResult(outcome.health);
  throw REFUSALS[outcome.error].create(outcome.message).with({ details });
}

function switchRequest(request: FastifyRequest, params: Params): SwitchRequest {
  const out: SwitchRequest = { actor: actorOf(request) };
  if (params.force !== undefined) out.force = booleanParam('force', params.force);
  if (params.expect_epoch !== undefined) {
    out.expectEpoch = integerParam('expect_epoch', params.expect_epoch, {
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
    });
  }
  return out;
}

/** X-Actor names who switched in the audit history; `api` when absent. */
function actorOf(request: FastifyRequest): string {
  const header = request.headers['x-actor'];
  if (header === undefined || header === '') return 'api';
  if (typeof header !== 'string' || !ACTOR.test(header)) throw ADMIN_ERRORS.actorInvalid.create();
  return header;
}

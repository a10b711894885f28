import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { allowOnly } from '../http-methods.js';
import { HttpProblem, unsupportedMediaType, validationProblem } from '../problem.js';
import { eventIri, eventToJsonLd, eventTombstone } from './json-ld.js';
import type { EventRepository } from './repository.js';
import {
  DEFAULT_PAGE_SIZE,
  encodeCursor,
  eventInputSchema,
  isEventId,
  listQuerySchema,
} from './schemas.js';

export const JSON_LD_CONTENT_TYPE = 'application/ld+json; charset=utf-8';

export interface EventRoutesDeps {
  events: EventRepository;
  /** onRequest hook letting only admins through. */
  requireAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** Scheme and host of @id values, without a trailing slash. */
  baseUrl: (request: FastifyRequest) => string;
}

const COLLECTION = '/api/v1/events';
const ITEM = '/api/v1/events/:id';

/** The events API: create and delete for admins, list and read for everyone. */
export function registerEventRoutes(app: FastifyInstance, deps: EventRoutesDeps): void {
  const { events } = deps;

  app.post(COLLECTION, { onRequest: deps.requireAdmin }, async (request, reply) => {
    // No body and no Content-Type reaches here with body undefined.
    if (request.body === undefined) throw unsupportedMediaType(request);
    const parsed = eventInputSchema.safeParse(request.body);
    if (!parsed.success) throw validationProblem(parsed.error, 'body');
    const created = await events.create(parsed.data);
    const base = deps.baseUrl(request);
    request.log.info({ event_id: created.id }, 'event created');
    return reply
      .code(201)
      .header('location', eventIri(base, created.id))
      .type(JSON_LD_CONTENT_TYPE)
      .send(eventToJsonLd(created, base));
  });

  app.get(COLLECTION, async (request, reply) => {
    const parsed = listQuerySchema.safeParse(request.query);
    if (!parsed.success) throw validationProblem(parsed.error, 'query');
    const query = parsed.data;
    const page = await events.list(
      { from: query.start_date, to: query.end_date, text: query.q },
      query.limit ?? DEFAULT_PAGE_SIZE,
      query.cursor,
    );
    const base = deps.baseUrl(request);
    return reply.send({
      items: page.items.map((e) => eventToJsonLd(e, base)),
      next_cursor: page.next ? encodeCursor(page.next) : null,
    });
  });

  app.get<{ Params: { id: string } }>(ITEM, async (request, reply) => {
    const event = await findOrThrow(events, request.params.id);
    const base = deps.baseUrl(request);
    if (event.deleted_at) {
      return reply
        .code(410)
        .type(JSON_LD_CONTENT_TYPE)
        .send(eventTombstone({ ...event, deleted_at: event.deleted_at }, base));
    }
    return reply.type(JSON_LD_CONTENT_TYPE).send(eventToJsonLd(event, base));
  });

  app.delete<{ Params: { id: string } }>(
    ITEM,
    { onRequest: deps.requireAdmin },
    async (request, reply) => {
      const id = request.params.id;
      const result = isEventId(id) ? await events.remove(id) : 'missing';
      if (result === 'missing') throw notFound(id);
      if (result === 'already_deleted')
        throw new HttpProblem(410, `event ${id} was already deleted`);
      request.log.info({ event_id: id }, 'event deleted');
      return reply.code(204).send();
    },
  );

  allowOnly(app, COLLECTION, ['GET', 'POST']);
  allowOnly(app, ITEM, ['GET', 'DELETE']);
}

async function findOrThrow(events: EventRepository, id: string) {
  const event = isEventId(id) ? await events.find(id) : undefined;
  if (!event) throw notFound(id);
  return event;
}

function notFound(id: string): HttpProblem {
  // Only a well-formed id is echoed back.
  return new HttpProblem(404, isEventId(id) ? `no event with id ${id}` : 'no such event');
}

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { allowOnly } from '../http-methods.js';
import { HttpProblem, problemResponse, requireBody } from '../problem.js';
import { idParams, isResourceId } from './fields.js';
import { itemIri, JSON_LD_CONTENT_TYPE, tombstone } from './json-ld.js';
import { DEFAULT_PAGE_SIZE, encodeCursor, type Paging } from './pagination.js';
import { InvalidReference, type ResourceRepository } from './repository.js';
import type { StoredRow } from './table.js';

/** One JSON-LD collection of the API: what differs between events, places and organizations. */
export interface ResourceDefinition<R extends StoredRow, Input, Query extends Paging> {
  /** The schema.org type. */
  type: string;
  /** In messages and log fields: "event". */
  noun: string;
  /** The collection, e.g. /api/v1/events; items are <path>/:id. */
  path: string;
  /** OpenAPI tag. */
  tag: string;
  /** The body of POST and PUT. */
  input: z.ZodType<Input>;
  /** The query of the list. */
  query: z.ZodType<Query>;
  /** The item as answered (documentation). */
  itemSchema: z.ZodType;
  /** The tombstone of a deleted item (documentation). */
  tombstoneSchema: z.ZodType;
  toJsonLd(row: R, iri: string, baseUrl: string): object;
  /** Fields a tombstone adds (an event's eventStatus). */
  tombstoneExtra?: Record<string, unknown>;
  /**
   * The list also answers its items as `items`, the name the events list
   * had before `data`: blue and green run different releases during a
   * cutover, so old clients keep working for one release.
   */
  legacyItemsField?: boolean;
}

export interface ResourceRoutesDeps<R extends StoredRow, Input, Query extends Paging> {
  repository: ResourceRepository<R, Input, Query>;
  /** onRequest hook letting only admins through. */
  requireAdmin: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** Scheme and host of @id values, without a trailing slash. */
  baseUrl: (request: FastifyRequest) => string;
}

type ItemRequest = FastifyRequest<{ Params: { id: string } }>;

const SECURITY = [{ bearerAuth: [] }];
const CONSUMES = ['application/json', 'application/ld+json'];

/**
 * The five routes of a collection: list and read for everyone; create,
 * replace and delete (a tombstone: the IRI answers 410 afterwards) for
 * admins. Bodies and queries are validated by the route schemas, which the
 * OpenAPI document is generated from.
 */
export function registerResourceRoutes<R extends StoredRow, Input, Query extends Paging>(
  app: FastifyInstance,
  definition: ResourceDefinition<R, Input, Query>,
  deps: ResourceRoutesDeps<R, Input, Query>,
): void {
  const { path, noun } = definition;
  const { repository } = deps;
  const item = `${path}/:id`;
  const iri = (request: FastifyRequest, id: string) => itemIri(deps.baseUrl(request), path, id);
  const jsonLd = (request: FastifyRequest, row: R) =>
    definition.toJsonLd(row, iri(request, row.id), deps.baseUrl(request));
  const ld = (description: string, schema: z.ZodType) => ({
    description,
    content: { 'application/ld+json': { schema } },
  });
  const notFound = (id: string) =>
    // Only a well-formed id is echoed back.
    new HttpProblem(404, isResourceId(id) ? `no ${noun} with id ${id}` : `no such ${noun}`);
  const gone = (id: string) => new HttpProblem(410, `${noun} ${id} was deleted`);
  const written = async <T>(write: () => Promise<T>): Promise<T> => {
    try {
      return await write();
    } catch (error) {
      if (!(error instanceof InvalidReference)) throw error;
      throw new HttpProblem(400, `invalid fields: ${error.field}`, {
        errors: [{ field: error.field, message: error.message }],
      });
    }
  };
  const writeResponses = {
    400: problemResponse('Invalid fields, named in errors'),
    401: problemResponse('Missing, wrong or expired credentials'),
    413: problemResponse('Body larger than 1 MiB'),
    415: problemResponse('Body missing or not JSON'),
  };
  const listSchema = z.object({
    data: z.array(definition.itemSchema),
    ...(definition.legacyItemsField
      ? {
          items: z.array(definition.itemSchema).meta({
            deprecated: true,
            description: 'The same as data, for clients of the previous release',
          }),
        }
      : {}),
    next_cursor: z
      .string()
      .nullable()
      .meta({ description: 'The cursor of the next page; null on the last page' }),
    limit: z.number().int().meta({ description: 'The page size applied' }),
  });

  app.post(
    path,
    {
      onRequest: deps.requireAdmin,
      preValidation: requireBody,
      schema: {
        tags: [definition.tag],
        summary: `Create a ${noun}`,
        security: SECURITY,
        consumes: CONSUMES,
        body: definition.input,
        response: {
          201: ld(`The ${noun} as stored; Location is its IRI`, definition.itemSchema),
          ...writeResponses,
        },
      },
    },
    async (request, reply) => {
      // The route schema validated and parsed the body.
      const created = await written(() => repository.create(request.body as Input));
      request.log.info({ [`${noun}_id`]: created.id }, `${noun} created`);
      return reply
        .code(201)
        .header('location', iri(request, created.id))
        .type(JSON_LD_CONTENT_TYPE)
        .send(jsonLd(request, created));
    },
  );

  app.get(
    path,
    {
      schema: {
        tags: [definition.tag],
        summary: `List ${noun}s`,
        querystring: definition.query,
        response: {
          200: {
            description: `A page of ${noun}s`,
            content: { 'application/json': { schema: listSchema } },
          },
          400: problemResponse('Invalid query parameters, named in errors'),
        },
      },
    },
    async (request, reply) => {
      // The route schema validated and parsed the query.
      const query = request.query as Query;
      const limit = query.limit ?? DEFAULT_PAGE_SIZE;
      const page = await repository.list(query, limit);
      const data = page.items.map((row) => jsonLd(request, row));
      return reply.send({
        data,
        ...(definition.legacyItemsField ? { items: data } : {}),
        next_cursor: page.next ? encodeCursor(page.next) : null,
        limit,
      });
    },
  );

  app.get<{ Params: { id: string } }>(
    item,
    {
      schema: {
        tags: [definition.tag],
        summary: `Read a ${noun}`,
        params: idParams,
        response: {
          200: ld(`The ${noun}`, definition.itemSchema),
          404: problemResponse(`No such ${noun}`),
          410: ld(`The ${noun} was deleted: its tombstone`, definition.tombstoneSchema),
        },
      },
    },
    async (request: ItemRequest, reply) => {
      const id = request.params.id;
      const row = isResourceId(id) ? await repository.find(id) : undefined;
      if (!row) throw notFound(id);
      reply.type(JSON_LD_CONTENT_TYPE);
      if (row.deleted_at) {
        const deleted = { ...row, deleted_at: row.deleted_at };
        return reply
          .code(410)
          .send(tombstone(definition.type, iri(request, id), deleted, definition.tombstoneExtra));
      }
      return reply.send(jsonLd(request, row));
    },
  );

  app.put<{ Params: { id: string } }>(
    item,
    {
      onRequest: deps.requireAdmin,
      preValidation: requireBody,
      schema: {
        tags: [definition.tag],
        summary: `Replace a ${noun}: every field not sent is cleared`,
        security: SECURITY,
        consumes: CONSUMES,
        params: idParams,
        body: definition.input,
        response: {
          200: ld(`The ${noun} as stored now`, definition.itemSchema),
          ...writeResponses,
          404: problemResponse(`No such ${noun}`),
          410: problemResponse(`The ${noun} was deleted`),
        },
      },
    },
    async (request: ItemRequest, reply) => {
      const id = request.params.id;
      const result = isResourceId(id)
        ? await written(() => repository.replace(id, request.body as Input))
        : 'missing';
      if (result === 'missing') throw notFound(id);
      if (result === 'deleted') throw gone(id);
      request.log.info({ [`${noun}_id`]: id }, `${noun} replaced`);
      return reply.type(JSON_LD_CONTENT_TYPE).send(jsonLd(request, result));
    },
  );

  app.delete<{ Params: { id: string } }>(
    item,
    {
      onRequest: deps.requireAdmin,
      schema: {
        tags: [definition.tag],
        summary: `Delete a ${noun}: its IRI answers 410 with a tombstone afterwards`,
        security: SECURITY,
        params: idParams,
        response: {
          204: { description: 'Deleted' },
          401: writeResponses[401],
          404: problemResponse(`No such ${noun}`),
          410: problemResponse(`The ${noun} was already deleted`),
        },
      },
    },
    async (request: ItemRequest, reply) => {
      const id = request.params.id;
      const result = isResourceId(id) ? await repository.remove(id) : 'missing';
      if (result === 'missing') throw notFound(id);
      if (result === 'already_deleted') {
        throw new HttpProblem(410, `${noun} ${id} was already deleted`);
      }
      request.log.info({ [`${noun}_id`]: id }, `${noun} deleted`);
      return reply.code(204).send();
    },
  );

  allowOnly(app, path, ['GET', 'POST']);
  allowOnly(app, item, ['GET', 'PUT', 'DELETE']);
}

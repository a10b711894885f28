import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { z } from 'zod';
import type { BuildInfo } from '../common/build-info.js';
import { allowOnly } from './http-methods.js';

export const OPENAPI_PATHS = ['/openapi.json', '/api/v1/openapi.json'] as const;

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), without its $schema. */
function toJsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  return rest;
}

function converted(schema: unknown, io: 'input' | 'output'): unknown {
  return schema instanceof z.ZodType ? toJsonSchema(schema, io) : schema;
}

/** A response of a route schema: a zod schema, or {description, content: {type: {schema}}}. */
function convertedResponse(response: unknown): unknown {
  if (response instanceof z.ZodType) return toJsonSchema(response, 'output');
  if (typeof response !== 'object' || response === null) return response;
  const { content, ...rest } = response as { content?: Record<string, { schema?: unknown }> };
  if (!content) return response;
  const types = Object.entries(content).map(([type, media]) => [
    type,
    { ...media, schema: converted(media.schema, 'output') },
  ]);
  return { ...rest, content: Object.fromEntries(types) };
}

/** @fastify/swagger's transform: the zod schemas of a route as the JSON Schemas of the document. */
function routeSchemaToJsonSchema({ schema, url }: { schema: FastifySchema; url: string }) {
  if (!schema) return { schema, url };
  const out: Record<string, unknown> = { ...schema };
  for (const part of ['body', 'querystring', 'params', 'headers'] as const) {
    if (schema[part] !== undefined) out[part] = converted(schema[part], 'input');
  }
  if (schema.response) {
    const responses = Object.entries(schema.response as Record<string, unknown>);
    out.response = Object.fromEntries(responses.map(([code, r]) => [code, convertedResponse(r)]));
  }
  return { schema: out as FastifySchema, url };
}

/**
 * Route schemas are zod schemas: the validator compiler parses with them
 * (so a handler gets the parsed value, dates as Date), and the OpenAPI
 * document is generated from the same schemas. Response schemas document
 * only: answers are serialized as they are, never filtered by a schema.
 */
export function registerSchemaCompilers(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, url }) => {
    if (!(schema instanceof z.ZodType)) {
      throw new Error(`route ${url}: request schemas must be zod schemas`);
    }
    return (data: unknown) => {
      const result = schema.safeParse(data);
      return result.success ? { value: result.data } : { error: result.error };
    };
  });
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}

/** @fastify/swagger, collecting every route registered after it (register the routes in a plugin). */
export function registerOpenApiGenerator(app: FastifyInstance, build: BuildInfo): void {
  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Togather SEL API',
        version: build.version,
        description:
          'The Shared Events Library: events, places and organizations as schema.org JSON-LD, and the operational routes of one app slot.',
      },
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'The ADMIN_API_KEY, or a JWT from POST /api/v1/admin/login',
          },
        },
      },
    },
    transform: routeSchemaToJsonSchema,
  });
}

/** GET /openapi.json and /api/v1/openapi.json: the document, generated once at first use. */
export function registerOpenApiRoutes(app: FastifyInstance): void {
  for (const path of OPENAPI_PATHS) {
    app.get(
      path,
      {
        schema: {
          tags: ['Operations'],
          summary: 'This OpenAPI 3.1 document',
          response: { 200: { description: 'The OpenAPI document', type: 'object' } },
        },
      },
      async (_request, reply) => reply.header('cache-control', 'no-cache').send(app.swagger()),
    );
    allowOnly(app, path, ['GET']);
  }
}

/**
 * A JSON Schema with its local `#/$defs/...` references replaced by what
 * they point to, and without $schema, $id and $defs: fit to be embedded in
 * the OpenAPI document, where those would resolve against the document.
 */
export function embeddableJsonSchema(schema: JsonSchema): JsonSchema {
  const defs = (schema.$defs ?? {}) as Record<string, unknown>;
  const inline = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(inline);
    if (typeof node !== 'object' || node === null) return node;
    const ref = (node as { $ref?: unknown }).$ref;
    if (typeof ref === 'string' && ref.startsWith('#/$defs/')) {
      const target = defs[ref.slice('#/$defs/'.length)];
      if (target === undefined) throw new Error(`unresolved reference ${ref}`);
      return inline(target);
    }
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, inline(v)]));
  };
  const { $schema: _dialect, $id: _id, $defs: _defs, ...rest } = schema;
  return inline(rest) as JsonSchema;
}

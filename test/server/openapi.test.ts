import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, call, appBefore } from '../support/server.js';

interface Operation {
  responses: Record<string, { description: string; content?: Record<string, { schema: object }> }>;
  security?: unknown[];
}
interface Document {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
}

let doc: Document;
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
const tested = appBefore();

beforeAll(async () => {
  doc = (await call(`${tested.url}/openapi.json`)).body as Document;
});

/** The routes Fastify has, from its own route tree: `├── /path (GET, HEAD, ...)`, children indented. */
function registeredRoutes(): Array<{ path: string; method: string }> {
  const routes: Array<{ path: string; method: string }> = [];
  const prefixes: string[] = [];
  for (const line of tested.server.app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^(.*?)── (\S+) \(([A-Z, ]+)\)$/.exec(line);
    if (!match) continue;
    // "├" at the root, "│   └" one level down.
    const depth = (match[1]!.length - 1) / 4;
    prefixes.length = depth;
    const path = prefixes.join('') + match[2]!;
    prefixes.push(match[2]!);
    for (const method of match[3]!.split(', ')) routes.push({ path, method });
  }
  return routes;
}

/** Asserts that an answer is what the document says this operation answers. */
function expectDocumented(
  path: string,
  method: string,
  result: { status: number; headers: Headers; body: unknown },
) {
  const response = doc.paths[path]?.[method]?.responses[String(result.status)];
  expect(response, `${method} ${path} documents ${result.status}`).toBeDefined();
  const type = (result.headers.get('content-type') ?? '').split(';')[0]!;
  if (result.status === 204) return;
  const media = response!.content?.[type];
  expect(media, `${method} ${path} ${result.status} documents ${type}`).toBeDefined();
  const validate = ajv.compile(media!.schema);
  expect(validate(result.body), JSON.stringify(validate.errors)).toBe(true);
}

describe('the OpenAPI document', () => {
  it('is served at /openapi.json and /api/v1/openapi.json, and is valid OpenAPI 3.1', async () => {
    const root = await call(`${tested.url}/openapi.json`);
    const api = await call(`${tested.url}/api/v1/openapi.json`);
    expect(root.status).toBe(200);
    expect(root.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(api.status).toBe(200);
    expect(api.body).toEqual(root.body);
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: 'Togather SEL API' });
    // Throws, naming what is wrong, for an invalid document.
    await SwaggerParser.validate(structuredClone(doc) as never);
  });

  it('lists every route of the app', async () => {
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
      ),
    );
    const missing: string[] = [];
    for (const { path, method } of registeredRoutes()) {
      // HEAD and OPTIONS are implied; '*' is @fastify/cors's preflight route.
      if (method === 'HEAD' || method === 'OPTIONS' || path === '*') continue;
      // /metrics is internal (Prometheus text), never part of the API.
      if (path === '/metrics') continue;
      if (documented.has(`${method} ${path}`)) continue;
      // The rest must be the 405 answers that complete a documented path.
      const url = `${tested.url}${path.replace(':id', '00000000-0000-4000-8000-000000000000')}`;
      const result = await call(url, { method });
      if (result.status !== 405) missing.push(`${method} ${path} (answers ${result.status})`);
    }
    expect(missing).toEqual([]);
    expect([...documented].sort()).toEqual(
      [
        'GET /health',
        'GET /healthz',
        'GET /readyz',
        'GET /version',
        'GET /openapi.json',
        'GET /api/v1/openapi.json',
        'GET /admin/login',
        'POST /api/v1/admin/login',
        ...['events', 'places', 'organizations'].flatMap((c) => [
          `GET /api/v1/${c}`,
          `POST /api/v1/${c}`,
          `GET /api/v1/${c}/:id`,
          `PUT /api/v1/${c}/:id`,
          `DELETE /api/v1/${c}/:id`,
        ]),
      ].sort(),
    );
  });

  it('marks the writes as needing the bearer token, and the reads as public', () => {
    for (const collection of ['events', 'places', 'organizations']) {
      const list = doc.paths[`/api/v1/${collection}`]!;
      const item = doc.paths[`/api/v1/${collection}/{id}`]!;
      expect(list.get!.security).toBeUndefined();
      expect(item.get!.security).toBeUndefined();
      for (const op of [list.post!, item.put!, item.delete!]) {
        expect(op.security).toEqual([{ bearerAuth: [] }]);
      }
    }
  });

  it('describes the real answers: each validates against its documented schema', async () => {
    const places = `${tested.url}/api/v1/places`;
    const created = await call(places, {
      method: 'POST',
      headers: ADMIN,
      json: {
        name: 'Documented Hall',
        address: { streetAddress: '1 Main St', addressCountry: 'CA' },
        geo: { latitude: 43.65, longitude: -79.38 },
      },
    });
    expectDocumented('/api/v1/places', 'post', created);
    const id = (created.body as { identifier: string }).identifier;
    const event = await call(`${tested.url}/api/v1/events`, {
      method: 'POST',
      headers: ADMIN,
      json: { name: 'Documented', startDate: '2031-01-01T10:00:00Z', location: { identifier: id } },
    });
    expectDocumented('/api/v1/events', 'post', event);
    expectDocumented('/api/v1/events', 'get', await call(`${tested.url}/api/v1/events`));
    expectDocumented('/api/v1/places', 'get', await call(`${places}?limit=500`));
    expectDocumented('/api/v1/places/{id}', 'get', await call(`${places}/${id}`));
    expectDocumented(
      '/api/v1/places/{id}',
      'put',
      await call(`${places}/${id}`, { method: 'PUT', headers: ADMIN, json: { name: 'Renamed' } }),
    );
    expectDocumented(
      '/api/v1/places',
      'post',
      await call(places, { method: 'POST', headers: ADMIN, json: {} }),
    );
    expectDocumented('/api/v1/places', 'post', await call(places, { method: 'POST', json: {} }));
    expectDocumented(
      '/api/v1/places/{id}',
      'delete',
      await call(`${places}/${id}`, { method: 'DELETE', headers: ADMIN }),
    );
    expectDocumented('/api/v1/places/{id}', 'get', await call(`${places}/${id}`));
    expectDocumented(
      '/api/v1/organizations/{id}',
      'get',
      await call(`${tested.url}/api/v1/organizations/00000000-0000-4000-8000-000000000000`),
    );
    expectDocumented('/health', 'get', await call(`${tested.url}/health`));
    expectDocumented('/readyz', 'get', await call(`${tested.url}/readyz`));
    expectDocumented('/version', 'get', await call(`${tested.url}/version`));
    expectDocumented('/admin/login', 'get', await call(`${tested.url}/admin/login`));
  });
});

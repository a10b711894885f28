import { beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  call,
  problem,
  pgliteBackend,
  postgresBackend,
  appBefore,
  methodNotAllowed,
} from '../support/server.js';

const PROBLEM = 'application/problem+json; charset=utf-8';
const JSON_LD = 'application/ld+json; charset=utf-8';
const UNKNOWN = '00000000-0000-4000-8000-000000000000';

type Body = Record<string, unknown> & { identifier: string; '@id': string };
interface ListBody {
  data: Body[];
  items?: Body[];
  next_cursor: string | null;
  limit: number;
}

/** What differs between the two new collections in these tests. */
const COLLECTIONS = [
  {
    name: 'places',
    type: 'Place',
    noun: 'place',
    full: {
      name: 'Centennial Park',
      description: 'A park with a bandstand',
      url: 'https://example.org/park',
      telephone: '+1 416 555 0100',
      address: {
        streetAddress: '256 Centennial Park Rd',
        addressLocality: 'Toronto',
        addressRegion: 'ON',
        postalCode: 'M9C 5N3',
        addressCountry: 'CA',
      },
      geo: { latitude: 43.65, longitude: -79.59 },
    },
    answered: (body: Record<string, unknown>) => ({
      ...body,
      address: { '@type': 'PostalAddress', ...(body.address as object) },
      geo: { '@type': 'GeoCoordinates', ...(body.geo as object) },
    }),
    wrongTypes: {
      body: {
        name: 5,
        url: 'ftp://example.org',
        geo: { latitude: '43', longitude: 200 },
        address: {},
      },
      errors: [
        { field: 'name', message: 'must be a string' },
        { field: 'url', message: 'must be an http(s) URL' },
        {
          field: 'address',
          message:
            'must have at least one of streetAddress, addressLocality, addressRegion, postalCode, addressCountry',
        },
        { field: 'geo.latitude', message: 'must be a number from -90 to 90' },
        { field: 'geo.longitude', message: 'must be a number from -180 to 180' },
      ],
    },
  },
  {
    name: 'organizations',
    type: 'Organization',
    noun: 'organization',
    full: {
      name: 'Arts Council',
      description: 'Funds the arts',
      url: 'https://example.org/council',
      email: 'info@example.org',
      telephone: '+1 416 555 0199',
    },
    answered: (body: Record<string, unknown>) => body,
    wrongTypes: {
      body: { name: ['x'], email: 'nobody', telephone: 'call me', description: 7 },
      errors: [
        { field: 'name', message: 'must be a string' },
        { field: 'description', message: 'must be a string' },
        { field: 'email', message: 'must be an email address' },
        {
          field: 'telephone',
          message: 'must be a telephone number (digits, spaces, + ( ) . / -)',
        },
      ],
    },
  },
] as const;

describe.each([
  ['PostgreSQL', postgresBackend],
  ['PGlite', pgliteBackend],
])('places and organizations on %s', (_db, openBackend) => {
  const tested = appBefore({ backend: openBackend });

  describe.each(COLLECTIONS)('/api/v1/$name', (collection) => {
    const base = () => `${tested.url}/api/v1/${collection.name}`;
    const create = async (body: Record<string, unknown>) => {
      const result = await call(base(), { method: 'POST', headers: ADMIN, json: body });
      expect(result.status).toBe(201);
      return result.body as Body;
    };

    it('creates (201, Location, JSON-LD), reads, replaces (PUT), deletes (410 tombstone after)', async () => {
      const created = await call(base(), { method: 'POST', headers: ADMIN, json: collection.full });
      expect(created.status).toBe(201);
      expect(created.headers.get('content-type')).toBe(JSON_LD);
      const body = created.body as Body;
      const iri = `${base()}/${body.identifier}`;
      expect(created.headers.get('location')).toBe(iri);
      expect(body).toEqual({
        '@context': 'https://schema.org',
        '@type': collection.type,
        '@id': iri,
        identifier: body.identifier,
        ...collection.answered(collection.full),
        dateCreated: body.dateCreated,
        dateModified: body.dateModified,
      });
      const read = await call(iri);
      expect(read.status).toBe(200);
      expect(read.headers.get('content-type')).toBe(JSON_LD);
      expect(read.body).toEqual(body);

      // PUT replaces: what is not sent is cleared.
      const replaced = await call(iri, {
        method: 'PUT',
        headers: ADMIN,
        json: { '@type': collection.type, name: 'Renamed' },
      });
      expect(replaced.status).toBe(200);
      expect(replaced.body).toEqual({
        '@context': 'https://schema.org',
        '@type': collection.type,
        '@id': iri,
        identifier: body.identifier,
        name: 'Renamed',
        dateCreated: body.dateCreated,
        dateModified: (replaced.body as Body).dateModified,
      });
      expect((await call(iri)).body).toEqual(replaced.body);

      const deleted = await call(iri, { method: 'DELETE', headers: ADMIN });
      expect(deleted.status).toBe(204);
      expect(deleted.text).toBe('');
      const gone = await call(iri);
      expect(gone.status).toBe(410);
      expect(gone.headers.get('content-type')).toBe(JSON_LD);
      const tombstone = gone.body as Record<string, unknown>;
      expect(tombstone).toEqual({
        '@context': 'https://schema.org',
        '@type': collection.type,
        '@id': iri,
        identifier: body.identifier,
        'sel:tombstone': true,
        'sel:deletedAt': tombstone['sel:deletedAt'],
      });
      expect(Date.parse(tombstone['sel:deletedAt'] as string)).not.toBeNaN();

      const again = await call(iri, { method: 'DELETE', headers: ADMIN });
      expect(again.status).toBe(410);
      expect(again.body).toEqual(
        problem(
          410,
          'Gone',
          `${collection.noun} ${body.identifier} was already deleted`,
          `/api/v1/${collection.name}/${body.identifier}`,
          again.headers.get('x-request-id'),
        ),
      );
      const putGone = await call(iri, { method: 'PUT', headers: ADMIN, json: { name: 'Back' } });
      expect(putGone.status).toBe(410);
      expect(putGone.body).toEqual(
        problem(
          410,
          'Gone',
          `${collection.noun} ${body.identifier} was deleted`,
          `/api/v1/${collection.name}/${body.identifier}`,
          putGone.headers.get('x-request-id'),
        ),
      );
      const listed = (await call(`${base()}?q=Renamed`)).body as ListBody;
      expect(listed.data.map((p) => p.identifier)).not.toContain(body.identifier);
    });

    it('lists as {data, next_cursor, limit} by name, filters by q, pages through every item once', async () => {
      const tag = `list${Math.random().toString(36).slice(2, 8)}`;
      const names = ['Delta', 'alpha', 'Charlie', 'Bravo', 'Echo'].map((n) => `${tag} ${n}`);
      const made = [];
      for (const name of names) made.push(await create({ name }));
      const all = await call(`${base()}?q=${tag}`);
      expect(all.status).toBe(200);
      expect(all.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const body = all.body as ListBody;
      expect(Object.keys(body).sort()).toEqual(['data', 'limit', 'next_cursor']);
      expect(body.limit).toBe(20);
      expect(body.next_cursor).toBeNull();
      expect(body.data).toHaveLength(5);
      // The database's collation decides the order; the pages must follow it.
      const order = body.data.map((item) => item.identifier);

      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page: ListBody = (
          await call(`${base()}?q=${tag}&limit=2${cursor ? `&cursor=${cursor}` : ''}`)
        ).body as ListBody;
        expect(page.limit).toBe(2);
        seen.push(...page.data.map((item) => item.identifier));
        cursor = page.next_cursor;
        pages++;
      } while (cursor && pages < 10);
      expect(pages).toBe(3);
      expect(seen).toEqual(order);
      expect(new Set(seen)).toEqual(new Set(made.map((m) => m.identifier)));
    });

    it('clamps limit to 100', async () => {
      const result = await call(`${base()}?limit=5000`);
      expect(result.status).toBe(200);
      expect((result.body as ListBody).limit).toBe(100);
    });
  });
});

describe('bad input to places and organizations', () => {
  const tested = appBefore();

  describe.each(COLLECTIONS)('/api/v1/$name', (collection) => {
    const path = `/api/v1/${collection.name}`;
    const base = () => `${tested.url}${path}`;

    it('400 for wrong types, naming each field', async () => {
      const result = await call(base(), {
        method: 'POST',
        headers: ADMIN,
        json: collection.wrongTypes.body,
      });
      expect(result.status).toBe(400);
      expect(result.headers.get('content-type')).toBe(PROBLEM);
      const fields = collection.wrongTypes.errors.map((e) => e.field);
      expect(result.body).toEqual(
        problem(
          400,
          'Bad Request',
          `invalid fields: ${fields.join(', ')}`,
          path,
          result.headers.get('x-request-id'),
          {
            errors: collection.wrongTypes.errors,
          },
        ),
      );
    });

    it('400 for missing fields, unknown fields, the wrong @type, a body that is not an object', async () => {
      const missing = await call(base(), {
        method: 'POST',
        headers: ADMIN,
        json: { '@type': 'Event', colour: 'blue' },
      });
      expect(missing.status).toBe(400);
      expect(missing.body).toEqual(
        problem(
          400,
          'Bad Request',
          'invalid fields: @type, name, colour',
          path,
          missing.headers.get('x-request-id'),
          {
            errors: [
              { field: '@type', message: `must be "${collection.type}"` },
              { field: 'name', message: 'is required' },
              { field: 'colour', message: 'is not a known field' },
            ],
          },
        ),
      );
      const list = await call(base(), { method: 'POST', headers: ADMIN, json: ['x'] });
      expect(list.status).toBe(400);
      expect(list.body).toEqual(
        problem(
          400,
          'Bad Request',
          'invalid fields: (body)',
          path,
          list.headers.get('x-request-id'),
          {
            errors: [{ field: '(body)', message: 'must be a JSON object' }],
          },
        ),
      );
      const put = await call(`${base()}/${UNKNOWN}`, { method: 'PUT', headers: ADMIN, json: {} });
      expect(put.status).toBe(400);
      expect(put.body).toEqual(
        problem(
          400,
          'Bad Request',
          'invalid fields: name',
          `${path}/${UNKNOWN}`,
          put.headers.get('x-request-id'),
          {
            errors: [{ field: 'name', message: 'is required' }],
          },
        ),
      );
    });

    it('400 for bad list parameters', async () => {
      const result = await call(`${base()}?limit=abc&cursor=nonsense&q=`);
      expect(result.status).toBe(400);
      expect(result.body).toEqual(
        problem(
          400,
          'Bad Request',
          'invalid query parameters: q, limit, cursor',
          path,
          result.headers.get('x-request-id'),
          {
            errors: [
              { field: 'q', message: 'must not be empty' },
              {
                field: 'limit',
                message: 'must be a whole number from 1 (above 100 counts as 100)',
              },
              { field: 'cursor', message: 'is not a cursor returned as next_cursor' },
            ],
          },
        ),
      );
      const zero = await call(`${base()}?limit=0`);
      expect((zero.body as { errors: unknown }).errors).toEqual([
        { field: 'limit', message: 'must be at least 1' },
      ]);
    });

    it('413 for a body over 1 MiB, 415 for none or a non-JSON one', async () => {
      const big = await call(base(), {
        method: 'POST',
        headers: ADMIN,
        json: { name: 'x', description: 'y'.repeat(1_100_000) },
      });
      expect(big.status).toBe(413);
      expect(big.body).toEqual(
        problem(
          413,
          'Payload Too Large',
          'request body is larger than 1048576 bytes (1 MiB)',
          path,
          big.headers.get('x-request-id'),
        ),
      );
      const none = await call(base(), { method: 'POST', headers: ADMIN });
      expect(none.status).toBe(415);
      expect(none.body).toEqual(
        problem(
          415,
          'Unsupported Media Type',
          'missing Content-Type; send a JSON body as application/json',
          path,
          none.headers.get('x-request-id'),
        ),
      );
      const text = await call(`${base()}/${UNKNOWN}`, {
        method: 'PUT',
        headers: { ...ADMIN, 'content-type': 'text/plain' },
        body: 'name=x',
      });
      expect(text.status).toBe(415);
      expect(text.body).toEqual(
        problem(
          415,
          'Unsupported Media Type',
          'Content-Type text/plain is not supported; send application/json',
          `${path}/${UNKNOWN}`,
          text.headers.get('x-request-id'),
        ),
      );
    });

    it('404 for unknown and malformed ids, on GET, PUT and DELETE', async () => {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const init = method === 'PUT' ? { json: { name: 'x' } } : {};
        const unknown = await call(`${base()}/${UNKNOWN}`, { method, headers: ADMIN, ...init });
        expect(unknown.status).toBe(404);
        expect(unknown.headers.get('content-type')).toBe(PROBLEM);
        expect(unknown.body).toEqual(
          problem(
            404,
            'Not Found',
            `no ${collection.noun} with id ${UNKNOWN}`,
            `${path}/${UNKNOWN}`,
            unknown.headers.get('x-request-id'),
          ),
        );
        const malformed = await call(`${base()}/not-an-id`, { method, headers: ADMIN, ...init });
        expect(malformed.status).toBe(404);
        expect(malformed.body).toEqual(
          problem(
            404,
            'Not Found',
            `no such ${collection.noun}`,
            `${path}/not-an-id`,
            malformed.headers.get('x-request-id'),
          ),
        );
      }
    });

    it('401 for writes without a key, with a wrong one, before reading the body', async () => {
      const cases = [
        { method: 'POST', url: base(), instance: path },
        { method: 'PUT', url: `${base()}/${UNKNOWN}`, instance: `${path}/${UNKNOWN}` },
        { method: 'DELETE', url: `${base()}/${UNKNOWN}`, instance: `${path}/${UNKNOWN}` },
      ];
      for (const { method, url, instance } of cases) {
        const none = await call(url, {
          method,
          body: '{not json',
          headers: { 'content-type': 'application/json' },
        });
        expect(none.status).toBe(401);
        expect(none.headers.get('www-authenticate')).toBe('Bearer realm="togather"');
        expect(none.body).toEqual(
          problem(
            401,
            'Unauthorized',
            'missing credentials: send Authorization: Bearer <admin API key or token>',
            instance,
            none.headers.get('x-request-id'),
          ),
        );
        const wrong = await call(url, {
          method,
          headers: { authorization: 'Bearer wrong-key' },
          json: collection.full,
        });
        expect(wrong.status).toBe(401);
        expect(wrong.headers.get('www-authenticate')).toBe(
          'Bearer realm="togather", error="invalid_token"',
        );
        expect(wrong.body).toEqual(
          problem(
            401,
            'Unauthorized',
            'invalid admin API key or token',
            instance,
            wrong.headers.get('x-request-id'),
          ),
        );
      }
    });

    it('405 with Allow for a method a route does not take; OPTIONS 204 with Allow', async () => {
      const patch = await call(`${base()}/${UNKNOWN}`, {
        method: 'PATCH',
        headers: ADMIN,
        json: {},
      });
      expect(patch.status).toBe(405);
      expect(patch.headers.get('allow')).toBe('GET, HEAD, PUT, DELETE, OPTIONS');
      expect(patch.body).toEqual(
        methodNotAllowed(
          'PATCH',
          'GET, HEAD, PUT, DELETE, OPTIONS',
          `${path}/${UNKNOWN}`,
          patch.headers.get('x-request-id'),
        ),
      );
      const put = await call(base(), { method: 'PUT', json: {} });
      expect(put.status).toBe(405);
      expect(put.body).toEqual(
        methodNotAllowed('PUT', 'GET, HEAD, POST, OPTIONS', path, put.headers.get('x-request-id')),
      );
      const options = await call(base(), { method: 'OPTIONS' });
      expect(options.status).toBe(204);
      expect(options.headers.get('allow')).toBe('GET, HEAD, POST, OPTIONS');
    });
  });
});

describe('events referring to places and organizations', () => {
  let place: Body;
  let organization: Body;
  const tested = appBefore();

  beforeAll(async () => {
    place = (
      await call(`${tested.url}/api/v1/places`, {
        method: 'POST',
        headers: ADMIN,
        json: {
          name: 'Massey Hall',
          address: {
            streetAddress: '178 Victoria St',
            addressLocality: 'Toronto',
            addressRegion: 'ON',
            postalCode: 'M5B 1T7',
            addressCountry: 'CA',
          },
        },
      })
    ).body as Body;
    organization = (
      await call(`${tested.url}/api/v1/organizations`, {
        method: 'POST',
        headers: ADMIN,
        json: { name: 'Jazz Society', url: 'https://example.org/jazz' },
      })
    ).body as Body;
  });

  const events = () => `${tested.url}/api/v1/events`;

  it('refers by identifier; the answer carries the @id and name, the inline columns a copy', async () => {
    const result = await call(events(), {
      method: 'POST',
      headers: ADMIN,
      json: {
        name: 'Big Band Night',
        startDate: '2031-05-01T19:00:00Z',
        location: { '@type': 'Place', identifier: place.identifier },
        organizer: { identifier: organization.identifier },
      },
    });
    expect(result.status).toBe(201);
    const event = result.body as Body;
    expect(event.location).toEqual({
      '@type': 'Place',
      '@id': place['@id'],
      identifier: place.identifier,
      name: 'Massey Hall',
    });
    expect(event.organizer).toEqual({
      '@type': 'Organization',
      '@id': organization['@id'],
      identifier: organization.identifier,
      name: 'Jazz Society',
    });
    // The previous release, sharing the database during a cutover, reads these.
    const row = await tested.db.query(
      'SELECT location_name, location_address, organizer_name, organizer_url FROM events WHERE id = $1',
      [event.identifier],
    );
    expect(row.rows[0]).toEqual({
      location_name: 'Massey Hall',
      location_address: '178 Victoria St, Toronto, ON M5B 1T7, CA',
      organizer_name: 'Jazz Society',
      organizer_url: 'https://example.org/jazz',
    });
    expect((await call(`${events()}/${event.identifier}`)).body).toEqual(event);
  });

  it('PUT replaces an event, and a reference can become an inline place', async () => {
    const created = (
      await call(events(), {
        method: 'POST',
        headers: ADMIN,
        json: {
          name: 'Before',
          startDate: '2031-06-01T19:00:00Z',
          location: { identifier: place.identifier },
        },
      })
    ).body as Body;
    const replaced = await call(`${events()}/${created.identifier}`, {
      method: 'PUT',
      headers: ADMIN,
      json: { name: 'After', startDate: '2031-06-02T19:00:00Z', location: { name: 'A garden' } },
    });
    expect(replaced.status).toBe(200);
    expect(replaced.body).toEqual({
      '@context': 'https://schema.org',
      '@type': 'Event',
      '@id': created['@id'],
      identifier: created.identifier,
      name: 'After',
      startDate: '2031-06-02T19:00:00.000Z',
      location: { '@type': 'Place', name: 'A garden' },
      dateCreated: created.dateCreated,
      dateModified: (replaced.body as Body).dateModified,
    });
  });

  it('lists as data, with items beside it for clients of the previous release', async () => {
    const list = (await call(`${events()}?q=Big Band`)).body as ListBody;
    expect(Object.keys(list).sort()).toEqual(['data', 'items', 'limit', 'next_cursor']);
    expect(list.data).toHaveLength(1);
    expect(list.items).toEqual(list.data);
  });

  it('400 for an unknown place or organizer, for a deleted one, and for identifier with inline fields', async () => {
    const unknown = await call(events(), {
      method: 'POST',
      headers: ADMIN,
      json: { name: 'x', startDate: '2031-01-01T00:00:00Z', location: { identifier: UNKNOWN } },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toEqual(
      problem(
        400,
        'Bad Request',
        'invalid fields: location.identifier',
        '/api/v1/events',
        unknown.headers.get('x-request-id'),
        {
          errors: [
            { field: 'location.identifier', message: `no place with identifier ${UNKNOWN}` },
          ],
        },
      ),
    );
    const noOrganizer = await call(events(), {
      method: 'POST',
      headers: ADMIN,
      json: { name: 'x', startDate: '2031-01-01T00:00:00Z', organizer: { identifier: UNKNOWN } },
    });
    expect((noOrganizer.body as { errors: unknown }).errors).toEqual([
      { field: 'organizer.identifier', message: `no organization with identifier ${UNKNOWN}` },
    ]);

    const doomed = (
      await call(`${tested.url}/api/v1/places`, {
        method: 'POST',
        headers: ADMIN,
        json: { name: 'Doomed' },
      })
    ).body as Body;
    const referring = (
      await call(events(), {
        method: 'POST',
        headers: ADMIN,
        json: {
          name: 'Refers',
          startDate: '2031-01-01T00:00:00Z',
          location: { identifier: doomed.identifier },
        },
      })
    ).body as Body;
    await call(`${tested.url}/api/v1/places/${doomed.identifier}`, {
      method: 'DELETE',
      headers: ADMIN,
    });
    const deleted = await call(events(), {
      method: 'POST',
      headers: ADMIN,
      json: {
        name: 'x',
        startDate: '2031-01-01T00:00:00Z',
        location: { identifier: doomed.identifier },
      },
    });
    expect(deleted.status).toBe(400);
    expect((deleted.body as { errors: unknown }).errors).toEqual([
      { field: 'location.identifier', message: `place ${doomed.identifier} was deleted` },
    ]);
    // An event that referred to it keeps the reference; the name goes with the place.
    expect(((await call(`${events()}/${referring.identifier}`)).body as Body).location).toEqual({
      '@type': 'Place',
      '@id': doomed['@id'],
      identifier: doomed.identifier,
    });

    const both = await call(events(), {
      method: 'POST',
      headers: ADMIN,
      json: {
        name: 'x',
        startDate: '2031-01-01T00:00:00Z',
        location: { identifier: 'not-a-uuid' },
        organizer: { identifier: organization.identifier, name: 'Other' },
      },
    });
    expect(both.status).toBe(400);
    expect(both.body).toEqual(
      problem(
        400,
        'Bad Request',
        'invalid fields: location.identifier, organizer.name',
        '/api/v1/events',
        both.headers.get('x-request-id'),
        {
          errors: [
            {
              field: 'location.identifier',
              message: 'must be the identifier of a Place of /api/v1/places',
            },
            { field: 'organizer.name', message: 'must not be given with identifier' },
          ],
        },
      ),
    );
  });
});

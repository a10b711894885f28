import { beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  call,
  pgliteBackend,
  postgresBackend,
  startTestApp,
  appBefore,
} from '../support/server.js';

interface EventBody {
  '@context': string;
  '@type': string;
  '@id': string;
  identifier: string;
  name: string;
  startDate: string;
  endDate?: string;
  description?: string;
}

interface ListBody {
  items: EventBody[];
  next_cursor: string | null;
}

describe.each([
  ['PostgreSQL', postgresBackend],
  ['PGlite', pgliteBackend],
])('events API on %s', (_name, openBackend) => {
  let events: string;
  const tested = appBefore({ backend: openBackend });

  beforeAll(async () => {
    events = `${tested.url}/api/v1/events`;
  });

  const create = async (event: Record<string, unknown>) => {
    const result = await call(events, { method: 'POST', headers: ADMIN, json: event });
    expect(result.status).toBe(201);
    return result.body as EventBody;
  };

  it('creates an event: 201, Location, and the stored event as JSON-LD', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: ADMIN,
      json: {
        name: 'Jazz in the Park',
        startDate: '2031-07-15T19:00:00-04:00',
        endDate: '2031-07-15T22:00:00-04:00',
        description: 'An evening of jazz',
        url: 'https://example.org/jazz',
        location: { name: 'Centennial Park', address: '256 Centennial Park Rd, Toronto' },
        organizer: { name: 'Arts Council', url: 'https://example.org/council' },
      },
    });
    expect(result.status).toBe(201);
    expect(result.headers.get('content-type')).toBe('application/ld+json; charset=utf-8');
    const body = result.body as EventBody & Record<string, unknown>;
    expect(body.identifier).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.headers.get('location')).toBe(`${events}/${body.identifier}`);
    expect(body).toEqual({
      '@context': 'https://schema.org',
      '@type': 'Event',
      '@id': `${events}/${body.identifier}`,
      identifier: body.identifier,
      name: 'Jazz in the Park',
      startDate: '2031-07-15T23:00:00.000Z',
      endDate: '2031-07-16T02:00:00.000Z',
      description: 'An evening of jazz',
      url: 'https://example.org/jazz',
      location: {
        '@type': 'Place',
        name: 'Centennial Park',
        address: '256 Centennial Park Rd, Toronto',
      },
      organizer: {
        '@type': 'Organization',
        name: 'Arts Council',
        url: 'https://example.org/council',
      },
      dateCreated: body.dateCreated,
      dateModified: body.dateModified,
    });
    expect(Date.parse(body.dateCreated as string)).not.toBeNaN();

    const read = await call(`${events}/${body.identifier}`);
    expect(read.status).toBe(200);
    expect(read.headers.get('content-type')).toBe('application/ld+json; charset=utf-8');
    expect(read.body).toEqual(body);
  });

  it('accepts a JSON-LD body as application/ld+json, leaving out absent fields', async () => {
    const result = await call(events, {
      method: 'POST',
      headers: { ...ADMIN, 'content-type': 'application/ld+json' },
      body: JSON.stringify({
        '@context': 'https://schema.org',
        '@type': 'Event',
        name: 'Minimal',
        startDate: '2031-01-01T10:00:00Z',
      }),
    });
    expect(result.status).toBe(201);
    const body = result.body as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(
      [
        '@context',
        '@id',
        '@type',
        'dateCreated',
        'dateModified',
        'identifier',
        'name',
        'startDate',
      ].sort(),
    );
  });

  describe('listing', () => {
    const tag = `list-${Math.random().toString(36).slice(2, 8)}`;
    const created: EventBody[] = [];

    beforeAll(async () => {
      // Two share a start time, so the id must break the tie for a stable order.
      const starts = [
        '2040-03-05T10:00:00Z',
        '2040-03-01T10:00:00Z',
        '2040-03-03T10:00:00Z',
        '2040-03-03T10:00:00Z',
        '2040-03-10T10:00:00Z',
      ];
      for (const [i, startDate] of starts.entries()) {
        created.push(
          await create({
            name: `${tag} event ${i}`,
            startDate,
            description: i === 2 ? 'with 100% Fun_stuff inside' : 'plain',
            ...(i === 1 ? { endDate: '2040-03-04T10:00:00Z' } : {}),
          }),
        );
      }
    });

    const expectedOrder = () =>
      [...created]
        .sort((a, b) =>
          a.startDate === b.startDate
            ? a.identifier.localeCompare(b.identifier)
            : a.startDate.localeCompare(b.startDate),
        )
        .map((e) => e.identifier);

    it('orders by start date, then id, and filters by text in name or description', async () => {
      const result = await call(`${events}?q=${tag}`);
      expect(result.status).toBe(200);
      const body = result.body as ListBody;
      expect(body.next_cursor).toBeNull();
      expect(body.items.map((e) => e.identifier)).toEqual(expectedOrder());
      expect(body.items[0]).toMatchObject({ '@context': 'https://schema.org', '@type': 'Event' });
    });

    it('matches q case-insensitively and takes % and _ literally', async () => {
      const fun = (await call(`${events}?q=${encodeURIComponent('100% fun_STUFF')}`))
        .body as ListBody;
      expect(fun.items.map((e) => e.identifier)).toEqual([created[2]!.identifier]);
      const wildcard = (await call(`${events}?q=${encodeURIComponent('%')}`)).body as ListBody;
      expect(wildcard.items.map((e) => e.identifier)).toEqual([created[2]!.identifier]);
    });

    it('filters by date: start_date keeps events still going on, end_date those started by then', async () => {
      const from = (await call(`${events}?q=${tag}&start_date=2040-03-04`)).body as ListBody;
      // event 1 started on the 1st but ends on the 4th: still going on.
      expect(from.items.map((e) => e.name).sort()).toEqual(
        [`${tag} event 0`, `${tag} event 1`, `${tag} event 4`].sort(),
      );
      const to = (await call(`${events}?q=${tag}&end_date=2040-03-03`)).body as ListBody;
      expect(to.items.map((e) => e.name).sort()).toEqual(
        [`${tag} event 1`, `${tag} event 2`, `${tag} event 3`].sort(),
      );
      const window = (
        await call(
          `${events}?q=${tag}&start_date=2040-03-05T00:00:00Z&end_date=2040-03-05T10:00:00%2B00:00`,
        )
      ).body as ListBody;
      expect(window.items.map((e) => e.name)).toEqual([`${tag} event 0`]);
    });

    it('pages with limit and next_cursor through every event exactly once', async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = `q=${tag}&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
        const page = (await call(`${events}?${query}`)).body as ListBody;
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((e) => e.identifier));
        cursor = page.next_cursor;
        pages++;
      } while (cursor && pages < 10);
      expect(pages).toBe(3);
      expect(seen).toEqual(expectedOrder());
    });

    it('limits pages to 20 by default and accepts 100 at most', async () => {
      for (let i = 0; i < 21; i++) {
        await create({ name: `bulk ${tag} ${i}`, startDate: '2041-01-01T00:00:00Z' });
      }
      const page = (await call(`${events}?q=bulk ${tag}`)).body as ListBody;
      expect(page.items).toHaveLength(20);
      expect(page.next_cursor).not.toBeNull();
      const rest = (await call(`${events}?q=bulk ${tag}&cursor=${page.next_cursor}`))
        .body as ListBody;
      expect(rest.items).toHaveLength(1);
      expect(rest.next_cursor).toBeNull();
      const max = await call(`${events}?q=bulk ${tag}&limit=100`);
      expect((max.body as ListBody).items).toHaveLength(21);
    });
  });

  it('deletes: 204, then GET answers 410 with a JSON-LD tombstone, DELETE again 410', async () => {
    const event = await create({ name: 'To delete', startDate: '2032-01-01T00:00:00Z' });
    const url = `${events}/${event.identifier}`;
    const deleted = await call(url, { method: 'DELETE', headers: ADMIN });
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');

    const gone = await call(url);
    expect(gone.status).toBe(410);
    expect(gone.headers.get('content-type')).toBe('application/ld+json; charset=utf-8');
    const tombstone = gone.body as Record<string, unknown>;
    expect(tombstone).toEqual({
      '@context': 'https://schema.org',
      '@type': 'Event',
      '@id': url,
      identifier: event.identifier,
      eventStatus: 'https://schema.org/EventCancelled',
      'sel:tombstone': true,
      'sel:deletedAt': tombstone['sel:deletedAt'],
    });
    expect(Date.parse(tombstone['sel:deletedAt'] as string)).not.toBeNaN();

    const again = await call(url, { method: 'DELETE', headers: ADMIN });
    expect(again.status).toBe(410);
    expect(again.body).toMatchObject({
      status: 410,
      detail: `event ${event.identifier} was already deleted`,
    });

    const listed = (await call(`${events}?q=To delete`)).body as ListBody;
    expect(listed.items.map((e) => e.identifier)).not.toContain(event.identifier);
  });

  it('answers 404 for an unknown id and for a malformed one', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    const missing = await call(`${events}/${unknown}`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(missing.body).toEqual({
      type: 'about:blank',
      title: 'Not Found',
      status: 404,
      detail: `no event with id ${unknown}`,
      instance: `/api/v1/events/${unknown}`,
      request_id: missing.headers.get('x-request-id'),
    });
    const malformed = await call(`${events}/not-a-uuid`);
    expect(malformed.status).toBe(404);
    expect((malformed.body as { detail: string }).detail).toBe('no such event');
    const deleteUnknown = await call(`${events}/${unknown}`, { method: 'DELETE', headers: ADMIN });
    expect(deleteUnknown.status).toBe(404);
  });

  it('uses PUBLIC_URL for @id and Location when set', async () => {
    const other = await startTestApp({
      database: tested.db,
      settings: { publicUrl: 'https://events.example.org' },
    });
    try {
      const result = await call(`${other.url}/api/v1/events`, {
        method: 'POST',
        headers: ADMIN,
        json: { name: 'Public', startDate: '2033-01-01T00:00:00Z' },
      });
      const body = result.body as EventBody;
      expect(body['@id']).toBe(`https://events.example.org/api/v1/events/${body.identifier}`);
      expect(result.headers.get('location')).toBe(body['@id']);
    } finally {
      await other.close();
    }
  });
});

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestEdge } from '../../support/edge.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { RedisProcess } from '../../../harness/redis-process.js';

const KEY = 'test-admin-key-0123456789-abcdefghijklmnop';
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface Admin {
  url: string;
  publicUrl: string;
  close(): Promise<void>;
}

/** The whole proxy in this process, on a real Redis. */
async function startAdmin(
  redis: RedisProcess,
  slots: Record<'blue' | 'green', FakeSlot>,
  prefix: string,
): Promise<Admin> {
  const edge = await startTestEdge({
    blueUrl: slots.blue.url,
    greenUrl: slots.green.url,
    env: { ADMIN_API_KEY: KEY, REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix },
    healthPollIntervalMs: 200,
  });
  return { url: edge.adminUrl, publicUrl: edge.url, close: () => edge.stop() };
}

interface AdminStatusBody {
  draining: string[];
  slots: Record<'blue' | 'green', { active: boolean; inflight: number; draining: boolean }>;
}

interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
  text: string;
}

describe('admin API', () => {
  let redis: RedisProcess;
  let slots: Record<'blue' | 'green', FakeSlot>;
  let admin: Admin;
  let n = 0;

  async function call(
    method: string,
    path: string,
    options: { key?: string | null; body?: string; type?: string; actor?: string } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = {};
    const key = options.key === undefined ? KEY : options.key;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    if (options.type) headers['content-type'] = options.type;
    else if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.actor) headers['x-actor'] = options.actor;
    const response = await fetch(admin.url + path, { method, headers, body: options.body });
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, headers: response.headers, body, text };
  }

  beforeAll(async () => {
    [redis, slots] = await Promise.all([RedisProcess.start(), startFakeSlots()]);
  });
  beforeEach(async () => {
    slots.blue.setHealth({ status: 200, delayMs: 0 });
    slots.green.setHealth({ status: 200, delayMs: 0 });
    admin = await startAdmin(redis, slots, `admin${++n}:`);
    return () => admin.close();
  });
  afterAll(async () => {
    await Promise.all([redis.stop(), slots.blue.close(), slots.green.close()]);
  });

  describe('switching', () => {
    it('switches with ?slot= and with a JSON body', async () => {
      const first = await call('POST', '/admin/switch?slot=green');
      expect(first.status).toBe(200);
      expect(first.body).toEqual({
        active: 'green',
        previous: 'blue',
        epoch: 1,
        changed: true,
        switched_at: expect.stringMatching(ISO),
      });
      const served = await fetch(`${admin.publicUrl}/events`);
      expect(served.headers.get('x-togather-slot')).toBe('green');
      expect(await served.json()).toEqual({ slot: 'green', path: '/events' });
      const second = await call('POST', '/admin/switch', { body: '{"slot":"blue"}' });
      expect(second.status).toBe(200);
      expect(second.body).toEqual({
        active: 'blue',
        previous: 'green',
        epoch: 2,
        changed: true,
        switched_at: expect.stringMatching(ISO),
      });
      const status = await call('GET', '/admin/status');
      expect(status.body).toMatchObject({ active: 'blue', previous: 'green', epoch: 2 });
    });

    it('answers changed: false when the slot is already active', async () => {
      const answer = await call('POST', '/admin/switch?slot=blue');
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        active: 'blue',
        previous: null,
        epoch: 0,
        changed: false,
        switched_at: expect.stringMatching(ISO),
      });
    });

    it('refuses an unhealthy target with 409 and what the gate saw; force=true overrides', async () => {
      slots.green.setHealth({ status: 503 });
      const refused = await call('POST', '/admin/switch?slot=green');
      expect(refused.status).toBe(409);
      const probe = {
        url: `${slots.green.url}/health`,
        ok: false,
        status_code: 503,
        status: 'unhealthy',
        version: '1.0.0',
        latency_ms: expect.any(Number),
      };
      expect(refused.body).toEqual({
        error: 'target_unhealthy',
        message: `green is unhealthy: GET ${slots.green.url}/health answered 503 (status unhealthy) (3 tries); use force to switch anyway`,
        slot: 'green',
        active: 'blue',
        epoch: 0,
        health: { url: `${slots.green.url}/health`, attempts: [probe, probe, probe] },
      });
      const forced = await call('POST', '/admin/switch?slot=green&force=true');
      expect(forced.status).toBe(200);
      expect(forced.body).toMatchObject({ active: 'green', epoch: 1, changed: true });
    });

    it('refuses a stale expect_epoch with 409 epoch_conflict', async () => {
      await call('POST', '/admin/switch?slot=green');
      const stale = await call('POST', '/admin/switch', {
        body: JSON.stringify({ slot: 'blue', expect_epoch: 0 }),
      });
      expect(stale.status).toBe(409);
      expect(stale.body).toEqual({
        error: 'epoch_conflict',
        message: 'expected epoch 0 but the state is at epoch 1',
        slot: 'blue',
        active: 'green',
        epoch: 1,
      });
      const current = await call('POST', '/admin/switch?slot=blue&expect_epoch=1');
      expect(current.status).toBe(200);
      expect(current.body).toMatchObject({ active: 'blue', epoch: 2 });
    });

    it('rolls back to the previous slot; 409 when there is none', async () => {
      const none = await call('POST', '/admin/rollback');
      expect(none.status).toBe(409);
      expect(none.body).toEqual({
        error: 'no_previous_slot',
        message: 'there is no previous slot to roll back to (blue has been active since start)',
        active: 'blue',
        epoch: 0,
      });
      await call('POST', '/admin/switch?slot=green');
      const back = await call('POST', '/admin/rollback');
      expect(back.status).toBe(200);
      expect(back.body).toEqual({
        active: 'blue',
        previous: 'green',
        epoch: 2,
        changed: true,
        switched_at: expect.stringMatching(ISO),
      });
    });

    it('records every attempt in the history, newest first, with the actor', async () => {
      await call('POST', '/admin/switch?slot=green', { actor: 'alice' });
      await call('POST', '/admin/switch?slot=green');
      slots.blue.setHealth({ status: 500 });
      await call('POST', '/admin/rollback', { actor: 'bob' });
      await call('POST', '/admin/switch?slot=blue&expect_epoch=0', { actor: 'carol' });
      const answer = await call('GET', '/admin/history?limit=10');
      expect(answer.status).toBe(200);
      const history = (answer.body as { history: Record<string, unknown>[] }).history;
      expect(
        history.map(({ time, reason, ...rest }) => [ISO.test(String(time)), rest, typeof reason]),
      ).toEqual([
        [
          true,
          { actor: 'carol', from: 'green', to: 'blue', epoch: 1, result: 'conflict' },
          'string',
        ],
        [true, { actor: 'bob', from: 'green', to: 'blue', epoch: 1, result: 'refused' }, 'string'],
        [
          true,
          { actor: 'api', from: 'green', to: 'green', epoch: 1, result: 'unchanged' },
          'undefined',
        ],
        [
          true,
          { actor: 'alice', from: 'blue', to: 'green', epoch: 1, result: 'switched' },
          'undefined',
        ],
      ]);
      const limited = await call('GET', '/admin/history?limit=1');
      expect((limited.body as { history: unknown[] }).history).toHaveLength(1);
    });

    it('shows status: state, store, both slots', async () => {
      const answer = await call('GET', '/admin/status');
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({
        active: 'blue',
        previous: null,
        epoch: 0,
        switched_at: expect.stringMatching(ISO),
        actor: 'init',
        store: { kind: 'redis', location: expect.stringContaining(redis.url), connected: true },
        slots: {
          blue: { url: slots.blue.url, active: true, inflight: 0, websockets: 0, draining: false },
          green: {
            url: slots.green.url,
            active: false,
            inflight: 0,
            websockets: 0,
            draining: false,
          },
        },
        draining: [],
      });
      await expect
        .poll(
          async () =>
            ((await call('GET', '/admin/status')).body as { slots: { green: unknown } }).slots
              .green,
        )
        .toMatchObject({ healthy: true, version: '1.0.0', health_status: 'healthy' });
    });
  });

  describe('status while a slot drains', () => {
    it('shows the old slot draining with its request in flight, then drained', async () => {
      const slow = fetch(`${admin.publicUrl}/slow?ms=1500`);
      await expect
        .poll(
          async () =>
            ((await call('GET', '/admin/status')).body as AdminStatusBody).slots.blue.inflight,
        )
        .toBe(1);
      expect((await call('POST', '/admin/switch?slot=green')).status).toBe(200);
      const during = (await call('GET', '/admin/status')).body as AdminStatusBody;
      expect(during.draining).toEqual(['blue']);
      expect(during.slots.blue).toMatchObject({ active: false, inflight: 1, draining: true });
      expect(during.slots.green).toMatchObject({ active: true, inflight: 0, draining: false });
      const answer = await slow;
      expect(answer.headers.get('x-togather-slot')).toBe('blue');
      expect(await answer.json()).toEqual({ slot: 'blue', path: '/slow?ms=1500' });
      await expect
        .poll(async () => ((await call('GET', '/admin/status')).body as AdminStatusBody).draining)
        .toEqual([]);
      expect(
        ((await call('GET', '/admin/status')).body as AdminStatusBody).slots.blue,
      ).toMatchObject({
        inflight: 0,
        draining: false,
      });
    });
  });

  describe('bad input', () => {
    it('401 without a key, with a Bearer challenge', async () => {
      const answer = await call('POST', '/admin/switch?slot=green', { key: null });
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="togather-admin"');
      expect(answer.body).toEqual({
        error: 'unauthorized',
        message: 'missing Authorization header: send Authorization: Bearer <ADMIN_API_KEY>',
      });
    });

    it('401 with a wrong key, and nothing switched', async () => {
      const answer = await call('POST', '/admin/switch?slot=green', { key: `${KEY}x` });
      expect(answer.status).toBe(401);
      expect(answer.headers.get('www-authenticate')).toBe(
        'Bearer realm="togather-admin", error="invalid_token"',
      );
      expect(answer.body).toEqual({ error: 'unauthorized', message: 'wrong admin API key' });
      expect((await call('GET', '/admin/status')).body).toMatchObject({ active: 'blue', epoch: 0 });
    });

    it('401 on every /admin route, also unknown ones, before anything else', async () => {
      for (const [method, path] of [
        ['GET', '/admin/status'],
        ['GET', '/admin/history'],
        ['POST', '/admin/rollback'],
        ['GET', '/admin/switch'],
        ['GET', '/admin/nope'],
      ] as const) {
        const answer = await call(method, path, { key: null });
        expect([method, path, answer.status]).toEqual([method, path, 401]);
      }
    });

    it('400 for a bad slot', async () => {
      const purple = await call('POST', '/admin/switch?slot=purple');
      expect(purple.status).toBe(400);
      expect(purple.body).toEqual({
        error: 'invalid_slot',
        message: 'slot must be blue or green, not "purple"',
      });
      const missing = await call('POST', '/admin/switch');
      expect(missing.status).toBe(400);
      expect(missing.body).toEqual({
        error: 'invalid_slot',
        message: 'slot is required: blue or green',
      });
      const number = await call('POST', '/admin/switch', { body: '{"slot": 1}' });
      expect(number.body).toEqual({
        error: 'invalid_slot',
        message: 'slot must be blue or green, not 1',
      });
    });

    it('405 for GET on switch, with Allow', async () => {
      const answer = await call('GET', '/admin/switch?slot=green');
      expect(answer.status).toBe(405);
      expect(answer.headers.get('allow')).toBe('POST');
      expect(answer.body).toEqual({
        error: 'method_not_allowed',
        message: 'GET is not allowed on /admin/switch; use POST',
      });
      const del = await call('DELETE', '/admin/status');
      expect(del.status).toBe(405);
      expect(del.headers.get('allow')).toBe('GET, HEAD');
    });

    it('400 for bad JSON', async () => {
      const answer = await call('POST', '/admin/switch', { body: '{"slot": "green"' });
      expect(answer.status).toBe(400);
      expect(answer.body).toEqual({ error: 'invalid_json', message: 'the body is not valid JSON' });
      const array = await call('POST', '/admin/switch', { body: '["green"]' });
      expect(array.status).toBe(400);
      expect(array.body).toEqual({
        error: 'invalid_body',
        message: 'the body must be a JSON object',
      });
    });

    it('400 for a body that is not JSON', async () => {
      const answer = await call('POST', '/admin/switch', {
        body: 'slot=green',
        type: 'application/x-www-form-urlencoded',
      });
      expect(answer.status).toBe(400);
      expect(answer.body).toEqual({
        error: 'unsupported_media_type',
        message:
          'a body of Content-Type "application/x-www-form-urlencoded" is not read; send JSON (Content-Type: application/json) or use query parameters',
      });
    });

    it('400 for unknown parameters, naming them', async () => {
      const query = await call('POST', '/admin/switch?slot=green&forse=true');
      expect(query.status).toBe(400);
      expect(query.body).toEqual({
        error: 'unknown_parameter',
        message: 'unknown parameter "forse" (known: slot, force, expect_epoch)',
      });
      const body = await call('POST', '/admin/rollback', {
        body: '{"slot":"green","dry_run":true}',
      });
      expect(body.status).toBe(400);
      expect(body.body).toEqual({
        error: 'unknown_parameter',
        message: 'unknown parameters "slot", "dry_run" (known: force, expect_epoch)',
      });
      const status = await call('GET', '/admin/status?verbose=1');
      expect(status.status).toBe(400);
      expect(status.body).toEqual({
        error: 'unknown_parameter',
        message: 'unknown parameter "verbose" (this route takes none)',
      });
    });

    it('400 for parameters of the wrong type', async () => {
      const cases: [string, string | undefined, string][] = [
        ['/admin/switch?slot=green&force=yes', undefined, 'force must be true or false, not "yes"'],
        [
          '/admin/switch',
          '{"slot":"green","force":"true"}',
          'force must be a JSON boolean, not "true"',
        ],
        [
          '/admin/switch?slot=green&expect_epoch=-1',
          undefined,
          'expect_epoch must be an integer >= 0, not "-1"',
        ],
        [
          '/admin/switch',
          '{"slot":"green","expect_epoch":1.5}',
          'expect_epoch must be an integer >= 0, not 1.5',
        ],
        ['/admin/switch?slot=green&slot=blue', undefined, 'slot is given more than once'],
        [
          '/admin/switch?slot=green',
          '{"slot":"green"}',
          'slot is given both in the query string and in the body',
        ],
      ];
      for (const [path, body, message] of cases) {
        const answer = await call('POST', path, { body });
        expect([path, answer.status, answer.body]).toEqual([
          path,
          400,
          { error: 'invalid_parameter', message },
        ]);
      }
      const limit = await call('GET', '/admin/history?limit=0');
      expect(limit.status).toBe(400);
      expect(limit.body).toEqual({
        error: 'invalid_parameter',
        message: 'limit must be an integer 1..1000, not "0"',
      });
      const actor = await call('POST', '/admin/switch?slot=green', { actor: 'a'.repeat(129) });
      expect(actor.status).toBe(400);
      expect(actor.body).toEqual({
        error: 'invalid_header',
        message: 'X-Actor must be 1 to 128 printable ASCII characters, given once',
      });
    });

    it('404 for an unknown route', async () => {
      const admin404 = await call('GET', '/admin/nope');
      expect(admin404.status).toBe(404);
      expect(admin404.body).toEqual({ error: 'not_found', message: 'no route GET /admin/nope' });
      const other = await call('GET', '/nope?x=1', { key: null });
      expect(other.status).toBe(404);
      expect(other.body).toEqual({ error: 'not_found', message: 'no route GET /nope' });
    });

    it('429 with Retry-After for wrong keys after 10 from one address; the right key still passes', async () => {
      // A burst, as anyone who reaches the admin port (on Docker: every host
      // client shares one address) can send.
      const burst = await Promise.all(
        Array.from({ length: 20 }, (_, i) => call('GET', '/admin/status', { key: `wrong-${i}` })),
      );
      expect(burst.filter((a) => a.status === 401)).toHaveLength(10);
      expect(burst.filter((a) => a.status === 429)).toHaveLength(10);

      // The right key switches at once, from the very address that is throttled.
      const switched = await call('POST', '/admin/switch?slot=green');
      expect(switched.status).toBe(200);
      expect(switched.body).toMatchObject({ active: 'green', previous: 'blue', changed: true });
      const rolledBack = await call('POST', '/admin/rollback');
      expect(rolledBack.status).toBe(200);
      expect(rolledBack.body).toMatchObject({ active: 'blue', previous: 'green' });
      expect((await call('GET', '/admin/status')).status).toBe(200);

      // ...and that success does not hand the address a fresh budget of guesses.
      for (const answer of [
        await call('GET', '/admin/status', { key: 'wrong-again' }),
        await call('POST', '/admin/switch?slot=green', { key: `${KEY}x` }),
        await call('GET', '/admin/history', { key: null }),
      ]) {
        expect(answer.status).toBe(429);
        const retryAfter = Number(answer.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThanOrEqual(30);
        expect(retryAfter).toBeLessThanOrEqual(60);
        expect(answer.body).toEqual({
          error: 'too_many_attempts',
          message: `too many failed authentication attempts from 127.0.0.1; retry after ${retryAfter} s`,
        });
      }
      expect((await call('GET', '/admin/status')).body).toMatchObject({ active: 'blue', epoch: 2 });
      // /healthz and /metrics are not behind the key
      expect((await call('GET', '/healthz', { key: null })).status).toBe(200);
    });

    it('413 for a body over 16 KiB', async () => {
      const answer = await call('POST', '/admin/switch', {
        body: JSON.stringify({ slot: 'x'.repeat(20_000) }),
      });
      expect(answer.status).toBe(413);
      expect(answer.body).toEqual({
        error: 'payload_too_large',
        message: 'the body is larger than 16 KiB',
      });
    });
  });

  describe('store outage', () => {
    it('503 store_unavailable for switches and history while Redis is down', async () => {
      await redis.kill();
      try {
        const answer = await call('POST', '/admin/switch?slot=green');
        expect(answer.status).toBe(503);
        expect(answer.body).toEqual({
          error: 'store_unavailable',
          message: expect.stringMatching(
            /^the slot store is unavailable \(.+\); traffic stays on blue$/,
          ),
          slot: 'green',
          active: 'blue',
          epoch: 0,
        });
        const history = await call('GET', '/admin/history');
        expect(history.status).toBe(503);
        expect(history.body).toEqual({
          error: 'store_unavailable',
          message: expect.stringMatching(/^the slot store is unavailable: /),
        });
        await expect
          .poll(async () => ((await call('GET', '/admin/status')).body as { store: unknown }).store)
          .toMatchObject({ connected: false });
      } finally {
        await redis.restart();
      }
    });
  });

  describe('liveness and metrics', () => {
    it('/healthz answers without a key', async () => {
      const answer = await call('GET', '/healthz', { key: null });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ status: 'ok' });
    });

    it('/metrics passes promtool check metrics and counts switches by result', async () => {
      await call('POST', '/admin/switch?slot=green');
      await call('POST', '/admin/switch?slot=green');
      const answer = await call('GET', '/metrics', { key: null });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(answer.text).toContain('togather_proxy_switches_total{result="switched"} 1');
      expect(answer.text).toContain('togather_proxy_switches_total{result="unchanged"} 1');
      const dir = await mkdtemp(join(tmpdir(), 'promtool-'));
      try {
        const file = join(dir, 'metrics.txt');
        await writeFile(file, answer.text);
        const { stdout, stderr } = await promisify(execFile)('sh', [
          '-c',
          `promtool check metrics < ${file}`,
        ]);
        expect(stdout + stderr).toBe('');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});

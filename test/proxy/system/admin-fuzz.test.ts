import fc from 'fast-check';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { secretsEqual } from '../../../common/secrets.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { freePort } from '../../../harness/ports.js';
import { runCli, startCli } from '../../support/processes.js';
import { PROCESS_ADMIN_KEY, ProxyProcess } from '../../../harness/proxy-process.js';

/**
 * The admin API of a `togather proxy` process under fuzzed methods, paths,
 * query parameters, headers and bodies: every answer is one of the
 * documented statuses with a JSON error body, nothing crashes the proxy, and
 * the slot state changes only through answers that say it did. Also: the
 * key comparison takes the same time however much of the key matches, and
 * the admin listener is off loopback only when asked for, with a warning.
 */

type Slot = 'blue' | 'green';

const DOCUMENTED = new Set([200, 400, 401, 404, 405, 409, 413, 429, 503]);
const PATHS = [
  '/admin/switch',
  '/admin/rollback',
  '/admin/status',
  '/admin/history',
  '/metrics',
  '/healthz',
  '/admin',
  '/admin/',
  '/admin/switch/',
  '/admin//switch',
  '/admin/./switch',
  '/admin/../admin/switch',
  '/ADMIN/switch',
  '/admin/switch%00',
  '/admin/%2e%2e/metrics',
  '/admin/switch;slot=green',
  '//admin/switch',
  '/',
  '/nope',
];
const PARAMS = [
  'slot',
  'force',
  'expect_epoch',
  'limit',
  'Slot',
  'slot[]',
  '__proto__',
  'constructor',
];
const VALUES = [
  'blue',
  'green',
  'BLUE',
  'true',
  'false',
  '0',
  '1',
  '-1',
  '1e3',
  '2.5',
  '',
  'null',
  '%zz',
  '9'.repeat(30),
];

/** Characters Node accepts in a header value (it refuses control characters and code points above 0xff). */
const headerText = fc
  .string({
    maxLength: 200,
    unit: fc
      .integer({ min: 0x20, max: 0xff })
      .map((c) => String.fromCharCode(c === 0x7f ? 0x20 : c)),
  })
  .map((s) => s.trim());

const queryPart = fc.tuple(
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...PARAMS) },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  ),
  fc.oneof(
    fc.constantFrom(...VALUES),
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 10 }),
  ),
);

const body = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  {
    weight: 3,
    arbitrary: fc
      .dictionary(
        fc.oneof(fc.constantFrom(...PARAMS), fc.string({ maxLength: 10 })),
        fc.oneof(
          fc.constantFrom<unknown>('blue', 'green', true, false, 0, 1, -1, null, 1.5, 2 ** 60),
          fc.jsonValue({ maxDepth: 2 }),
        ),
        { maxKeys: 4 },
      )
      .map((o) => ({ type: 'application/json', text: JSON.stringify(o) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .jsonValue({ maxDepth: 2 })
      .map((v) => ({ type: 'application/json', text: JSON.stringify(v) ?? 'null' })),
  },
  {
    weight: 1,
    arbitrary: fc.string({ maxLength: 50 }).map((text) => ({ type: 'application/json', text })),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      type: fc.constantFrom(
        'text/plain',
        'application/x-www-form-urlencoded',
        'application/json; charset=latin1',
        'multipart/form-data',
        '*/*',
        'nonsense',
      ),
      text: fc.string({ maxLength: 50 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.constant({
      type: 'application/json',
      text: `{"slot":"${'g'.repeat(17 * 1024)}"}`,
    }),
  },
);

const fuzzed = fc.record({
  method: fc.oneof(
    { weight: 4, arbitrary: fc.constant('POST') },
    { weight: 2, arbitrary: fc.constant('GET') },
    { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH') },
  ),
  path: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('/admin/switch', '/admin/rollback', '/admin/history') },
    { weight: 2, arbitrary: fc.constantFrom(...PATHS) },
  ),
  query: fc.array(queryPart, { maxLength: 4 }),
  body,
  actor: fc.option(headerText, { nil: undefined }),
});

/** Well-formed switches and rollbacks between the fuzz, so the state really moves. */
const wellFormed = fc
  .record({
    path: fc.constantFrom('/admin/switch', '/admin/rollback'),
    slot: fc.constantFrom('blue', 'green'),
    force: fc.boolean(),
    actor: fc.option(headerText, { nil: undefined }),
  })
  .map(({ path, slot, force, actor }) => {
    const query: Array<[string, string]> = path === '/admin/switch' ? [['slot', slot]] : [];
    if (force) query.push(['force', 'true']);
    return { method: 'POST', path, query, body: undefined, actor };
  });

const request = fc.oneof({ weight: 4, arbitrary: fuzzed }, { weight: 1, arbitrary: wellFormed });

function queryString(parts: Array<[string, string]>): string {
  if (parts.length === 0) return '';
  // Encoded like a client would, except a '%zz' value, left as sent to test the parser.
  return (
    '?' +
    parts
      .map(([k, v]) => `${encodeURIComponent(k)}=${v === '%zz' ? v : encodeURIComponent(v)}`)
      .join('&')
  );
}

describe('the admin API under fuzzed requests', () => {
  let slots: Record<Slot, FakeSlot>;
  let proxy: ProxyProcess;

  beforeAll(async () => {
    slots = await startFakeSlots();
    proxy = await ProxyProcess.start({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      env: { ACCESS_LOG: 'off', LOG_LEVEL: 'warn' },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
  });

  it('answers every request with a documented status and JSON error, and changes state only when it says so', async () => {
    let epoch = 0;
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = {};
        if (r.actor !== undefined) headers['x-actor'] = r.actor;
        if (r.body !== undefined) headers['content-type'] = r.body.type;
        const answer = await proxy.admin(r.method, r.path + queryString(r.query), {
          headers,
          ...(r.body === undefined ? {} : { body: r.body.text }),
        });
        seen.set(answer.status, (seen.get(answer.status) ?? 0) + 1);
        const what = `${r.method} ${r.path}${queryString(r.query)} ${r.body?.text.slice(0, 200) ?? ''} -> ${answer.status} ${answer.text.slice(0, 300)}`;
        expect(DOCUMENTED.has(answer.status), what).toBe(true);
        expect(proxy.alive, what).toBe(true);
        if (r.method === 'HEAD') {
          expect(answer.text, what).toBe('');
          return;
        }
        if (answer.status >= 400) {
          const error = answer.json as { error?: unknown; message?: unknown } | undefined;
          expect(answer.headers['content-type'], what).toMatch(/^application\/json/);
          expect(typeof error?.error, what).toBe('string');
          expect(typeof error?.message, what).toBe('string');
        }
        if (answer.status === 200 && (r.path === '/admin/switch' || r.path === '/admin/rollback')) {
          const state = answer.json as { active: Slot; epoch: number; changed: boolean };
          expect(state.epoch, what).toBe(state.changed ? epoch + 1 : epoch);
          epoch = state.epoch;
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 600) },
    );
    console.log('admin fuzz statuses', Object.fromEntries([...seen].sort()));
    const status = await proxy.status();
    expect(status.epoch).toBe(epoch);
    const history = await proxy.admin('GET', '/admin/history?limit=1000');
    const switched = (history.json as { history: Array<{ result: string; epoch: number }> }).history
      .filter((h) => h.result === 'switched')
      .map((h) => h.epoch)
      .sort((a, b) => a - b);
    expect(switched).toEqual(Array.from({ length: epoch }, (_, i) => i + 1));
  });

  it('never accepts a key that is not exactly the key', async () => {
    // Its own proxy: ten wrong keys throttle the address's wrong keys for a minute.
    const guarded = await ProxyProcess.start({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      env: { ACCESS_LOG: 'off', LOG_LEVEL: 'warn' },
    });
    try {
      const near = [
        PROCESS_ADMIN_KEY.slice(0, -1),
        `${PROCESS_ADMIN_KEY}x`,
        PROCESS_ADMIN_KEY.toUpperCase(),
        ` ${PROCESS_ADMIN_KEY}x`,
        `${PROCESS_ADMIN_KEY.slice(0, 31)}${'0'.repeat(PROCESS_ADMIN_KEY.length - 31)}`,
        `${PROCESS_ADMIN_KEY},${PROCESS_ADMIN_KEY}`,
        `${PROCESS_ADMIN_KEY}\u00a0`,
        '',
        'null',
      ];
      const answers = [];
      for (const key of near) {
        answers.push(
          await guarded.admin('POST', '/admin/switch?slot=green', {
            headers: { authorization: `Bearer ${key}` },
          }),
        );
      }
      answers.push(
        await guarded.admin('POST', '/admin/switch?slot=green', {
          headers: { authorization: `Basic ${PROCESS_ADMIN_KEY}` },
        }),
      );
      for (const answer of answers) {
        expect(answer.status, answer.text).toBe(401);
        expect(answer.json).toMatchObject({ error: 'unauthorized' });
        expect(answer.text).not.toContain(PROCESS_ADMIN_KEY);
      }
      // After ten wrong keys the address's wrong keys get 429; the right key still passes.
      const locked = await guarded.admin('POST', '/admin/switch?slot=green', {
        headers: { authorization: `Bearer ${PROCESS_ADMIN_KEY}x` },
      });
      expect(locked.status).toBe(429);
      expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
      expect(locked.text).not.toContain(PROCESS_ADMIN_KEY);
      expect(await guarded.status()).toMatchObject({ active: 'blue', epoch: 0 });
      expect(guarded.alive).toBe(true);
    } finally {
      await guarded.stop();
    }
  });
});

describe('key comparison timing', () => {
  it('takes the same time for a key with 0 or 31 leading characters right', () => {
    const key = 'k7Q2x9LmP4vR8sT1wY6zA3bC5dE0fG2h'; // 32 characters
    const none = `X${key.slice(1)}`.replace(/./g, (c, i) =>
      i === 0 ? 'X' : c === 'Z' ? 'Y' : 'Z',
    );
    const most = `${key.slice(0, 31)}X`;
    expect(none[0]).not.toBe(key[0]);
    expect(most.slice(0, 31)).toBe(key.slice(0, 31));
    const batch = 200;
    const time = (presented: string) => {
      const start = performance.now();
      for (let i = 0; i < batch; i++) secretsEqual(presented, key);
      return performance.now() - start;
    };
    for (let i = 0; i < 200; i++) time(i % 2 === 0 ? none : most); // warm up
    const a: number[] = [];
    const b: number[] = [];
    // Interleaved, so drift and other processes weigh on both alike.
    for (let i = 0; i < 400; i++) {
      if (i % 2 === 0) {
        a.push(time(none));
        b.push(time(most));
      } else {
        b.push(time(most));
        a.push(time(none));
      }
    }
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const ratio = median(a) / median(b);
    console.log(
      `secretsEqual: median ${(median(a) / batch) * 1e6} ns (0 right) vs ${(median(b) / batch) * 1e6} ns (31 right)`,
    );
    expect(ratio).toBeGreaterThan(0.8);
    expect(ratio).toBeLessThan(1.25);
    expect(secretsEqual(key, key)).toBe(true);
    expect(secretsEqual(most, key)).toBe(false);
  });
});

describe('admin listener address', () => {
  const base = async () => ({
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: String(await freePort()),
    ADMIN_PORT: String(await freePort()),
    ADMIN_API_KEY: PROCESS_ADMIN_KEY,
    BLUE_URL: 'http://127.0.0.1:1',
    GREEN_URL: 'http://127.0.0.1:2',
    STATE_FILE: `/tmp/togather-rel-admin-${process.pid}-${Date.now()}.json`,
    LOG_LEVEL: 'info',
  });

  it('refuses an address that is not plain loopback without ADMIN_ALLOW_REMOTE', async () => {
    const result = await runCli(['proxy'], { ...(await base()), ADMIN_HOST: '::ffff:127.0.0.1' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'ADMIN_HOST: ::ffff:127.0.0.1 is not a loopback address; set ADMIN_ALLOW_REMOTE=on to expose the admin API',
    );
  });

  it('binds it with ADMIN_ALLOW_REMOTE=on and warns at start-up', async () => {
    const env = { ...(await base()), ADMIN_HOST: '::ffff:127.0.0.1', ADMIN_ALLOW_REMOTE: 'on' };
    const child = startCli(['proxy'], env);
    try {
      const line = await child.waitFor(
        /\{[^\n]*"level":40[^\n]*admin API listens off loopback[^\n]*\}/,
      );
      expect(JSON.parse(line[0])).toMatchObject({ admin_host: '::ffff:127.0.0.1' });
      await child.waitFor(/togather proxy listening/);
      const answer = await fetch(`http://127.0.0.1:${env.ADMIN_PORT}/healthz`);
      expect(answer.status).toBe(200);
    } finally {
      await child.stop();
    }
  });
});

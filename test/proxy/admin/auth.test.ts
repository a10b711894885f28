import { describe, expect, it } from 'vitest';
import { AdminAuth } from '../../../proxy/admin/auth.js';

const KEY = 'k'.repeat(40);

function clockedAuth() {
  const clock = { now: 1_000_000 };
  const auth = new AdminAuth({ apiKey: KEY, now: () => clock.now });
  return { auth, clock };
}

describe('admin key check', () => {
  it('accepts the key as a Bearer token, any case of the scheme', () => {
    const { auth } = clockedAuth();
    expect(auth.check('127.0.0.1', `Bearer ${KEY}`)).toEqual({ ok: true });
    expect(auth.check('127.0.0.1', `bearer ${KEY}`)).toEqual({ ok: true });
  });

  it('refuses a missing header, another scheme and a wrong key with 401 and a Bearer challenge', () => {
    const { auth } = clockedAuth();
    expect(auth.check('127.0.0.1', undefined)).toEqual({
      ok: false,
      status: 401,
      error: 'unauthorized',
      message: 'missing Authorization header: send Authorization: Bearer <ADMIN_API_KEY>',
      challenge: 'Bearer realm="togather-admin"',
    });
    expect(auth.check('127.0.0.1', `Basic ${KEY}`)).toMatchObject({
      status: 401,
      message: 'the Authorization header is not of the form Bearer <ADMIN_API_KEY>',
      challenge: 'Bearer realm="togather-admin", error="invalid_token"',
    });
    expect(auth.check('127.0.0.1', `Bearer ${KEY}x`)).toMatchObject({
      status: 401,
      message: 'wrong admin API key',
    });
  });

  it('refuses wrong keys from an address after 10 within a minute; the right key still passes', () => {
    const { auth, clock } = clockedAuth();
    for (let i = 0; i < 10; i++) {
      expect(auth.check('10.0.0.1', 'Bearer wrong')).toMatchObject({ status: 401 });
      clock.now += 1000;
    }
    // the first failure was 10 s ago: it leaves the window in 50 s
    const refused = {
      ok: false,
      status: 429,
      error: 'too_many_attempts',
      message: 'too many failed authentication attempts from 10.0.0.1; retry after 50 s',
      retryAfterSeconds: 50,
    };
    expect(auth.check('10.0.0.1', 'Bearer wrong')).toEqual(refused);
    expect(auth.check('10.0.0.1', `Basic ${KEY}`)).toEqual(refused);
    expect(auth.check('10.0.0.1', undefined)).toEqual(refused);
    expect(auth.check('10.0.0.1', `Bearer ${KEY}`)).toEqual({ ok: true });
    // a success does not clear the record, and refusals are not counted
    expect(auth.check('10.0.0.1', 'Bearer wrong')).toEqual(refused);
    // another address is not affected
    expect(auth.check('10.0.0.2', 'Bearer wrong')).toMatchObject({ status: 401 });
    clock.now += 50_000;
    expect(auth.check('10.0.0.1', 'Bearer wrong')).toMatchObject({ status: 401 });
  });

  it('never refuses the right key, however many wrong ones came before', () => {
    const { auth, clock } = clockedAuth();
    for (let i = 0; i < 1000; i++) {
      auth.check('10.0.0.5', `Bearer wrong-${i}`);
      expect(auth.check('10.0.0.5', `Bearer ${KEY}`)).toEqual({ ok: true });
      clock.now += 7;
    }
    const tracked = (auth as unknown as { failures: Map<string, number[]> }).failures;
    expect(tracked.get('10.0.0.5')).toHaveLength(10);
  });

  it('does not count requests without any key', () => {
    const { auth } = clockedAuth();
    for (let i = 0; i < 20; i++)
      expect(auth.check('10.0.0.3', undefined)).toMatchObject({ status: 401 });
    expect(auth.check('10.0.0.3', `Bearer ${KEY}`)).toEqual({ ok: true });
  });

  it('forgets failures older than the window', () => {
    const { auth, clock } = clockedAuth();
    for (let i = 0; i < 9; i++) auth.check('10.0.0.4', 'Bearer wrong');
    clock.now += 60_000;
    for (let i = 0; i < 9; i++) auth.check('10.0.0.4', 'Bearer wrong');
    expect(auth.check('10.0.0.4', `Bearer ${KEY}`)).toEqual({ ok: true });
  });

  it('keeps its memory bounded under a spray of addresses', () => {
    const auth = new AdminAuth({ apiKey: KEY, maxTrackedAddresses: 100 });
    for (let i = 0; i < 1000; i++) auth.check(`10.1.${i >> 8}.${i & 255}`, 'Bearer wrong');
    const tracked = (auth as unknown as { failures: Map<string, number[]> }).failures;
    expect(tracked.size).toBeLessThanOrEqual(100);
  });
});

import { describe, expect, it } from 'vitest';
import { LoginLimiter } from '../../server/login-limiter.js';

describe('LoginLimiter', () => {
  it('allows 5 failures in 15 minutes, then refuses until the oldest leaves the window', () => {
    let now = 1_000_000;
    const limiter = new LoginLimiter({ now: () => now });
    for (let i = 0; i < 5; i++) {
      expect(limiter.check('a')).toEqual({ allowed: true });
      limiter.recordFailure('a');
      now += 60_000;
    }
    // Failures at 0, 1, 2, 3 and 4 minutes; now is 5 minutes: the first leaves at 15.
    expect(limiter.check('a')).toEqual({ allowed: false, retryAfterSeconds: 600 });
    expect(limiter.check('b')).toEqual({ allowed: true });
    now += 600_000;
    expect(limiter.check('a')).toEqual({ allowed: true });
    limiter.recordFailure('a');
    expect(limiter.check('a')).toEqual({ allowed: false, retryAfterSeconds: 60 });
  });

  it('forgets a client after a successful login', () => {
    const limiter = new LoginLimiter();
    for (let i = 0; i < 5; i++) limiter.recordFailure('a');
    expect(limiter.check('a').allowed).toBe(false);
    limiter.recordSuccess('a');
    expect(limiter.check('a')).toEqual({ allowed: true });
  });

  it('keeps memory bounded by forgetting the clients that failed longest ago', () => {
    const limiter = new LoginLimiter({ maxClients: 3 });
    for (const client of ['a', 'b', 'c', 'd']) {
      for (let i = 0; i < 5; i++) limiter.recordFailure(client);
    }
    expect(limiter.check('a')).toEqual({ allowed: true });
    for (const client of ['b', 'c', 'd']) expect(limiter.check(client).allowed).toBe(false);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeProbe, healthUrl, runHealthGate } from '../../../proxy/admin/health-gate.js';
import { FakeSlot } from '../../support/fake-slot.js';
import { closedPort } from '../../../harness/ports.js';

describe('health gate', () => {
  let slot: FakeSlot;

  beforeAll(async () => {
    slot = await FakeSlot.start('green');
  });
  afterAll(async () => {
    await slot.close();
  });

  it('passes on the first 200 and reports status and version', async () => {
    slot.setHealth({ status: 200, delayMs: 0, version: '2.3.4' });
    const before = slot.healthRequests;
    const result = await runHealthGate(healthUrl(slot.url, '/health'));
    expect(result.healthy).toBe(true);
    expect(result.attempts).toHaveLength(1);
    expect(result.attempts[0]).toMatchObject({
      url: `${slot.url}/health`,
      ok: true,
      status_code: 200,
      status: 'healthy',
      version: '2.3.4',
    });
    expect(slot.healthRequests - before).toBe(1);
  });

  it('refuses after three non-200 answers and says what it saw', async () => {
    slot.setHealth({ status: 503, delayMs: 0 });
    const before = slot.healthRequests;
    const result = await runHealthGate(healthUrl(slot.url, '/health'), { retryDelayMs: 10 });
    expect(result.healthy).toBe(false);
    expect(result.attempts).toHaveLength(3);
    for (const probe of result.attempts) {
      expect(probe).toMatchObject({ ok: false, status_code: 503, status: 'unhealthy' });
    }
    expect(slot.healthRequests - before).toBe(3);
    expect(describeProbe(result.attempts[2]!)).toBe(
      `GET ${slot.url}/health answered 503 (status unhealthy)`,
    );
  });

  it('counts an answer slower than the timeout as a failure', async () => {
    slot.setHealth({ status: 200, delayMs: 1500 });
    const result = await runHealthGate(healthUrl(slot.url, '/health'), {
      timeoutMs: 200,
      tries: 2,
      retryDelayMs: 10,
    });
    expect(result.healthy).toBe(false);
    expect(result.attempts.map((a) => a.error)).toEqual([
      'no answer within 200 ms',
      'no answer within 200 ms',
    ]);
    slot.setHealth({ delayMs: 0 });
  });

  it('reports a refused connection', async () => {
    const url = `http://127.0.0.1:${await closedPort()}/health`;
    const result = await runHealthGate(url, { tries: 1 });
    expect(result.healthy).toBe(false);
    expect(result.attempts[0]!.error).toMatch(/^ECONNREFUSED/);
    expect(describeProbe(result.attempts[0]!)).toMatch(`GET ${url} failed: ECONNREFUSED`);
  });

  it('passes when a later try answers 200', async () => {
    slot.setHealth({ status: 503, delayMs: 0 });
    const flip = setTimeout(() => slot.setHealth({ status: 200 }), 300);
    const result = await runHealthGate(healthUrl(slot.url, '/health'), { retryDelayMs: 1000 });
    clearTimeout(flip);
    expect(result.healthy).toBe(true);
    expect(result.attempts.map((a) => a.status_code)).toEqual([503, 200]);
  });

  it('keeps a path prefix of the slot URL', () => {
    expect(healthUrl('http://app:8080/', '/health')).toBe('http://app:8080/health');
    expect(healthUrl('http://app:8080/sel', '/health')).toBe('http://app:8080/sel/health');
  });
});

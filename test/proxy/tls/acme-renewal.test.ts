import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ACME_TEST_DOMAIN as DOMAIN,
  eventually,
  metricValue,
  pebbleSuite,
  type AcmeEdge,
} from '../../support/acme-fixture.js';
import { PEBBLE_MISSING } from '../../support/pebble.js';
import { httpsGet, keepAliveAgent } from '../../support/tls-clients.js';

/** Pebble issues certificates this short-lived: due for renewal after a third of it. */
const VALIDITY_SECONDS = 30;

describe.skipIf(PEBBLE_MISSING !== undefined)(
  `ACME renewal and retries against pebble${PEBBLE_MISSING ? ` (skipped: ${PEBBLE_MISSING})` : ''}`,
  () => {
    const suite = pebbleSuite({ validitySeconds: VALIDITY_SECONDS });
    let dir: string;

    afterEach(() => rm(dir, { recursive: true, force: true }));

    async function edge(): Promise<AcmeEdge> {
      dir = await mkdtemp(join(tmpdir(), 'togather-acme-'));
      return suite.edge({ ACME_RENEW_BEFORE: '1m', CERT_DIR: dir });
    }

    const status = (e: AcmeEdge) => e.layer.acme!.status()[0]!;
    const orders = (e: AcmeEdge, result: string) =>
      metricValue(e.registry, 'togather_proxy_acme_orders_total', { result });

    it('renews a third into the lifetime when ACME_RENEW_BEFORE exceeds it, keeping connections open', async () => {
      const e = await edge();
      const first = await eventually(() => status(e).serial ?? undefined, 'a certificate');
      const { not_before, not_after, renew_at } = status(e);
      const lifetime = Date.parse(not_after!) - Date.parse(not_before!);
      expect(lifetime).toBeLessThanOrEqual(VALIDITY_SECONDS * 1000);
      expect(Date.parse(renew_at!)).toBe(Date.parse(not_before!) + Math.floor(lifetime / 3));

      // A keep-alive connection busy across the renewal keeps its certificate.
      const target = { port: e.port, servername: DOMAIN, ca: suite.root };
      const agent = keepAliveAgent(target);
      expect((await httpsGet(target, agent)).serial).toBe(first);
      const second = await eventually(
        async () => {
          const answer = await httpsGet(target, agent);
          expect(answer).toMatchObject({ status: 200, serial: first, reused: true });
          const serial = status(e).serial;
          return serial !== first ? serial : undefined;
        },
        'the renewed certificate',
        VALIDITY_SECONDS * 1000,
      );
      expect(await httpsGet(target, agent)).toMatchObject({ serial: first, reused: true });
      agent.destroy();
      // New connections get the new one.
      expect((await httpsGet(target)).serial).toBe(second);
      expect(await orders(e, 'success')).toBe(2);
      expect(status(e)).toMatchObject({ failures: 0, last_error: null });
    });

    it('retries a failing renewal with a growing, bounded backoff and serves the old certificate meanwhile', async () => {
      const e = await edge();
      const first = await eventually(() => status(e).serial ?? undefined, 'a certificate');
      suite.challenge.broken = true;
      const target = { port: e.port, servername: DOMAIN, ca: suite.root };

      // Generous: on a loaded machine each failing order (a few CA round trips
      // and a DNS lookup by the CA) can take seconds; the log says which.
      await eventually(
        () => (status(e).failures >= 4 ? true : undefined),
        'four failed renewals',
        2 * VALIDITY_SECONDS * 1000,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${acmeTimeline(e)}`);
      });
      const failing = status(e);
      expect(failing.serial).toBe(first);
      expect(failing.last_error).toMatch(/404|unauthorized|invalid/i);
      expect(Date.parse(failing.next_attempt!)).toBeGreaterThan(Date.parse(failing.last_attempt!));
      expect((await httpsGet(target)).serial).toBe(first);
      expect(await orders(e, 'failure')).toBeGreaterThanOrEqual(4);

      // The waits from a failure to the next order double from 400 ms up to
      // 1600 ms, jittered down by at most a quarter (measured from the failure,
      // so the time the failing order itself took does not count).
      const events = e.logs.lines.filter(
        (line) =>
          (line.msg === 'ACME order' && line.renewing === true) ||
          line.msg === 'ACME renewal failed; the current certificate stays in service',
      );
      const waits: { planned: number; waited: number }[] = [];
      events.forEach((line, i) => {
        const next = events[i + 1];
        if (line.msg === 'ACME order' || next?.msg !== 'ACME order') return;
        waits.push({
          planned: line.retry_in_ms as number,
          waited: Date.parse(next.time as string) - Date.parse(line.time as string),
        });
      });
      expect(waits.length, acmeTimeline(e)).toBeGreaterThanOrEqual(3);
      const bases = [400, 800, 1600, 1600];
      waits.slice(0, 4).forEach(({ planned, waited }, i) => {
        expect(planned).toBeGreaterThanOrEqual(bases[i]! * 0.75);
        expect(planned).toBeLessThanOrEqual(bases[i]!);
        // A timer fires no earlier than planned (log times are whole ms), and late only on a busy machine.
        expect(waited).toBeGreaterThanOrEqual(planned - 1);
        expect(waited).toBeLessThan(planned + 3000);
      });

      suite.challenge.broken = false;
      const renewed = await eventually(
        () => (status(e).serial !== first ? status(e).serial! : undefined),
        'a renewal once the CA can validate again',
        2 * VALIDITY_SECONDS * 1000,
      );
      expect((await httpsGet(target)).serial).toBe(renewed);
      expect(status(e)).toMatchObject({ failures: 0, last_error: null });
    }, 180_000);
  },
);

/** The manager's ACME log lines with their times, for failure messages. */
function acmeTimeline(e: AcmeEdge): string {
  return e.logs.lines
    .filter((line) => typeof line.msg === 'string' && /ACME|certificate/.test(line.msg))
    .map(
      (line) => `${line.time as string} ${line.msg as string} ${line.err ? String(line.err) : ''}`,
    )
    .join('\n');
}

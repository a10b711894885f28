/**
 * Scenario 3, fleet propagation: two proxies on one Redis. Each switch goes to
 * proxy A's admin API; the figure is the time from A's 200 until proxy B
 * serves the new slot (B's public listener is polled back to back; each poll
 * is one keep-alive round trip, a fraction of a millisecond).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { httpRequest, keepAliveAgent } from '../../harness/http-client.js';
import { SLOT_HEADER } from '../load.js';
import { startProxy, type ProxyProcess } from '../proxy-process.js';
import { startRedis } from '../redis-process.js';
import { proxyUnavailable, type Scenario, type ScenarioOutcome } from '../scenario.js';
import { fixed, percentile } from '../stats.js';
import { startUpstream } from '../upstream-process.js';
import { UPSTREAM_PATHS } from '../upstream.js';

/** A switch not seen on B within this long counts as not propagated. */
const PROPAGATION_LIMIT_MS = 5_000;

interface SwitchSample {
  to: string;
  status: number;
  /** ms from A's 200 to B's first response from the new slot; undefined when not seen. */
  propagationMs: number | undefined;
  /** ms A's admin API took to answer (health gate + store write). */
  adminMs: number;
}

async function waitForSlot(
  proxy: ProxyProcess,
  slot: string,
  agent: ReturnType<typeof keepAliveAgent>,
): Promise<number | undefined> {
  const deadline = performance.now() + PROPAGATION_LIMIT_MS;
  const url = `${proxy.url}${UPSTREAM_PATHS.small}`;
  while (performance.now() < deadline) {
    try {
      const answer = await httpRequest(url, { agent, timeoutMs: PROPAGATION_LIMIT_MS });
      if (answer.headers[SLOT_HEADER] === slot) return answer.headersAt;
    } catch {
      // a failed poll is retried until the deadline
    }
  }
  return undefined;
}

export const fleetScenario: Scenario = {
  name: 'fleet',
  title: 'Fleet propagation',
  async run(context): Promise<ScenarioOutcome> {
    const { options, available } = context;
    if (available.proxyMissing !== undefined) return proxyUnavailable(available.proxyMissing);
    const redis = await startRedis();
    const blue = await startUpstream('blue');
    const green = await startUpstream('green');
    const prefix = `togather-bench-${randomBytes(4).toString('hex')}:`;
    const common = {
      blueUrl: blue.url,
      greenUrl: green.url,
      redisUrl: redis.url,
      redisKeyPrefix: prefix,
      cpuProfileDir: options.cpuProfileDir,
    };
    const samples: SwitchSample[] = [];
    const agent = keepAliveAgent();
    let proxyA: ProxyProcess | undefined;
    let proxyB: ProxyProcess | undefined;
    try {
      proxyA = await startProxy({ name: 'fleet-a', ...common });
      proxyB = await startProxy({ name: 'fleet-b', ...common });
      const initial = await proxyA.status();
      let active = initial.active === 'green' ? 'green' : 'blue';
      context.log(`fleet: ${options.switches} switches on proxy A, watching proxy B`);
      for (let i = 0; i < options.switches; i++) {
        const to = active === 'blue' ? 'green' : 'blue';
        const answer = await proxyA.switchTo(to);
        if (answer.status !== 200) {
          samples.push({
            to,
            status: answer.status,
            propagationMs: undefined,
            adminMs: Number.NaN,
          });
          continue;
        }
        active = to;
        const seenAt = await waitForSlot(proxyB, to, agent);
        samples.push({
          to,
          status: answer.status,
          propagationMs: seenAt === undefined ? undefined : Math.max(0, seenAt - answer.answeredAt),
          adminMs: answer.answeredAt - answer.sentAt,
        });
      }
    } finally {
      agent.destroy();
      await proxyB?.stop();
      await proxyA?.stop();
      await blue.process.stop();
      await green.process.stop();
      await redis.stop();
    }
    const seen = samples
      .map((s) => s.propagationMs)
      .filter((ms): ms is number => ms !== undefined)
      .sort((a, b) => a - b);
    const admin = samples
      .map((s) => s.adminMs)
      .filter((ms) => Number.isFinite(ms))
      .sort((a, b) => a - b);
    const refused = samples.filter((s) => s.status !== 200).length;
    const missed = samples.length - refused - seen.length;
    const figures = {
      switches: samples.length,
      refused,
      notPropagatedWithin5s: missed,
      propagationP50: percentile(seen, 50),
      propagationP99: percentile(seen, 99),
      propagationMax: seen.length > 0 ? seen[seen.length - 1]! : Number.NaN,
      adminP50: percentile(admin, 50),
      adminP99: percentile(admin, 99),
    };
    const markdown = `${samples.length} switches on proxy A (Redis store, two proxies sharing one key prefix), each measured from A's 200 to the first response from proxy B carrying the new slot in X-Togather-Slot. One system, so no rounds.

| propagation p50 | p99 | max | refused switches | not seen on B within 5 s | admin API answer p50 / p99 |
| --- | --- | --- | --- | --- | --- |
| ${fixed(figures.propagationP50)} ms | ${fixed(figures.propagationP99)} ms | ${fixed(figures.propagationMax)} ms | ${refused} | ${missed} | ${fixed(figures.adminP50)} / ${fixed(figures.adminP99)} ms |
`;
    context.log(
      `fleet: propagation p50 ${fixed(figures.propagationP50)} ms, p99 ${fixed(figures.propagationP99)} ms, max ${fixed(figures.propagationMax)} ms`,
    );
    return { data: { figures, samples }, markdown, skipped: [] };
  },
};

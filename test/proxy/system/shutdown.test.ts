import { Agent } from 'node:http';
import { describe, expect, it } from 'vitest';
import { twoSlotsAndEdge } from '../../support/edge.js';
import { headerOf } from '../../support/fake-slot.js';
import { until } from '../../support/wait.js';
import { httpRequest } from '../../../harness/http-client.js';

describe('edge proxy shutdown', () => {
  it('stops accepting, lets a request in flight finish with Connection: close, then resolves', async () => {
    const t = await twoSlotsAndEdge();
    const idle = new Agent({ keepAlive: true });
    try {
      // An idle keep-alive connection must not hold the shutdown.
      await httpRequest(`${t.url}/echo/warm`, { agent: idle });
      const inFlight = httpRequest(`${t.url}/slow?ms=2000`, {
        headers: { 'x-request-id': 'last-1' },
        agent: new Agent({ keepAlive: true }),
      });
      await until(() => t.blue.requests.some((r) => headerOf(r, 'x-request-id') === 'last-1'));

      let closed = false;
      const closing = t.edge.close(10_000).then(() => (closed = true));
      await until(() => !t.edge.server.listening);
      await expect(httpRequest(`${t.url}/echo/too-late`)).rejects.toThrow(/ECONNREFUSED/);
      // The slot answers only after 2 s: the shutdown is still waiting for it.
      expect(closed).toBe(false);
      expect(t.edge.upstreams.blue.inflight).toBe(1);

      const answer = await inFlight;
      expect(answer.status).toBe(200);
      expect(answer.headers['x-togather-slot']).toBe('blue');
      expect(answer.headers.connection).toBe('close');
      await closing;
      expect(await t.logs.waitFor((l) => l.msg === 'edge proxy closed')).toMatchObject({
        cut_connections: 0,
      });
    } finally {
      idle.destroy();
      await t.close();
    }
  });

  it('cuts what is still running when the shutdown timeout passes', async () => {
    const t = await twoSlotsAndEdge();
    try {
      const inFlight = httpRequest(`${t.url}/slow?ms=60000`, {
        headers: { 'x-request-id': 'stuck-1' },
      });
      await until(() => t.blue.requests.some((r) => headerOf(r, 'x-request-id') === 'stuck-1'));
      await t.edge.close(300);
      await expect(inFlight).rejects.toThrow(/socket hang up|ECONNRESET/);
      expect(await t.logs.waitFor((l) => l.msg === 'edge proxy closed')).toMatchObject({
        cut_connections: 1,
      });
      await until(() => t.edge.upstreams.blue.inflight === 0);
    } finally {
      await t.close();
    }
  });
});

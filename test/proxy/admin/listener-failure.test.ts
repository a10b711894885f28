import { readFile } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';

/**
 * A state listener that throws (a bug in a metric, a relay, a log line) is
 * logged and the others still run: the switch that was written is applied
 * and answered 200, never 500.
 */
describe('a throwing slot state listener', () => {
  let t: SlotsAndEdge;

  beforeEach(async () => {
    t = await twoSlotsAndEdge({ env: { ACCESS_LOG: 'off' }, healthPollIntervalMs: 200 });
  });
  afterEach(() => t?.close());

  async function servedBy(): Promise<string | null> {
    const response = await fetch(`${t.proxy.publicUrl}/events`);
    await response.arrayBuffer();
    return response.headers.get('x-togather-slot');
  }

  it('on the file store: POST /admin/switch answers 200 and the switch is applied', async () => {
    let heard = 0;
    t.proxy.store.onState(() => {
      throw new Error('listener bug');
    });
    t.proxy.store.onState(() => heard++);

    const answer = await t.admin('POST', '/admin/switch?slot=green');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ active: 'green', epoch: 1, changed: true });
    expect(await servedBy()).toBe('green');
    expect(t.proxy.edge.registry.current).toMatchObject({ active: 'green', epoch: 1 });
    const stored = JSON.parse(await readFile(t.stateFile, 'utf8')) as object;
    expect(stored).toMatchObject({ active: 'green', epoch: 1 });
    // The listener after the one that threw heard the state too.
    expect(heard).toBe(1);
    expect(t.logs.find((l) => l.msg === 'a slot state listener failed')).toMatchObject({
      level: 50,
      err: expect.objectContaining({ message: 'listener bug' }),
    });
  });

  it('on the registry: the switch is answered 200 and the data plane still moves', async () => {
    t.proxy.edge.registry.onChange(() => {
      throw new Error('change listener bug');
    });
    const answer = await t.admin('POST', '/admin/switch?slot=green');
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ active: 'green', epoch: 1 });
    expect(await servedBy()).toBe('green');
    expect((await t.admin('POST', '/admin/switch?slot=blue')).status).toBe(200);
    expect(await servedBy()).toBe('blue');
  });
});

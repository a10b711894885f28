import { mkdtemp, readdir, readFile, rm, unlink, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logger.js';
import { loadProxyConfig } from '../../../proxy/config.js';
import { FileSlotStore, historyFileFor } from '../../../proxy/state/file-store.js';
import { startProxy } from '../../../proxy/main.js';
import type { SlotState } from '../../../proxy/state/slot-state.js';
import { StoreCorruptError, StoreUnavailableError } from '../../../proxy/state/store.js';
import type { SwitchRecord } from '../../../proxy/state/switch-record.js';
import { LogCapture, startTestEdge, TEST_ADMIN_KEY } from '../../support/edge.js';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { httpRequest } from '../../../harness/http-client.js';

function next(from: SlotState, actor = 'test'): SlotState {
  return {
    active: from.active === 'blue' ? 'green' : 'blue',
    previous: from.active,
    epoch: from.epoch + 1,
    switched_at: new Date().toISOString(),
    actor,
  };
}

function record(epoch: number, result: SwitchRecord['result'] = 'switched'): SwitchRecord {
  return {
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, epoch)).toISOString(),
    actor: 'test',
    from: 'blue',
    to: 'green',
    epoch,
    result,
  };
}

describe('FileSlotStore', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'togather-file-store-'));
    file = join(dir, 'state', 'proxy-state.json');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes DEFAULT_SLOT at first start, creating the directory, and leaves no temp file', async () => {
    const store = new FileSlotStore({ stateFile: file });
    const state = await store.init('green');
    expect(state).toMatchObject({ active: 'green', previous: null, epoch: 0, actor: 'init' });
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(state);
    expect(await readdir(join(dir, 'state'))).toEqual(['proxy-state.json']);
    expect(store.kind).toBe('file');
    expect(store.location).toBe(file);
    expect(store.isUp()).toBe(true);
    await store.close();
  });

  it('keeps the state across a restart, whatever DEFAULT_SLOT says then', async () => {
    const first = new FileSlotStore({ stateFile: file });
    const initial = await first.init('blue');
    const switched = next(initial, 'ops');
    expect(await first.compareAndSet(0, switched)).toEqual({ ok: true, state: switched });
    await first.close();

    const second = new FileSlotStore({ stateFile: file });
    expect(await second.init('blue')).toEqual(switched);
    expect(await second.read()).toEqual(switched);
    await second.close();
  });

  it('compare-and-set writes only over the expected epoch and tells listeners', async () => {
    const store = new FileSlotStore({ stateFile: file });
    const initial = await store.init('blue');
    const seen: SlotState[] = [];
    store.onState((state) => seen.push(state));

    const first = next(initial);
    expect(await store.compareAndSet(0, first)).toEqual({ ok: true, state: first });
    const stale = { ...next(initial), actor: 'late' };
    expect(await store.compareAndSet(0, stale)).toEqual({ ok: false, state: first });
    expect(seen).toEqual([first]);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual(first);
    await store.close();
  });

  it('lets exactly one of many concurrent switches from one epoch win', async () => {
    const store = new FileSlotStore({ stateFile: file });
    const initial = await store.init('blue');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.compareAndSet(0, next(initial, `actor-${i}`))),
    );
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    for (const result of results) expect(result.state).toEqual(winners[0]!.state);
    expect(await store.read()).toEqual(winners[0]!.state);
    await store.close();
  });

  it('refuses a next state that is invalid or not newer', async () => {
    const store = new FileSlotStore({ stateFile: file });
    const initial = await store.init('blue');
    await expect(store.compareAndSet(0, { ...next(initial), epoch: 0 })).rejects.toThrow(
      new RangeError('compareAndSet: next epoch 0 is not above 0'),
    );
    await expect(
      store.compareAndSet(0, { ...next(initial), active: 'purple' as 'blue' }),
    ).rejects.toThrow(
      new RangeError('compareAndSet: invalid next state: active is not blue or green'),
    );
    await store.close();
  });

  it.each([
    ['not JSON', '{"active": "blue",', /it is not JSON \(/],
    ['empty', '', /it is not JSON \(/],
    ['an array', '[]', /: active is not blue or green\./],
    [
      'a bad slot',
      '{"active":"purple","previous":null,"epoch":0,"switched_at":"2026-01-01T00:00:00Z","actor":"x"}',
      /: active is not blue or green\./,
    ],
    [
      'a negative epoch',
      '{"active":"blue","previous":null,"epoch":-1,"switched_at":"2026-01-01T00:00:00Z","actor":"x"}',
      /: epoch is not a non-negative integer\./,
    ],
  ])(
    'refuses to start on a state file that is %s, with a clear message',
    async (_, content, reason) => {
      await new FileSlotStore({ stateFile: file }).init('blue'); // creates the directory
      await writeFile(file, content);
      const store = new FileSlotStore({ stateFile: file });
      const error = await store.init('blue').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreCorruptError);
      const message = (error as Error).message;
      expect(message.startsWith(`state file ${file} is corrupt: `)).toBe(true);
      expect(message).toMatch(reason);
      expect(message.endsWith('Fix it, or move it away to start again from DEFAULT_SLOT.')).toBe(
        true,
      );
      // The corrupt file is left for the operator to look at.
      expect(await readFile(file, 'utf8')).toBe(content);
    },
  );

  it('reports an unusable location as unavailable', async () => {
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'not a directory');
    const store = new FileSlotStore({ stateFile: join(blocker, 'proxy-state.json') });
    const error = await store.init('blue').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as Error).message).toMatch(/^cannot create the directory of \/.*: EEXIST: /);
  });

  it('reports a state file deleted under it as unavailable on read', async () => {
    const store = new FileSlotStore({ stateFile: file });
    await store.init('blue');
    await unlink(file);
    await expect(store.read()).rejects.toThrow(StoreUnavailableError);
    await store.close();
  });

  it('keeps a capped history next to the state file, newest first, across restarts', async () => {
    const store = new FileSlotStore({ stateFile: file, historyLimit: 5 });
    await store.init('blue');
    for (let epoch = 1; epoch <= 12; epoch++) await store.appendHistory(record(epoch));
    const newest = (await store.history(100)).map((r) => r.epoch);
    expect(newest).toEqual([12, 11, 10, 9, 8]);
    expect((await store.history(2)).map((r) => r.epoch)).toEqual([12, 11]);
    expect(await store.history(0)).toEqual([]);
    await store.close();

    const historyFile = historyFileFor(file);
    expect(historyFile).toBe(join(dir, 'state', 'proxy-state.history.jsonl'));
    const lines = (await readFile(historyFile, 'utf8')).trim().split('\n');
    expect(lines.length).toBeLessThanOrEqual(10);

    // An unreadable line (a torn write, a hand edit) is skipped, not fatal.
    await appendFile(historyFile, '{"broken":\n');
    await appendFile(
      historyFile,
      JSON.stringify({ ...record(13, 'refused'), reason: 'unhealthy' }) + '\n',
    );
    const reopened = new FileSlotStore({ stateFile: file, historyLimit: 5 });
    await reopened.init('blue');
    expect(await reopened.history(3)).toEqual([
      { ...record(13, 'refused'), reason: 'unhealthy' },
      record(12),
      record(11),
    ]);
    await reopened.close();
  });
});

describe('edge proxy on a file store', () => {
  let blue: FakeSlot;
  let green: FakeSlot;
  let dir: string;

  beforeAll(async () => {
    ({ blue, green } = await startFakeSlots());
    dir = await mkdtemp(join(tmpdir(), 'togather-edge-restart-'));
  });

  afterAll(async () => {
    await Promise.all([blue?.close(), green?.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the switched slot after a restart', async () => {
    const first = await startTestEdge({ blueUrl: blue.url, greenUrl: green.url, dir });
    expect((await httpRequest(`${first.url}/echo`)).headers['x-togather-slot']).toBe('blue');
    const state = await first.switchTo('green');
    await first.stop();

    const second = await startTestEdge({ blueUrl: blue.url, greenUrl: green.url, dir });
    try {
      expect(second.edge.registry.current).toEqual(state);
      expect((await httpRequest(`${second.url}/echo`)).headers['x-togather-slot']).toBe('green');
    } finally {
      await second.stop();
    }
  });

  it('refuses to start on a corrupt state file', async () => {
    const stateFile = join(dir, 'corrupt', 'proxy-state.json');
    await new FileSlotStore({ stateFile }).init('blue');
    await writeFile(stateFile, 'garbage');
    const config = loadProxyConfig({
      ADMIN_API_KEY: TEST_ADMIN_KEY,
      PROXY_PORT: '0',
      PROXY_HOST: '127.0.0.1',
      ADMIN_PORT: '0',
      BLUE_URL: blue.url,
      GREEN_URL: green.url,
      STATE_FILE: stateFile,
    });
    const logs = new LogCapture();
    const attempt = startProxy(config, {
      logger: createLogger({ level: 'info', destination: logs.stream }),
    });
    await expect(attempt).rejects.toThrow(StoreCorruptError);
    await expect(attempt).rejects.toThrow(`state file ${stateFile} is corrupt: it is not JSON (`);
  });
});

import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSlots, type FakeSlot } from '../../support/fake-slot.js';
import { H2Client } from '../../support/h2-client.js';
import { selfSigned } from '../../support/pebble.js';
import { freePort } from '../../../harness/ports.js';
import { ProxyProcess } from '../../../harness/proxy-process.js';

const run = promisify(execFile);
const LOAD_MS = 6000;
const SWITCH_EVERY_MS = 200;
const SESSIONS = 2;
const STREAMS_PER_SESSION = 4;

const H2LOAD = (process.env.PATH ?? '').split(delimiter).some((dir) => {
  try {
    accessSync(join(dir, 'h2load'), constants.X_OK);
    return true;
  } catch {
    return false;
  }
});

interface Tally {
  blue: number;
  green: number;
  failed: string[];
  untagged: number;
  mismatched: number;
}

/** Requests on one HTTP/2 connection, `streams` at a time, until `until`; every answer checked. */
async function loadOn(client: H2Client, streams: number, until: number, tally: Tally) {
  const worker = async () => {
    while (Date.now() < until) {
      try {
        const answer = await client.request('/events?h2-cutover=1');
        if (answer.status !== 200) {
          tally.failed.push(`status ${answer.status}`);
          continue;
        }
        const slot = answer.headers['x-togather-slot'];
        if (slot !== 'blue' && slot !== 'green') {
          tally.untagged++;
          continue;
        }
        tally[slot]++;
        if ((JSON.parse(answer.body) as { slot?: unknown }).slot !== slot) tally.mismatched++;
      } catch (error) {
        tally.failed.push(String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: streams }, worker));
}

describe('cutover under HTTP/2 load', () => {
  let slots: Record<'blue' | 'green', FakeSlot>;
  let proxy: ProxyProcess;
  let dir: string;
  let ca: string;
  let tlsPort: number;

  beforeAll(async () => {
    slots = await startFakeSlots();
    dir = await mkdtemp(join(tmpdir(), 'togather-h2-cutover-'));
    const pair = await selfSigned(dir, 'localhost');
    ca = await readFile(pair.certFile, 'utf8');
    tlsPort = await freePort();
    proxy = await ProxyProcess.start({
      blueUrl: slots.blue.url,
      greenUrl: slots.green.url,
      env: {
        PROXY_TLS_PORT: String(tlsPort),
        TLS_CERT_FILE: pair.certFile,
        TLS_KEY_FILE: pair.keyFile,
        DRAIN_TIMEOUT: '5s',
        ACCESS_LOG: 'off',
        LOG_LEVEL: 'warn',
      },
    });
  });
  afterAll(async () => {
    await proxy?.stop();
    await Promise.all([slots?.blue.close(), slots?.green.close()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`${LOAD_MS / 1000} s of HTTP/2 load (node:http2${H2LOAD ? ' and h2load' : ''}) with a switch every ${SWITCH_EVERY_MS} ms: no failed request, every answer tagged by the slot that served it`, async () => {
    const tally: Tally = { blue: 0, green: 0, failed: [], untagged: 0, mismatched: 0 };
    const clients = await Promise.all(
      Array.from({ length: SESSIONS }, () => H2Client.connect(`https://127.0.0.1:${tlsPort}`, ca)),
    );
    const until = Date.now() + LOAD_MS;
    const load = Promise.all(clients.map((c) => loadOn(c, STREAMS_PER_SESSION, until, tally)));
    const h2load = H2LOAD
      ? run(
          'h2load',
          [
            '-c',
            '2',
            '-m',
            '4',
            '-D',
            String(LOAD_MS / 1000),
            `https://127.0.0.1:${tlsPort}/events`,
          ],
          { timeout: LOAD_MS + 30_000 },
        )
      : undefined;

    const switches: Array<{ status: number; changed: unknown }> = [];
    let target: 'blue' | 'green' = 'green';
    while (Date.now() < until - SWITCH_EVERY_MS) {
      const started = Date.now();
      const answer = await proxy.switchTo(target, '&force=true');
      switches.push({
        status: answer.status,
        changed: (answer.json as { changed?: unknown }).changed,
      });
      target = target === 'green' ? 'blue' : 'green';
      await new Promise((r) =>
        setTimeout(r, Math.max(0, SWITCH_EVERY_MS - (Date.now() - started))),
      );
    }
    await load;
    await Promise.all(clients.map((c) => c.close()));
    console.log(
      `h2 cutover: ${JSON.stringify({ ...tally, failed: tally.failed.length, switches: switches.length })}`,
    );

    expect(tally.failed).toEqual([]);
    expect(tally.untagged).toBe(0);
    expect(tally.mismatched).toBe(0);
    expect(tally.blue).toBeGreaterThan(0);
    expect(tally.green).toBeGreaterThan(0);
    expect(switches.filter((s) => s.status !== 200 || s.changed !== true)).toEqual([]);
    expect(switches.length).toBeGreaterThanOrEqual(5);

    if (h2load !== undefined) {
      const { stdout } = await h2load;
      const requests =
        /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
          stdout,
        );
      const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(stdout);
      console.log(`h2load: ${requests?.[0]}; ${codes?.[0]}`);
      expect(requests, stdout).not.toBeNull();
      const [, , , done, succeeded, failed, errored, timeout] = requests!.map(Number);
      expect({ failed, errored, timeout }).toEqual({ failed: 0, errored: 0, timeout: 0 });
      expect(succeeded).toBe(done);
      expect(done).toBeGreaterThan(0);
      expect(codes!.slice(2).map(Number)).toEqual([0, 0, 0]);
      expect(stdout).toMatch(/Application protocol: h2/);
    }
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeSlots, type FakeSlot } from '../support/fake-slot.js';
import { closedPort, freePort } from '../../harness/ports.js';
import { runCli, startCli, waitForHttp } from '../support/processes.js';
import { WatchedProcess } from '../../harness/child-process.js';

const KEY = 'cli-test-admin-key-0123456789abcdefghijkl';

interface ProxyChild {
  process: WatchedProcess;
  publicUrl: string;
  adminUrl: string;
}

describe('togather proxy, switch, rollback, status as processes', () => {
  let slots: Record<'blue' | 'green', FakeSlot>;
  let dir: string;
  let stateFile: string;
  let proxy: ProxyChild;

  function proxyEnv(ports: { proxy: number; admin: number }, extra: Record<string, string> = {}) {
    return {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(ports.proxy),
      ADMIN_PORT: String(ports.admin),
      ADMIN_API_KEY: KEY,
      BLUE_URL: slots.blue.url,
      GREEN_URL: slots.green.url,
      STATE_FILE: stateFile,
      ACCESS_LOG: 'off',
      ...extra,
    };
  }

  async function startProxyChild(): Promise<ProxyChild> {
    const ports = { proxy: await freePort(), admin: await freePort() };
    const child = startCli(['proxy'], proxyEnv(ports));
    const adminUrl = `http://127.0.0.1:${ports.admin}`;
    try {
      await child.waitFor(/togather proxy listening/);
      await waitForHttp(`${adminUrl}/healthz`);
    } catch (error) {
      await child.stop('SIGKILL');
      throw error;
    }
    return { process: child, publicUrl: `http://127.0.0.1:${ports.proxy}`, adminUrl };
  }

  function admin(args: string[], env: Record<string, string> = {}) {
    return runCli(args, { ADMIN_URL: proxy.adminUrl, ADMIN_API_KEY: KEY, ...env });
  }

  async function servedBy(): Promise<string | null> {
    const response = await fetch(`${proxy.publicUrl}/events`);
    await response.arrayBuffer();
    return response.headers.get('x-togather-slot');
  }

  let stateN = 0;

  beforeAll(async () => {
    slots = await startFakeSlots();
    dir = await mkdtemp(join(tmpdir(), 'togather-proxy-cli-'));
  });
  afterAll(async () => {
    await Promise.all([slots.blue.close(), slots.green.close()]);
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    // Every test starts from a state file of its own.
    stateFile = join(dir, `proxy-state-${++stateN}.json`);
  });

  describe('with a running proxy', () => {
    beforeEach(async () => {
      proxy = await startProxyChild();
    });
    afterEach(async () => {
      await proxy.process.stop();
    });

    it('switch, same-slot switch, refused switch, forced switch, rollback, status, history', async () => {
      expect(await servedBy()).toBe('blue');

      const switched = await admin(['switch', 'green']);
      expect(switched).toEqual({
        code: 0,
        stdout: 'switched blue -> green (epoch 1)\n',
        stderr: '',
      });
      expect(await servedBy()).toBe('green');

      const same = await admin(['switch', 'green']);
      expect(same).toEqual({
        code: 0,
        stdout: 'green is already active (epoch 1); nothing changed\n',
        stderr: '',
      });

      slots.blue.setHealth({ status: 503 });
      try {
        const refused = await admin(['switch', 'blue']);
        expect(refused).toEqual({
          code: 1,
          stdout: '',
          stderr: `togather: switch refused (409 target_unhealthy): blue is unhealthy: GET ${slots.blue.url}/health answered 503 (status unhealthy) (3 tries); use force to switch anyway\n`,
        });
        expect(await servedBy()).toBe('green');

        const forced = await admin(['switch', 'blue', '--force']);
        expect(forced).toEqual({
          code: 0,
          stdout: 'switched green -> blue (epoch 2) (forced, health gate skipped)\n',
          stderr: '',
        });
        expect(await servedBy()).toBe('blue');
      } finally {
        slots.blue.setHealth({ status: 200 });
      }

      const rolledBack = await admin(['rollback']);
      expect(rolledBack).toEqual({
        code: 0,
        stdout: 'rolled back blue -> green (epoch 3)\n',
        stderr: '',
      });
      expect(await servedBy()).toBe('green');

      const json = await admin(['status', '--json']);
      expect(json.code).toBe(0);
      const status = JSON.parse(json.stdout) as Record<string, unknown>;
      expect(status).toMatchObject({
        active: 'green',
        previous: 'blue',
        epoch: 3,
        actor: expect.stringMatching(/^cli/),
        store: { kind: 'file', location: stateFile, connected: true },
        slots: {
          blue: { url: slots.blue.url, active: false },
          green: { url: slots.green.url, active: true },
        },
      });

      const text = await admin(['status']);
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^active: +green \(epoch 3, since \S+, by cli\S*\)\n/);
      expect(text.stdout).toContain('previous:  blue\n');
      expect(text.stdout).toContain(`store:     file ${stateFile} (connected)\n`);
      expect(text.stdout).toMatch(new RegExp(`  green +${slots.green.url} .*\\[active\\]\\n`));

      const response = await fetch(`${proxy.adminUrl}/admin/history?limit=100`, {
        headers: { authorization: `Bearer ${KEY}` },
      });
      const { history } = (await response.json()) as {
        history: { actor: string; result: string; to: string }[];
      };
      expect(history.map((h) => [h.result, h.to])).toEqual([
        ['switched', 'green'],
        ['switched', 'blue'],
        ['refused', 'blue'],
        ['unchanged', 'green'],
        ['switched', 'green'],
      ]);
      for (const entry of history) expect(entry.actor).toMatch(/^cli/);
    });

    it('a wrong key, a missing key, an unreachable proxy and a bad slot fail with the reason', async () => {
      expect(await admin(['status'], { ADMIN_API_KEY: 'not-the-key' })).toEqual({
        code: 1,
        stdout: '',
        stderr: 'togather: status refused (401 unauthorized): wrong admin API key\n',
      });
      const noKey = await runCli(['switch', 'green'], { ADMIN_URL: proxy.adminUrl });
      expect(noKey).toEqual({
        code: 2,
        stdout: '',
        stderr:
          'togather: invalid configuration:\n  - ADMIN_API_KEY: is required (the proxy admin API key)\n',
      });
      const port = await closedPort();
      const unreachable = await admin(['rollback'], { ADMIN_URL: `http://127.0.0.1:${port}` });
      expect(unreachable.code).toBe(1);
      expect(unreachable.stderr).toMatch(
        new RegExp(
          `^togather: rollback failed: cannot reach the admin API at http://127\\.0\\.0\\.1:${port}: ECONNREFUSED`,
        ),
      );
      const purple = await admin(['switch', 'purple']);
      expect(purple.code).toBe(2);
      expect(purple.stderr).toContain(
        "error: command-argument value 'purple' is invalid for argument 'slot'. Allowed choices are blue, green.",
      );
    });

    it('the state survives a restart of the proxy, and SIGTERM exits 0', async () => {
      expect((await admin(['switch', 'green'])).code).toBe(0);
      const before = JSON.parse((await admin(['status', '--json'])).stdout) as {
        active: string;
        epoch: number;
      };
      const stopped = await proxy.process.stop('SIGTERM');
      expect(stopped).toEqual({ code: 0, signal: null });
      expect(proxy.process.stdout).toContain('togather proxy stopped');
      proxy = await startProxyChild();
      const after = JSON.parse((await admin(['status', '--json'])).stdout) as {
        active: string;
        epoch: number;
      };
      expect(before).toMatchObject({ active: 'green', epoch: 1 });
      expect(after).toMatchObject({ active: 'green', epoch: 1 });
      expect(await servedBy()).toBe(before.active);
    });
  });

  describe('start-up refusals', () => {
    it('a short key and other bad variables: exit 2 listing every one', async () => {
      const result = await runCli(['proxy'], {
        ...proxyEnv({ proxy: 0, admin: 0 }),
        ADMIN_API_KEY: 'short',
        PROXY_PORT: 'eighty',
      });
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('togather: invalid configuration:\n');
      expect(result.stderr).toContain('  - ADMIN_API_KEY: must be at least 32 characters\n');
      expect(result.stderr).toMatch(/ {2}- PROXY_PORT: .+\n/);
      expect(result.stderr).not.toContain('    at ');
    });

    it('an admin listener off loopback without ADMIN_ALLOW_REMOTE: exit 2', async () => {
      const result = await runCli(['proxy'], {
        ...proxyEnv({ proxy: 0, admin: 0 }),
        ADMIN_HOST: '10.1.2.3',
      });
      expect(result).toEqual({
        code: 2,
        stdout: '',
        stderr:
          'togather: invalid configuration:\n  - ADMIN_HOST: 10.1.2.3 is not a loopback address; set ADMIN_ALLOW_REMOTE=on to expose the admin API\n',
      });
    });

    it('an UPSTREAM_CA_FILE that is missing or not PEM: exit 2 naming it', async () => {
      const missing = join(dir, 'no-such-ca.pem');
      const notPem = join(dir, 'not-a-ca.pem');
      await writeFile(notPem, 'certificate? no.\n');
      for (const [file, problem] of [
        [missing, `cannot read ${missing} (ENOENT)`],
        [notPem, `${notPem} holds no PEM certificate (-----BEGIN CERTIFICATE----- block)`],
      ] as const) {
        const result = await runCli(['proxy'], {
          ...proxyEnv({ proxy: 0, admin: 0 }),
          BLUE_URL: 'https://127.0.0.1:8443',
          UPSTREAM_CA_FILE: file,
        });
        expect(result).toEqual({
          code: 2,
          stdout: '',
          stderr: `togather: invalid configuration:\n  - UPSTREAM_CA_FILE: ${problem}\n`,
        });
      }
    });

    it('no key at all: exit 2 naming ADMIN_API_KEY', async () => {
      const env: Record<string, string> = proxyEnv({ proxy: 0, admin: 0 });
      delete env.ADMIN_API_KEY;
      const result = await runCli(['proxy'], env);
      expect(result).toEqual({
        code: 2,
        stdout: '',
        stderr:
          'togather: invalid configuration:\n  - ADMIN_API_KEY: is required (the admin API key, at least 32 characters)\n',
      });
    });

    it('a corrupt state file: exit 1 with the reason', async () => {
      const corrupt = join(dir, 'corrupt.json');
      await writeFile(corrupt, '{"active": "purple"');
      const result = await runCli(['proxy'], {
        ...proxyEnv({ proxy: await freePort(), admin: await freePort() }),
        STATE_FILE: corrupt,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /^togather: cannot start the proxy: the stored slot state is unreadable: .+\n$/,
      );
      expect(result.stderr).toContain(corrupt);
      expect(result.stderr).not.toContain('    at ');
    });

    it('a port in use: exit 1 saying so', async () => {
      const blocker = createServer();
      await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
      const taken = (blocker.address() as { port: number }).port;
      try {
        const result = await runCli(['proxy'], {
          ...proxyEnv({ proxy: await freePort(), admin: taken }),
          STATE_FILE: join(dir, 'port-test.json'),
        });
        expect(result.code).toBe(1);
        expect(result.stderr).toMatch(
          new RegExp(
            `^togather: cannot start the proxy: a port is already in use \\(.*${taken}.*\\)\\n$`,
          ),
        );
      } finally {
        blocker.close();
      }
    });
  });
});

describe('togather proxy --help', () => {
  it('lists every variable the proxy reads and points at the docs in this repository', async () => {
    const { PROXY_VARIABLES } = await import('../../proxy/config.js');
    const help = await runCli(['proxy', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('docs/architecture.md');
    expect(help.stdout).not.toContain('DESIGN');
    for (const name of PROXY_VARIABLES) expect(help.stdout).toMatch(new RegExp(`\\b${name}\\b`));
    for (const line of help.stdout.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });
});

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, writeEnvFile } from '../support/deploy-fixtures.js';
import { CLI, runCli } from '../support/processes.js';

describe('togather CLI', () => {
  it('version prints the build metadata', async () => {
    const result = await runCli(['version']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^togather \S+\n/);
    expect(result.stdout).toContain(`node:       ${process.version}`);
  });

  it('version --json prints one object with the five fields', async () => {
    const result = await runCli(['version', '--json'], { VERSION: 'ignored-at-run-time' });
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as Record<string, string>;
    expect(Object.keys(report).sort()).toEqual(
      ['build_date', 'git_commit', 'node_version', 'platform', 'version'].sort(),
    );
    expect(report.version).not.toBe('ignored-at-run-time');
    expect(report.node_version).toBe(process.version);
    expect(report.platform).toBe(`${process.platform}/${process.arch}`);
  });

  it('an unknown command exits 2 with usage on stderr', async () => {
    const result = await runCli(['no-such-command']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown command 'no-such-command'");
    expect(result.stderr).toContain('Usage: togather');
  });

  it('an unknown flag exits 2 with the command usage', async () => {
    const result = await runCli(['version', '--no-such-flag']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown option '--no-such-flag'");
    expect(result.stderr).toContain('Usage: togather version');
  });

  it('no command at all exits 2 with usage', async () => {
    const result = await runCli([]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('Usage: togather');
  });

  it('--help exits 0', async () => {
    const result = await runCli(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Commands:');
  });
});

describe('togather CLI: durations too long for a timer', () => {
  const huge = '99999999999999999999';

  it('a flag of any command refuses one with a clear line, exit 2', async () => {
    const health = await runCli(['healthcheck', '--timeout', huge, '--url', 'http://127.0.0.1:1/']);
    expect(health.code).toBe(2);
    expect(health.stdout).toBe('');
    expect(health.stderr).toContain(
      `error: option '--timeout <duration>' argument '${huge}' is invalid. too long: at most 2147483647 ms, about 24.8 days\n`,
    );
    expect(health.stderr).not.toContain('out of range');

    const deploy = await runCli(['deploy', '--runner', 'local', '--health-interval', '30d']);
    expect(deploy.code).toBe(2);
    expect(deploy.stderr).toBe(
      'togather: --health-interval: "30d" is too long a duration (at most 2147483647 ms, about 24.8 days)\n',
    );
    const long = await runCli(['deploy', '--runner', 'local', '--lock-ttl', '600h']);
    expect(long.code).toBe(2);
    expect(long.stderr).toBe(
      'togather: --lock-ttl: "600h" is too long a duration (at most 2147483647 ms, about 24.8 days)\n',
    );
  });

  it('an env variable of any command refuses one, listed with the other bad variables', async () => {
    const proxy = await runCli(['proxy'], {
      ADMIN_API_KEY: 'k'.repeat(40),
      DRAIN_TIMEOUT: huge,
      UPSTREAM_TIMEOUT: '1000h',
      PROXY_PORT: 'eighty',
    });
    expect(proxy.code).toBe(2);
    expect(proxy.stderr).toBe(
      'togather: invalid configuration:\n' +
        '  - PROXY_PORT: must be a port number (0-65535)\n' +
        `  - DRAIN_TIMEOUT: "${huge}" is too long a duration (at most 2147483647 ms, about 24.8 days)\n` +
        '  - UPSTREAM_TIMEOUT: "1000h" is too long a duration (at most 2147483647 ms, about 24.8 days)\n',
    );
  });
});

describe('togather CLI: a closed pipe', () => {
  const dir = tempDir('cli-pipe');
  afterAll(() => dir.cleanup());

  /** A state directory whose latest deployment prints far more than a pipe holds. */
  function bigHistory(): string {
    const state = join(dir.path, 'state');
    mkdirSync(state, { recursive: true });
    const steps = Array.from({ length: 200 }, (_, i) => ({
      name: `step-${i}`,
      status: 'ok',
      started_at: '2030-01-01T00:00:00.000Z',
      duration_ms: 5,
      detail: 'x'.repeat(2_000),
    }));
    const records = Array.from({ length: 200 }, (_, i) => ({
      id: `20300101T000000Z-${String(i).padStart(8, '0')}`,
      version: `1.0.${i}`,
      git_commit: 'abc1234',
      artifact: '/build',
      runner: 'local',
      from_slot: 'blue',
      to_slot: 'green',
      started_at: new Date(Date.UTC(2030, 0, 1) - i * 1000).toISOString(),
      finished_at: null,
      duration_ms: 1000,
      result: 'deployed',
      reason: null,
      rollback_reason: null,
      actor: 'deploy:test',
      steps: i === 0 ? steps : [],
    }));
    writeFileSync(join(state, 'deployments.json'), JSON.stringify(records));
    return writeEnvFile(join(dir.path, 'deploy.env'), { DEPLOY_STATE_DIR: state });
  }

  it('`togather deploy status | head -3` ends quietly: no EPIPE, no stack trace, exit 0', async () => {
    const env = bigHistory();
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        const child = spawn(
          'bash',
          ['-c', 'set -o pipefail; "$NODE" "$CLI" deploy status --env "$ENV_FILE" | head -3'],
          {
            env: { PATH: process.env.PATH, NODE: process.execPath, CLI, ENV_FILE: env },
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
        child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toHaveLength(4);
    expect(r.stdout).toMatch(/^deployed 1\.0\.0 \(blue -> green\)/);
  });

  it('every command whose reader has gone before it writes ends quietly', async () => {
    const env = bigHistory();
    for (const args of [
      ['version'],
      ['--help'],
      ['deploy', 'history', '--env', env],
      ['deploy', 'status', '--env', env, '--json'],
    ]) {
      const child = spawn(process.execPath, [CLI, ...args], {
        env: { PATH: process.env.PATH },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.destroy(); // the reader is gone: every write meets EPIPE
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect({ args, code, stderr }).toEqual({ args, code: 0, stderr: '' });
    }
  });
});

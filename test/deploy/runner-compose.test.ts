import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createComposeRunner } from '../../deploy/runners/runner-compose.js';
import { tempDir } from '../support/deploy-fixtures.js';

// No Docker engine here: a stand-in `docker` client records how it is called
// (arguments and the slot image variable) and exits as told.
const dir = tempDir('compose-runner');
const calls = join(dir.path, 'calls.log');
const docker = join(dir.path, 'docker');
writeFileSync(
  docker,
  `#!/bin/sh
echo "TOGATHER_BLUE_IMAGE=\${TOGATHER_BLUE_IMAGE:-} TOGATHER_GREEN_IMAGE=\${TOGATHER_GREEN_IMAGE:-} $*" >> ${calls}
if [ -n "\${FAKE_DOCKER_FAIL:-}" ]; then echo "Error response from daemon: no such image" >&2; exit 17; fi
echo "done"
`,
);
chmodSync(docker, 0o755);

afterAll(() => dir.cleanup());

function runner() {
  return createComposeRunner({
    image: 'togather:1.4.0',
    files: ['/stack/docker-compose.yml', '/stack/docker-compose.blue-green.yml'],
    envFile: '/stack/.env',
    ports: { blue: 8081, green: 8082 },
    docker,
  });
}

function lastCall(): string {
  return readFileSync(calls, 'utf8').trim().split('\n').pop()!;
}

const BASE =
  'compose -f /stack/docker-compose.yml -f /stack/docker-compose.blue-green.yml --env-file /stack/.env';

describe('compose runner', () => {
  it('starts only the idle slot service with the new image', async () => {
    const r = runner();
    expect(await r.start('green')).toBe('togather-green running togather:1.4.0');
    expect(lastCall()).toBe(
      `TOGATHER_BLUE_IMAGE= TOGATHER_GREEN_IMAGE=togather:1.4.0 ${BASE} up -d --no-deps --force-recreate togather-green`,
    );
    expect(r.slotUrl('green')).toBe('http://127.0.0.1:8082');
    expect(r.artifact).toBe('togather:1.4.0');
  });

  it('runs snapshot and migrate in a one-off container of the new image', async () => {
    const result = await runner().runCommand('blue', ['migrate', 'up']);
    expect(result).toEqual({ code: 0, output: 'done\n' });
    expect(lastCall()).toBe(
      `TOGATHER_BLUE_IMAGE=togather:1.4.0 TOGATHER_GREEN_IMAGE= ${BASE} run --rm --no-deps togather-blue migrate up`,
    );
  });

  it('stops the old slot', async () => {
    expect(await runner().stop('blue')).toBe('togather-blue stopped');
    expect(lastCall()).toContain(`${BASE} stop togather-blue`);
  });

  it('restore after a failed deploy stops the slot it started, and only that', async () => {
    const r = runner();
    expect(await r.restore('green', { retries: 1, intervalMs: 1 })).toBe(
      'togather-green left as docker compose up left it',
    );
    await r.start('green');
    expect(await r.restore('green', { retries: 1, intervalMs: 1 })).toBe(
      'togather-green stopped, so the failed togather:1.4.0 serves nothing (its previous container was replaced)',
    );
    expect(lastCall()).toBe(
      `TOGATHER_BLUE_IMAGE= TOGATHER_GREEN_IMAGE=togather:1.4.0 ${BASE} stop togather-green`,
    );
  });

  it('reports a failing docker call with its exit code and last output', async () => {
    process.env.FAKE_DOCKER_FAIL = '1';
    try {
      await expect(runner().start('green')).rejects.toThrow(
        'docker compose up of togather-green failed (exit 17): Error response from daemon: no such image',
      );
      const result = await runner().runCommand('green', ['snapshot', 'create']);
      expect(result.code).toBe(17);
    } finally {
      delete process.env.FAKE_DOCKER_FAIL;
    }
  });

  it('reports a missing docker client', async () => {
    const missing = createComposeRunner({
      image: 'x:1',
      files: [],
      envFile: '.env',
      ports: { blue: 1, green: 2 },
      docker: join(dir.path, 'no-such-docker'),
    });
    const result = await missing.runCommand('blue', ['migrate', 'up']);
    expect(result.code).toBe(127);
    expect(result.output).toContain('ENOENT');
  });
});

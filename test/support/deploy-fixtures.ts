import { randomBytes } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processAlive } from '../../common/process-alive.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A temp folder removed by `cleanup()`. */
export function tempDir(prefix: string): { path: string; cleanup(): void } {
  const path = mkdtempSync(join(tmpdir(), `togather-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A random secret the app accepts (no placeholder look, long enough). */
export function secret(bytes = 48): string {
  return randomBytes(bytes).toString('base64url');
}

/** The secrets a deploy's env file must hold: random, as long as the app and the proxy require. */
export function deploySecrets(proxyAdminKey = secret(32)): Record<string, string> {
  return {
    JWT_SECRET: secret(48),
    ADMIN_API_KEY: secret(32),
    ADMIN_PASSWORD: secret(18),
    PROXY_ADMIN_API_KEY: proxyAdminKey,
  };
}

/**
 * A release laid out like the image's /app: package.json (ESM), node_modules,
 * dist/ with the SQL migrations, and build-info.json saying `version`. The
 * code is this checkout's build: "version B" is the same app reporting B.
 */
export function makeRelease(parent: string, version: string): string {
  const dir = join(parent, `release-${version}`);
  mkdirSync(dir, { recursive: true });
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'server', 'migrations'), join(dir, 'dist', 'server', 'migrations'), {
    recursive: true,
  });
  writeFileSync(join(dir, 'package.json'), readFileSync(join(ROOT, 'package.json')));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const infoFile = join(dir, 'dist', 'build-info.json');
  const info = JSON.parse(readFileSync(infoFile, 'utf8')) as Record<string, string>;
  writeFileSync(infoFile, JSON.stringify({ ...info, version, git_commit: `test-${version}` }));
  return join(dir, 'dist');
}

/**
 * A tiny build whose `cli/togather.js` is a real node:http server honouring
 * the same CLI and environment as `togather serve` (SLOT, SERVER_HOST,
 * SERVER_PORT; migrate and snapshot succeed), for the failures the real app
 * must never be made to fake, and for deploys that need no database:
 * - `healthy`: healthy, reports `version` on /version;
 * - `unhealthy`: /health answers 503 from the start;
 * - `fails-behind-proxy`: healthy until the first request that came through
 *   the proxy (X-Forwarded-For), then 500 on everything: a version that
 *   breaks right after the switch.
 */
export function makeFakeBuild(
  parent: string,
  version: string,
  mode: 'healthy' | 'unhealthy' | 'fails-behind-proxy',
): string {
  const dir = join(parent, `fake-${mode}-${version}`);
  mkdirSync(join(dir, 'cli'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(
    join(dir, 'build-info.json'),
    JSON.stringify({ version, git_commit: 'fake', build_date: 'now' }),
  );
  writeFileSync(
    join(dir, 'cli', 'togather.js'),
    `import { createServer } from 'node:http';
const version = ${JSON.stringify(version)};
const mode = ${JSON.stringify(mode)};
const command = process.argv[2];
if (command === 'migrate' || command === 'snapshot') {
  console.log(command + ': done (test build)');
  process.exit(0);
}
if (command !== 'serve') {
  console.error('unknown command ' + command);
  process.exit(2);
}
let broken = mode === 'unhealthy';
const server = createServer((req, res) => {
  if (mode === 'fails-behind-proxy' && req.headers['x-forwarded-for']) broken = true;
  const path = (req.url || '/').split('?')[0];
  let status = 200;
  let body;
  if (path === '/health') {
    status = broken ? 503 : 200;
    body = { status: broken ? 'unhealthy' : 'healthy', slot: process.env.SLOT, version, git_commit: 'fake',
      checks: { database: { status: broken ? 'fail' : 'pass', message: broken ? 'test build: broken' : 'ok', latency_ms: 0 } },
      timestamp: new Date().toISOString() };
  } else if (broken) {
    status = 500;
    body = { error: 'test build: broken' };
  } else if (path === '/version') {
    body = { version, git_commit: 'fake', build_date: 'now', node_version: process.version };
  } else {
    body = { ok: true, slot: process.env.SLOT };
  }
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
});
server.listen(Number(process.env.SERVER_PORT), process.env.SERVER_HOST || '127.0.0.1');
const stop = () => { server.close(() => process.exit(0)); server.closeAllConnections(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
`,
  );
  return dir;
}

/** Writes an env file (mode 600 unless given). */
export function writeEnvFile(path: string, values: Record<string, string>, mode = 0o600): string {
  writeFileSync(
    path,
    Object.entries(values)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') + '\n',
    { mode },
  );
  return path;
}

/** Kills the slot processes a local deploy left running (from its slots.json). */
export function killSlotProcesses(stateDir: string): void {
  let slots: Record<string, { pid: number }> = {};
  try {
    slots = JSON.parse(readFileSync(join(stateDir, 'slots.json'), 'utf8')) as typeof slots;
  } catch {
    return;
  }
  for (const entry of Object.values(slots)) {
    if (processAlive(entry.pid)) {
      try {
        process.kill(entry.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/** The steps of a local deploy, in the order it runs and prints them. */
export const DEPLOY_STEPS = [
  'validate',
  'lock',
  'active',
  'snapshot',
  'migrate',
  'start',
  'health',
  'switch',
  'verify',
  'stop-old',
] as const;

/** `togather deploy --runner local --env <envFile> --build <build>`, then `flags`. */
export function localDeployArgs(envFile: string, build: string, ...flags: string[]): string[] {
  return ['deploy', '--runner', 'local', '--env', envFile, '--build', build, ...flags];
}

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  copyPaths,
  execForm,
  instructionsOf,
  isIgnored,
  parseDockerfile,
  type Instruction,
  type Stage,
} from '../support/dockerfile.js';
import { closedPort, freePorts } from '../../harness/ports.js';
import { WatchedProcess } from '../../harness/child-process.js';
import { waitForHttp } from '../support/processes.js';
import { PROXY_NODE_FLAGS } from '../../proxy/heap-tuning.js';

// There is no Docker engine on these machines: the image is checked by reading
// its Dockerfile, and everything it copies or runs is checked against the repo.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const ignorePatterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n');

function stage(name: string): Stage {
  const found = dockerfile.stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage named ${name}`);
  return found;
}

function runs(s: Stage): string[] {
  return instructionsOf(s, 'RUN').map((i) => i.text);
}

function only(s: Stage, keyword: string): Instruction {
  const found = instructionsOf(s, keyword);
  expect(found, `${s.name} has exactly one ${keyword}`).toHaveLength(1);
  return found[0]!;
}

describe('Dockerfile reader', () => {
  it('joins continuations, drops comments inside them and reads both forms', () => {
    const parsed = parseDockerfile(
      [
        '# syntax=docker/dockerfile:1',
        'ARG BASE=node:22-alpine',
        'FROM ${BASE} AS one',
        'RUN echo a \\',
        '# a comment inside the continuation',
        '  && echo b',
        'COPY --chown=1:1 --chmod=0755 a b /dst/',
        'CMD ["x", "y"]',
        'FROM one',
        'HEALTHCHECK --interval=5s CMD ["true"]',
      ].join('\n'),
    );
    expect(parsed.directives).toEqual({ syntax: 'docker/dockerfile:1' });
    expect(parsed.globalArgs).toEqual({ BASE: 'node:22-alpine' });
    expect(parsed.stages.map((s) => [s.name, s.image])).toEqual([
      ['one', 'node:22-alpine'],
      ['1', 'one'],
    ]);
    const one = parsed.stages[0]!;
    expect(runs(one)).toEqual(['echo a  && echo b']);
    const copy = only(one, 'COPY');
    expect(copy.flags).toEqual({ chown: '1:1', chmod: '0755' });
    expect(copyPaths(copy)).toEqual({ sources: ['a', 'b'], destination: '/dst/' });
    expect(only(one, 'CMD').json).toEqual(['x', 'y']);
    const health = only(parsed.stages[1]!, 'HEALTHCHECK');
    expect(health.flags).toEqual({ interval: '5s' });
    expect(health.text).toBe('CMD ["true"]');
  });

  it('matches .dockerignore patterns like Docker, with ! re-including', () => {
    const patterns = ['node_modules', '*.md', '**/.env', 'docs/', '!docs/keep.md'];
    expect(isIgnored('node_modules/x/index.js', patterns)).toBe(true);
    expect(isIgnored('README.md', patterns)).toBe(true);
    expect(isIgnored('deploy/docker/.env', patterns)).toBe(true);
    expect(isIgnored('.env', patterns)).toBe(true);
    expect(isIgnored('docs/keep.md', patterns)).toBe(false);
    expect(isIgnored('deploy/cli.ts', patterns)).toBe(false);
    expect(isIgnored('deploy/x.env.example', patterns)).toBe(false);
  });
});

describe('Dockerfile', () => {
  it('has a builder and a runtime stage, both on an official Node 24 LTS Alpine image (NODE_IMAGE)', () => {
    expect(dockerfile.globalArgs.NODE_IMAGE).toBe('node:24-alpine');
    expect(dockerfile.stages.map((s) => s.name)).toEqual(['builder', 'runtime']);
    for (const s of dockerfile.stages)
      expect(s.image).toMatch(/^node:24(\.\d+){0,2}-alpine[\d.]*$/);
    for (const from of dockerfile.stages.map((s) => only(s, 'FROM').text)) {
      expect(from).toMatch(/^\$\{NODE_IMAGE\} AS /);
    }
  });

  it('builder: npm ci, then the build with the three build args, then prunes dev dependencies', () => {
    const builder = stage('builder');
    const commands = runs(builder);
    const ci = commands.findIndex((c) => /\bnpm ci\b/.test(c));
    const build = commands.findIndex((c) => /\bnpm run build\b/.test(c));
    expect(ci).toBeGreaterThanOrEqual(0);
    expect(build).toBeGreaterThan(ci);
    const buildRun = commands[build]!;
    expect(buildRun).toMatch(/npm run build[\s\S]*npm prune --omit=dev/);

    const args = instructionsOf(builder, 'ARG').map((i) => i.text.split('=')[0]);
    const buildLine = instructionsOf(builder, 'RUN')[build]!.line;
    for (const name of ['VERSION', 'GIT_COMMIT', 'BUILD_DATE']) {
      expect(args).toContain(name);
      const declared = instructionsOf(builder, 'ARG').find((i) => i.text.startsWith(name))!;
      expect(declared.line, `${name} is declared before the build`).toBeLessThan(buildLine);
      // handed to the build, which fixes it into dist/build-info.json
      expect(buildRun).toContain(`${name}="\${${name}}"`);
    }
  });

  it('the build script it runs fixes VERSION, GIT_COMMIT and BUILD_DATE into build-info.json', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.build).toContain('scripts/write-build-info.mjs');
    const out = mkdtempSync(join(tmpdir(), 'togather-buildinfo-'));
    try {
      // Run the script on a copy of the repo layout it expects (../dist from scripts/).
      const script = join(out, 'scripts', 'write-build-info.mjs');
      mkdirSync(join(out, 'scripts'));
      writeFileSync(script, readFileSync(join(ROOT, 'scripts', 'write-build-info.mjs')));
      writeFileSync(join(out, 'package.json'), JSON.stringify({ version: '9.9.9' }));
      execFileSync(process.execPath, [script], {
        env: { PATH: process.env.PATH, VERSION: '1.2.3', GIT_COMMIT: 'abc1234', BUILD_DATE: 'D' },
        cwd: out,
      });
      expect(JSON.parse(readFileSync(join(out, 'dist', 'build-info.json'), 'utf8'))).toEqual({
        version: '1.2.3',
        git_commit: 'abc1234',
        build_date: 'D',
      });
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('builder copies every source folder the build compiles', () => {
    const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
    };
    const copied = instructionsOf(stage('builder'), 'COPY').flatMap((i) => copyPaths(i).sources);
    // bench/ (and harness/, which only bench and the tests use) is compiled for
    // `npm run bench` on a checkout, never run in the image.
    for (const folder of tsconfig.include.filter((f) => f !== 'bench' && f !== 'harness')) {
      expect(copied, `COPY ${folder}`).toContain(folder);
    }
    for (const file of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'scripts',
    ]) {
      expect(copied).toContain(file);
    }
  });

  it('every file it copies from the build context exists and is not excluded by .dockerignore', () => {
    for (const s of dockerfile.stages) {
      for (const copy of [...instructionsOf(s, 'COPY'), ...instructionsOf(s, 'ADD')]) {
        if (copy.flags.from !== undefined) continue;
        for (const source of copyPaths(copy).sources) {
          expect(existsSync(join(ROOT, source)), `${source} (line ${copy.line}) exists`).toBe(true);
          expect(isIgnored(source, ignorePatterns), `${source} is in the build context`).toBe(
            false,
          );
        }
      }
    }
  });

  it('runtime copies only from the builder stage what runs: dist, production node_modules, package.json', () => {
    const runtime = stage('runtime');
    const fromBuilder = instructionsOf(runtime, 'COPY').filter((i) => i.flags.from !== undefined);
    expect(fromBuilder.map((i) => i.flags.from)).toEqual(fromBuilder.map(() => 'builder'));
    expect(
      fromBuilder
        .map((i) => copyPaths(i))
        .sort((a, b) => a.destination.localeCompare(b.destination)),
    ).toEqual([
      { sources: ['/app/dist'], destination: './dist' },
      // the SQL files, where the compiled migrator looks first (dist/server/migrations)
      { sources: ['/app/server/migrations'], destination: './dist/server/migrations' },
      { sources: ['/app/node_modules'], destination: './node_modules' },
      { sources: ['/app/package.json'], destination: './package.json' },
    ]);
    for (const copy of fromBuilder) expect(copy.flags.chown).toBe('togather:togather');
  });

  it('runtime runs as the non-root user togather with uid and gid 1000', () => {
    const runtime = stage('runtime');
    const setup = runs(runtime).join('\n');
    expect(setup).toMatch(/addgroup -g 1000 togather/);
    expect(setup).toMatch(/adduser -u 1000 -G togather\b/);
    expect(only(runtime, 'USER').text).toBe('togather:togather');
    // USER comes after every RUN that needs root
    const userLine = only(runtime, 'USER').line;
    for (const run of instructionsOf(runtime, 'RUN')) expect(run.line).toBeLessThan(userLine);
  });

  it('/app/server is an executable wrapper that runs the built CLI', () => {
    const runtime = stage('runtime');
    const wrapper = instructionsOf(runtime, 'COPY').find(
      (i) => copyPaths(i).destination === '/app/server',
    );
    expect(wrapper).toBeDefined();
    expect(wrapper!.flags.chmod).toBe('0755');
    const source = copyPaths(wrapper!).sources[0]!;
    const text = readFileSync(join(ROOT, source), 'utf8');
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
    expect(text).toContain('exec node /app/dist/cli/togather.js "$@"');
    // `proxy` gets the proxy's node flags, on the command line where V8 reads them.
    expect(text).toContain(
      `exec node ${PROXY_NODE_FLAGS.join(' ')} /app/dist/cli/togather.js "$@"`,
    );
    expect(statSync(join(ROOT, source)).mode & 0o111).not.toBe(0);

    // The same wrapper pointed at this checkout's build really runs the CLI with its arguments.
    const local = text.replaceAll('/app/dist/', `${join(ROOT, 'dist')}/`);
    const out = execFileSync('sh', ['-c', local, 'server', 'version', '--json'], {
      encoding: 'utf8',
    });
    expect(JSON.parse(out)).toMatchObject({ node_version: process.version });

    // The node flags reach the proxy's process, and only the proxy's.
    const script = 'JSON.stringify(process.execArgv.slice(0, -2))';
    const flagsOf = (command: string, env: NodeJS.ProcessEnv = {}): unknown =>
      JSON.parse(
        execFileSync(
          'sh',
          ['-c', text.replaceAll('/app/dist/cli/togather.js', `-p '${script}'`), 'server', command],
          { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } },
        ),
      );
    expect(flagsOf('proxy')).toEqual(PROXY_NODE_FLAGS);
    expect(flagsOf('serve')).toEqual([]);
    // An operator's own value in NODE_OPTIONS is left to win.
    expect(flagsOf('proxy', { NODE_OPTIONS: '--max-semi-space-size=16' })).toEqual([]);
    expect(flagsOf('proxy', { NODE_OPTIONS: '--trace-warnings' })).toEqual(PROXY_NODE_FLAGS);

    // A command file it cannot write (a read-only /tmp) leaves the command running, silently.
    const unwritable = spawnSync('sh', ['-c', local, 'server', 'serve', '--help'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, TOGATHER_COMMAND_FILE: '/nonexistent/dir/togather-command' },
    });
    expect(unwritable.stderr).toBe('');
    expect(unwritable.status).toBe(0);
    expect(unwritable.stdout).toContain('Usage: togather serve');
  });

  it('entry point /app/server, default command serve, health check through the CLI, ports 8080, 9464, 80 and 443', () => {
    const runtime = stage('runtime');
    expect(only(runtime, 'ENTRYPOINT').json).toEqual(['/app/server']);
    expect(only(runtime, 'CMD').json).toEqual(['serve']);
    const health = only(runtime, 'HEALTHCHECK');
    expect(health.text).toBe('CMD ["/app/server", "healthcheck"]');
    for (const flag of ['interval', 'timeout', 'start-period', 'retries']) {
      expect(health.flags[flag], `HEALTHCHECK --${flag}`).toBeDefined();
    }
    expect(only(runtime, 'EXPOSE').text.split(/\s+/).sort()).toEqual(['443', '80', '8080', '9464']);
    expect(only(runtime, 'WORKDIR').text).toBe('/app');
    expect(runs(runtime).join('\n')).toContain('postgresql16-client'); // pg_dump for snapshots
  });

  it('.dockerignore keeps history, dependencies, build output, coverage, docs, bench and secrets out', () => {
    for (const path of [
      '.git/HEAD',
      'node_modules/pg/package.json',
      'dist/cli/togather.js',
      'coverage/index.html',
      'docs/guide.md',
      'bench/results/steady.json',
      'README.md',
      '.env',
      'deploy/docker/.env',
      '.togather/proxy-state.json',
      'test/cli.test.ts',
      'deploy/docker/schema/compose-spec.json',
    ]) {
      expect(isIgnored(path, ignorePatterns), path).toBe(true);
    }
    expect(isIgnored('server/migrations/RULES.md', ignorePatterns)).toBe(false);
    expect(isIgnored('server/migrations/0001_create_events.sql', ignorePatterns)).toBe(false);
  });

  it('the PostgreSQL image of the compose stack is PostGIS 16 with pgvector', () => {
    const postgres = parseDockerfile(
      readFileSync(join(ROOT, 'deploy/docker/postgres/Dockerfile'), 'utf8'),
    );
    expect(postgres.stages).toHaveLength(1);
    expect(postgres.stages[0]!.image).toMatch(/^postgis\/postgis:16-\d+\.\d+$/);
    expect(runs(postgres.stages[0]!).join('\n')).toContain('postgresql-16-pgvector');
  });
});

/**
 * The stages replayed on disk: each COPY into a folder per stage
 * (node_modules linked instead of `npm ci`, which would need the registry),
 * the builder's build run with the three build args; the runtime folder is
 * then the container's /app, and /app/server (the real wrapper script) runs
 * there with the image's ENV, its /app and /tmp paths mapped into the test's
 * folders, and the ports, hosts and files a test needs instead of 0.0.0.0.
 */
describe('the image, replayed on disk', () => {
  let work: string;
  let runtime: string;
  let wrapper: string;
  const running: WatchedProcess[] = [];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'togather-stages-'));
    const stageDir = (name: string) => join(work, name);
    const inStage = (name: string, path: string) =>
      join(stageDir(name), path.startsWith('/app/') ? path.slice('/app/'.length) : path);
    for (const s of dockerfile.stages) {
      mkdirSync(stageDir(s.name), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules'), join(stageDir(s.name), 'node_modules'), 'dir');
      for (const copy of instructionsOf(s, 'COPY')) {
        const { sources, destination } = copyPaths(copy);
        const from = copy.flags.from;
        for (const source of sources) {
          if (from && source === '/app/node_modules') continue; // linked above
          const src = from ? inStage(from, source) : join(ROOT, source);
          const dest = inStage(s.name, destination);
          const target =
            destination.endsWith('/') || (sources.length > 1 && !from)
              ? join(dest, basename(source))
              : dest;
          cpSync(src, target, { recursive: true });
        }
      }
      if (s.name === 'builder') {
        execFileSync('npm', ['run', 'build', '--silent'], {
          cwd: stageDir('builder'),
          env: {
            ...process.env,
            VERSION: '7.7.7',
            GIT_COMMIT: 'feedbee',
            BUILD_DATE: '2030-01-01T00:00:00Z',
          },
          stdio: 'pipe',
        });
      }
    }
    runtime = stageDir('runtime');
    mkdirSync(join(work, 'tmp'));
    wrapper = readFileSync(join(runtime, 'server'), 'utf8').replaceAll(
      '/app/dist/',
      `${join(runtime, 'dist')}/`,
    );
  }, 120_000);

  afterAll(async () => {
    for (const child of running) await child.stop('SIGKILL');
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** The runtime stage's ENV, with /app and /tmp in the test's folders. */
  function imageEnv(): Record<string, string> {
    const env: Record<string, string> = {};
    for (const instruction of instructionsOf(stage('runtime'), 'ENV')) {
      for (const [, name, value] of instruction.text.matchAll(/(\w+)=(\S+)/g)) {
        env[name!] = value!
          .replace(/^\/app\//, `${runtime}/`)
          .replace(/^\/tmp\//, `${join(work, 'tmp')}/`);
      }
    }
    return env;
  }

  /** `/app/server <args>` as the container runs it (PATH for node, nothing else of ours). */
  function server(args: string[], env: Record<string, string>) {
    return spawn('sh', ['-c', wrapper, 'server', ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: runtime, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** The image's HEALTHCHECK command, run in the "container" with its environment. */
  async function healthcheck(env: Record<string, string>) {
    const health = only(stage('runtime'), 'HEALTHCHECK');
    const command = execForm(health.text.replace(/^CMD\s+/, ''))!;
    expect(command[0]).toBe('/app/server');
    const child = server(command.slice(1), env);
    const done = new WatchedProcess('/app/server', child);
    const { code } = await done.exited;
    return { code, stdout: done.stdout, stderr: done.stderr };
  }

  it('builds and runs from only what the stages copy: version, migrations', () => {
    const version = JSON.parse(
      execFileSync('sh', ['-c', wrapper, 'server', 'version', '--json'], { encoding: 'utf8' }),
    ) as Record<string, string>;
    expect(version).toMatchObject({
      version: '7.7.7',
      git_commit: 'feedbee',
      build_date: '2030-01-01T00:00:00Z',
    });
    const migrations = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(join(runtime, 'dist/server/migrate.js'))}); console.log(m.defaultMigrationsDir(), (await m.loadMigrations()).length);`,
      ],
      { encoding: 'utf8' },
    ).trim();
    expect(migrations).toMatch(
      new RegExp(`^${join(runtime, 'dist/server/migrations')} [1-9]\\d*$`),
    );
  });

  it('HEALTHCHECK in a container running `proxy` checks the proxy’s /healthz on its admin port', async () => {
    const [port, adminPort] = await freePorts(2);
    const env: Record<string, string> = {
      ...imageEnv(),
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(port),
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: String(adminPort),
      ADMIN_API_KEY: 'image-replay-admin-key-0123456789abcdef',
      BLUE_URL: `http://127.0.0.1:${await closedPort()}`,
      GREEN_URL: `http://127.0.0.1:${await closedPort()}`,
    };
    const proxy = new WatchedProcess('/app/server proxy', server(['proxy'], env));
    running.push(proxy);
    await waitForHttp(`http://127.0.0.1:${adminPort}/healthz`);
    expect(readFileSync(env.TOGATHER_COMMAND_FILE!, 'utf8')).toBe('proxy\n');

    const healthy = await healthcheck(env);
    expect(healthy).toEqual({ code: 0, stdout: 'ok\n', stderr: '' });

    expect(await proxy.stop('SIGTERM')).toMatchObject({ code: 0 });
    const stopped = await healthcheck(env);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toBe(
      `unreachable: http://127.0.0.1:${adminPort}/healthz: ECONNREFUSED\n`,
    );
  }, 60_000);

  it('the README’s `docker run … serve` line starts an app whose HEALTHCHECK passes', async () => {
    // The documented line, read from deploy/docker/README.md and replayed:
    // its --env-file (.env.example with every CHANGE_ME filled), its -e and
    // -v, its command; only the listening ports and host are the test's.
    const readme = readFileSync(join(ROOT, 'deploy/docker/README.md'), 'utf8');
    const line = /^docker run (.*) togather:latest serve$/m.exec(readme);
    expect(line, 'a `docker run … togather:latest serve` line').not.toBeNull();
    const words = line![1]!.split(/\s+/);
    const env = imageEnv();
    for (let i = 0; i < words.length; i++) {
      const [flag, value] = [words[i]!, words[i + 1]!];
      if (flag === '--env-file') {
        expect(value).toBe('deploy/docker/.env');
        for (const [name, example] of Object.entries(
          parseEnv(readFileSync(join(ROOT, 'deploy/docker/.env.example'), 'utf8')),
        )) {
          env[name] = example === 'CHANGE_ME' ? `${name.toLowerCase()}-`.padEnd(64, 'q') : example!;
        }
      } else if (flag === '-e') {
        const eq = value.indexOf('=');
        env[value.slice(0, eq)] = value.slice(eq + 1);
      } else if (flag === '-v') {
        const target = value.split(':')[1]!;
        expect(target, 'a volume on a folder of the image').toMatch(/^\/app\//);
        mkdirSync(join(runtime, target.slice('/app/'.length)), { recursive: true });
      } else if (flag !== '--rm' && flag !== '-p') {
        throw new Error(`the test does not know docker run ${flag}`);
      }
      if (flag !== '--rm') i++;
    }
    expect(env.DATABASE_URL, 'the line runs on the embedded database').toBeUndefined();
    const [port, metricsPort] = await freePorts(2);
    Object.assign(env, {
      SERVER_HOST: '127.0.0.1',
      SERVER_PORT: String(port),
      METRICS_PORT: String(metricsPort),
    });

    const app = new WatchedProcess('/app/server serve', server(['serve'], env));
    running.push(app);
    await app.waitFor(/togather serve listening/, 60_000);
    expect(readFileSync(env.TOGATHER_COMMAND_FILE!, 'utf8')).toBe('serve\n');
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: 'healthy',
      checks: { database: { status: 'pass' }, migrations: { status: 'pass' } },
    });
    const checked = await healthcheck(env);
    expect(checked.stderr).toBe('');
    expect(checked.code).toBe(0);
    expect(checked.stdout).toMatch(/^healthy\b/);
    expect(await app.stop('SIGTERM')).toMatchObject({ code: 0 });
  }, 90_000);
});

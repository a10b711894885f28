/**
 * Caddy: one Go process limited to N cores' worth of threads (GOMAXPROCS), a
 * generated JSON configuration (Caddy's native format, no adapter) in a temp
 * dir, admin API and automatic HTTPS off.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../harness/ports.js';
import { makeTempDir, startProcess } from '../processes.js';
import { singleProcessPeer, versionOutput, type Peer } from './peer.js';

export interface CaddyConfigOptions {
  dir: string;
  port: number;
  upstreamPort: number;
  slot: string;
}

export function renderCaddyConfig(options: CaddyConfigOptions): string {
  const requestId = '{http.request.uuid}';
  const config = {
    admin: { disabled: true },
    // Caddy writes no access log unless a server asks for one; WARN keeps its startup chatter out.
    logging: { logs: { default: { level: 'WARN' } } },
    storage: { module: 'file_system', root: join(options.dir, 'data') },
    apps: {
      http: {
        grace_period: '1s',
        servers: {
          bench: {
            listen: [`127.0.0.1:${options.port}`],
            automatic_https: { disable: true },
            routes: [
              {
                handle: [
                  {
                    handler: 'reverse_proxy',
                    upstreams: [{ dial: `127.0.0.1:${options.upstreamPort}` }],
                    transport: {
                      protocol: 'http',
                      // More idle upstream connections than benchmark clients (Caddy's default is 32).
                      keep_alive: {
                        enabled: true,
                        max_idle_conns_per_host: 512,
                        idle_timeout: '60s',
                      },
                    },
                    // X-Forwarded-For/-Proto/-Host are Caddy's defaults; the rest is what the togather proxy adds.
                    headers: {
                      request: { set: { 'X-Request-Id': [requestId] } },
                      response: {
                        set: { 'X-Togather-Slot': [options.slot], 'X-Request-Id': [requestId] },
                      },
                    },
                  },
                ],
              },
            ],
          },
        },
      },
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

export const caddyPeer: Peer = {
  name: 'caddy',
  command: 'caddy',
  installHint: 'apt-get install caddy',
  configSummary:
    '`GOMAXPROCS=N`, `reverse_proxy` with `keep_alive` and `max_idle_conns_per_host 512`, admin API and automatic HTTPS off, no access log',
  version(binary) {
    // "2.6.2" (a Debian build), or "v2.7.6 h1:…" (an upstream build)
    const output = versionOutput(binary, ['version']);
    return output === undefined ? undefined : /v?(\d+\.\d+\.\d+\S*)/.exec(output)?.[1];
  },
  async start(config) {
    const threads = config.workers ?? 1;
    const dir = makeTempDir('caddy');
    const port = config.port ?? (await freePort());
    const configPath = join(dir, 'caddy.json');
    writeFileSync(
      configPath,
      renderCaddyConfig({
        dir,
        port,
        upstreamPort: config.upstreamPort,
        slot: config.slot ?? 'blue',
      }),
    );
    const child = startProcess(
      `caddy-${threads}t`,
      config.binary,
      ['run', '--config', configPath],
      {
        GOMAXPROCS: String(threads),
        // Caddy keeps its state under these: the temp dir, not the user's home.
        HOME: dir,
        XDG_DATA_HOME: join(dir, 'data'),
        XDG_CONFIG_HOME: join(dir, 'config'),
      },
    );
    return singleProcessPeer('caddy', child, port);
  },
};

import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HealthCheck } from './health.js';

/** The User-Agent of the app's requests to itself (logged at debug level only). */
export const SELF_CHECK_USER_AGENT = 'togather-self-check';

export interface HttpEndpointCheckOptions {
  /** The listener's address now (server.address()); null while not listening. */
  address: () => AddressInfo | string | null;
  /** A cheap route that needs nothing but the listener (never /health itself). */
  path?: string;
  timeoutMs?: number;
}

/** Where to reach a listener from inside the process: a wildcard bind is reached on loopback. */
export function selfUrl(address: AddressInfo, path: string): string {
  let host = address.address;
  if (host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::') host = '::1';
  const shown = host.includes(':') ? `[${host}]` : host;
  return `http://${shown}:${address.port}${path}`;
}

/**
 * The app's own HTTP listener answers: a GET of `path` on a fresh connection,
 * so a listener that no longer accepts or answers (closed, wedged, out of
 * connections) fails the check instead of looking healthy from the inside.
 */
export function httpEndpointCheck(options: HttpEndpointCheckOptions): HealthCheck {
  const path = options.path ?? '/healthz';
  const timeoutMs = options.timeoutMs ?? 1000;
  return {
    run() {
      const address = options.address();
      if (address === null || typeof address === 'string') {
        return Promise.resolve({ status: 'fail', message: 'the HTTP listener is not listening' });
      }
      const url = selfUrl(address, path);
      return new Promise((resolve) => {
        let settled = false;
        const finish = (outcome: Awaited<ReturnType<HealthCheck['run']>>) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          req.destroy();
          resolve(outcome);
        };
        const req = request(url, {
          agent: false,
          headers: { 'user-agent': SELF_CHECK_USER_AGENT, accept: 'application/json' },
        });
        const timer = setTimeout(
          () =>
            finish({
              status: 'fail',
              message: `the HTTP listener did not answer GET ${path} within ${timeoutMs} ms`,
              details: { url },
            }),
          timeoutMs,
        );
        req.on('error', (error: NodeJS.ErrnoException) =>
          finish({
            status: 'fail',
            message: `the HTTP listener is unreachable: ${error.code ?? error.message}`,
            details: { url },
          }),
        );
        req.on('response', (res) => {
          res.resume();
          const statusCode = res.statusCode ?? 0;
          finish(
            statusCode === 200
              ? { status: 'pass', message: `GET ${path} answered 200`, details: { url } }
              : {
                  status: 'fail',
                  message: `GET ${path} answered ${statusCode}`,
                  details: { url, status_code: statusCode },
                },
          );
        });
        req.end();
      });
    },
  };
}

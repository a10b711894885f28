import autocannon from 'autocannon';

export interface LoadResult {
  requests: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  /** Answers per X-Togather-Slot value. */
  slots: Record<string, number>;
  /** The slot of the last answer. */
  lastSlot: string | undefined;
}

export interface RunningLoad {
  /** Stops the load and returns what it saw. */
  stop(): Promise<LoadResult>;
}

/**
 * A steady autocannon load (keep-alive connections) on one URL until
 * stopped, counting answers by the X-Togather-Slot header. Bounded: it stops
 * on its own after `maxSeconds`.
 */
export function startLoad(url: string, connections = 8, maxSeconds = 120): RunningLoad {
  const slots: Record<string, number> = {};
  let lastSlot: string | undefined;
  let resolveResult: (r: LoadResult) => void = () => {};
  let rejectResult: (e: Error) => void = () => {};
  const result = new Promise<LoadResult>((ok, fail) => {
    resolveResult = ok;
    rejectResult = fail;
  });
  const instance = autocannon(
    {
      url,
      connections,
      duration: maxSeconds,
      timeout: 10,
      setupClient(client) {
        // autocannon passes the parser's {statusCode, headers: [name, value, ...]},
        // not what its type declarations say.
        client.on('headers', (info: unknown) => {
          const headers = (info as { headers?: unknown }).headers;
          if (!Array.isArray(headers)) return;
          for (let i = 0; i + 1 < headers.length; i += 2) {
            if (String(headers[i]).toLowerCase() === 'x-togather-slot') {
              const slot = String(headers[i + 1]);
              slots[slot] = (slots[slot] ?? 0) + 1;
              lastSlot = slot;
            }
          }
        });
      },
    },
    (error, r) => {
      if (error) {
        rejectResult(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      const statusCodes: Record<string, number> = {};
      for (const [code, stat] of Object.entries(r.statusCodeStats ?? {})) {
        statusCodes[code] = stat.count ?? 0;
      }
      resolveResult({
        requests: r.requests.total,
        errors: r.errors,
        timeouts: r.timeouts,
        non2xx: r.non2xx,
        statusCodes,
        slots,
        lastSlot,
      });
    },
  );
  return {
    async stop() {
      instance.stop();
      return result;
    },
  };
}

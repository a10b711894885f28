import { freePort, waitForPort } from '../harness/ports.js';
import { startProcess, type ManagedProcess } from './processes.js';

export interface RedisProcess {
  url: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/** A private redis-server on a free loopback port, without persistence. */
export async function startRedis(): Promise<RedisProcess> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = startProcess('redis', 'redis-server', args, {});
  try {
    await waitForPort(port);
  } catch (error) {
    await child.stop();
    throw new Error(`redis-server did not start: ${String(error)}\n${child.output()}`);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    process: child,
    stop: async () => void (await child.stop()),
  };
}

import { spawn } from 'node:child_process';
import { BUILT_CLI as CLI } from '../../harness/built-files.js';
import { childEnv, launch } from '../../harness/child-process.js';
import { until } from './wait.js';

export { CLI };

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `togather <args>` to completion with exactly the environment given (plus PATH/HOME). */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  options: { timeoutMs?: number; cwd?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: childEnv(env),
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts `togather <args>` in the background. */
export function startCli(args: string[], env: Record<string, string> = {}, cwd?: string) {
  return launch(`togather ${args.join(' ')}`, process.execPath, [CLI, ...args], env, cwd);
}

/** Polls a URL until it answers with the given status; the failure says what it last answered. */
export async function waitForHttp(url: string, status = 200, timeoutMs = 20_000): Promise<void> {
  await until(
    async () => {
      let last: string;
      try {
        const response = await fetch(url);
        await response.arrayBuffer();
        if (response.status === status) return true;
        last = `status ${response.status}`;
      } catch (error) {
        last = String(error);
      }
      throw new Error(`${url} did not answer ${status} in ${timeoutMs} ms (last: ${last})`);
    },
    { timeout: timeoutMs, interval: 50 },
  );
}

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIST = fileURLToPath(new URL('../../dist/common/', import.meta.url));

/** A process with the proxy's logger and exitOnFatalErrors, then `fault`; its exit and log. */
function runWithFault(
  fault: string,
): Promise<{ code: number | null; lines: unknown[]; stderr: string }> {
  const script = `
    const { createLogger } = await import(${JSON.stringify(`${DIST}logger.js`)});
    const { exitOnFatalErrors } = await import(${JSON.stringify(`${DIST}fatal-errors.js`)});
    exitOnFatalErrors(createLogger({ level: 'info', format: 'json', name: 'togather-proxy' }));
    setTimeout(() => process.stdout.write('still running\\n'), 2000);
    ${fault}
  `;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const lines = stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => (line.startsWith('{') ? (JSON.parse(line) as unknown) : line));
      resolve({ code, lines, stderr });
    });
  });
}

describe('exitOnFatalErrors', () => {
  it('an unhandled rejection is logged as fatal with its error, and the process exits 1 at once', async () => {
    const result = await runWithFault(`Promise.reject(new Error('store answer unreadable'));`);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatchObject({
      level: 60,
      name: 'togather-proxy',
      msg: 'unhandled promise rejection: exiting',
      err: { type: 'Error', message: 'store answer unreadable' },
    });
  });

  it('an uncaught exception is logged as fatal with its stack, and the process exits 1 at once', async () => {
    const result = await runWithFault(`setImmediate(() => { throw new TypeError('bad slot'); });`);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatchObject({
      level: 60,
      msg: 'uncaught exception: exiting',
      err: {
        type: 'TypeError',
        message: 'bad slot',
        stack: expect.stringContaining('TypeError: bad slot'),
      },
    });
  });

  it('a rejection with a non-Error value is logged as it is', async () => {
    const result = await runWithFault(`Promise.reject('plain string');`);
    expect(result.code).toBe(1);
    expect(result.lines[0]).toMatchObject({
      level: 60,
      msg: 'unhandled promise rejection: exiting',
      err: 'plain string',
    });
  });
});

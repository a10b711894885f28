import { describe, expect, it } from 'vitest';
import { runCli } from '../support/processes.js';

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

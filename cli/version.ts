import type { Command } from 'commander';
import { buildInfo } from '../common/build-info.js';

export interface VersionReport {
  version: string;
  git_commit: string;
  build_date: string;
  node_version: string;
  platform: string;
}

export function versionReport(): VersionReport {
  return {
    ...buildInfo(),
    node_version: process.version,
    platform: `${process.platform}/${process.arch}`,
  };
}

export function registerVersionCommand(program: Command): void {
  program
    .command('version')
    .description('print version, git commit, build date, Node version and platform')
    .option('--json', 'print one JSON object')
    .action((options: { json?: boolean }) => {
      const report = versionReport();
      if (options.json) {
        process.stdout.write(JSON.stringify(report) + '\n');
        return;
      }
      process.stdout.write(
        `togather ${report.version}\n` +
          `  git commit: ${report.git_commit}\n` +
          `  build date: ${report.build_date}\n` +
          `  node:       ${report.node_version}\n` +
          `  platform:   ${report.platform}\n`,
      );
    });
}

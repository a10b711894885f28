import { Argument, type Command } from 'commander';
import { loadProxyConfig, PROXY_VARIABLES } from './config.js';
import { SLOTS, type Slot } from '../common/slot.js';
import {
  adminClientFrom,
  loadAdminClientConfig,
  runRollback,
  runStatus,
  runSwitch,
} from './admin/commands.js';

/** The variable names as indented lines of at most 80 columns. */
function wrapNames(names: readonly string[]): string {
  const lines: string[] = [];
  let line = ' ';
  for (const name of names) {
    if (line.length + name.length + 2 > 80) {
      lines.push(line.replace(/,$/, ','));
      line = ' ';
    }
    line += ` ${name},`;
  }
  lines.push(line.replace(/,$/, ''));
  return lines.join('\n');
}

/** Registers the proxy part's commands on the togather CLI. */
export function registerProxyCommands(program: Command): void {
  program
    .command('proxy')
    .description(
      'run the edge proxy: public listener PROXY_HOST:PROXY_PORT, admin API ADMIN_HOST:ADMIN_PORT',
    )
    .addHelpText(
      'after',
      `\nEnvironment variables (their meaning and defaults: docs/architecture.md, "Configuration"):\n${wrapNames(PROXY_VARIABLES)}\n`,
    )
    .action(async () => {
      const config = loadProxyConfig();
      // Loaded on use: the other commands need none of the proxy's dependencies.
      const { runProxyProcess } = await import('./main.js');
      await runProxyProcess(config);
    });

  program
    .command('switch')
    .description('move traffic to a slot through the proxy admin API (ADMIN_URL, ADMIN_API_KEY)')
    .addArgument(new Argument('<slot>', 'the slot to make active').choices(SLOTS))
    .option('--force', 'skip the health gate of the target slot')
    .action(async (slot: Slot, options: { force?: boolean }) => {
      const client = adminClientFrom(loadAdminClientConfig());
      process.stdout.write(await runSwitch(client, slot, { force: options.force === true }));
    });

  program
    .command('rollback')
    .description('move traffic back to the previous slot (ADMIN_URL, ADMIN_API_KEY)')
    .option('--force', 'skip the health gate of the previous slot')
    .action(async (options: { force?: boolean }) => {
      const client = adminClientFrom(loadAdminClientConfig());
      process.stdout.write(await runRollback(client, { force: options.force === true }));
    });

  program
    .command('status')
    .description('show the active slot, the store and both slots (ADMIN_URL, ADMIN_API_KEY)')
    .option('--json', 'print the admin API answer as one JSON object')
    .action(async (options: { json?: boolean }) => {
      const client = adminClientFrom(loadAdminClientConfig());
      process.stdout.write(await runStatus(client, options.json === true));
    });
}

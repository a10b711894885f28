import { Command, CommanderError } from 'commander';
import { ConfigError } from '../common/config.js';
import { CommandFailed, UsageError } from './errors.js';
import { registerVersionCommand } from './version.js';
import { registerServerCommands } from '../server/cli.js';
import { registerProxyCommands } from '../proxy/cli.js';
import { registerDeployCommands } from '../deploy/cli.js';

/** The whole `togather` command tree; each part registers its own commands. */
export function buildProgram(): Command {
  const program = new Command('togather')
    .description('Togather SEL server, edge proxy and blue-green deployment')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  registerVersionCommand(program);
  registerServerCommands(program);
  registerProxyCommands(program);
  registerDeployCommands(program);
  return program;
}

/** Runs the CLI and maps every failure to the documented exit codes. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    return exitCodeFor(error);
  }
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    // commander has already printed the message and usage; help asked for is not an error
    return error.exitCode === 0 ? 0 : 2;
  }
  if (error instanceof ConfigError) {
    process.stderr.write(`togather: ${error.message}\n`);
    return 2;
  }
  if (error instanceof UsageError) {
    process.stderr.write(`togather: ${error.message}\n`);
    return 2;
  }
  if (error instanceof CommandFailed) {
    process.stderr.write(`togather: ${error.message}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`togather: ${message}\n`);
  return 1;
}

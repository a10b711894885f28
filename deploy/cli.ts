import { Option, type Command } from 'commander';
import {
  DEFAULT_SWITCH_RETRY_TIME,
  deployCommand,
  readCommand,
  type DeployFlags,
} from './rollout/deploy-command.js';
import type { DevFlags } from './dev/dev.js';
import { DEFAULT_ENV_FILE } from './rollout/deploy-settings.js';

/** Registers the deploy part's commands on the togather CLI: deploy (status, history) and dev. */
export function registerDeployCommands(program: Command): void {
  const deploy = program
    .command('deploy')
    .description(
      'roll a new version out to the idle slot: health-gated switch, verify, automatic rollback',
    )
    .addOption(
      new Option('--runner <runner>', 'how the new version is started')
        .choices(['compose', 'local'])
        .default('compose'),
    )
    .option(
      '--env <path>',
      `environment file (default ${DEFAULT_ENV_FILE.compose} for compose, ${DEFAULT_ENV_FILE.local} for local)`,
    )
    .option('--image <ref>', 'compose: the image to run on the idle slot, e.g. togather:1.4.0')
    .option('--build <dir>', 'local: the built dist/ tree to run (default ./dist)')
    .option(
      '--version <version>',
      'the version /version must report (default: the image tag or build-info.json)',
    )
    .option('--git-commit <sha>', 'the commit being deployed, for the record')
    .option('--skip-snapshot', 'do not snapshot the database first')
    .option('--skip-migrations', 'do not run togather migrate up')
    .option(
      '--stop-old',
      'stop the old slot after a verified switch (default: keep it for instant rollback)',
    )
    .option('--health-retries <n>', 'health checks of the new slot before giving up', '30')
    .option('--health-interval <duration>', 'time between health checks', '2s')
    .option(
      '--verify-seconds <s>',
      'how long to watch the new slot through the proxy after the switch',
      '10',
    )
    .option(
      '--max-error-ratio <ratio>',
      'highest share of 5xx from the new slot during verification',
      '0.01',
    )
    .option(
      '--lock-ttl <duration>',
      'time to live of the deploy lock (renewed while the deploy runs)',
      '30s',
    )
    .option(
      '--switch-retry-time <duration>',
      'how long the switch and the rollback are retried while the proxy answers 429 or 503',
      DEFAULT_SWITCH_RETRY_TIME,
    )
    .option('--json', 'print the deployment record as one JSON object')
    .option('--dry-run', 'check the settings and print the plan; change nothing')
    .action(async (flags: DeployFlags) => {
      await deployCommand(flags);
    });

  deploy
    .command('status')
    .description('the latest deployment with its steps, and who holds the deploy lock')
    .option('--env <path>', 'environment file to read the state location from')
    .option('--json', 'print one JSON object')
    // --env and --json are also flags of `deploy` itself, which commander lets the
    // parent take: read them merged with the parent's.
    .action(async (_flags: object, command: Command) => {
      await readCommand('status', command.optsWithGlobals<{ env?: string; json?: boolean }>());
    });

  deploy
    .command('history')
    .description('recorded deployments, newest first')
    .option('--env <path>', 'environment file to read the state location from')
    .option('--limit <n>', 'how many', '20')
    .option('--json', 'print one JSON object')
    .action(async (_flags: object, command: Command) => {
      await readCommand(
        'history',
        command.optsWithGlobals<{ env?: string; json?: boolean; limit?: string }>(),
      );
    });

  program
    .command('dev')
    .description(
      'the whole stack locally: PGlite, blue and green slots, the proxy and its admin API',
    )
    .option('--proxy-port <port>', 'public port of the proxy', '8080')
    .option('--admin-port <port>', 'admin port of the proxy (127.0.0.1)', '9080')
    .option('--blue-port <port>', 'port of the blue slot', '8081')
    .option('--green-port <port>', 'port of the green slot', '8082')
    .option(
      '--db-port <port>',
      'port of the PGlite socket server (127.0.0.1), 0 for any free one',
      '0',
    )
    .option('--state-dir <dir>', 'where the dev stack keeps its data, state and logs', '.togather')
    .action(async (flags: DevFlags) => {
      const { devCommand } = await import('./dev/dev.js');
      await devCommand(flags);
    });
}

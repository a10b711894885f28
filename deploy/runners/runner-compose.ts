import type { Slot } from '../../common/slot.js';
import { runToEnd, tail, type CommandResult, type SlotRunner } from './runner.js';

export interface ComposeRunnerOptions {
  /** The image to run on the slot, e.g. togather:1.4.0. */
  image: string;
  /** docker-compose.yml and docker-compose.blue-green.yml. */
  files: string[];
  envFile: string;
  ports: Record<Slot, number>;
  /** The docker client (DOCKER in the environment, else `docker`). */
  docker: string;
}

export function slotService(slot: Slot): string {
  return `togather-${slot}`;
}

/**
 * Drives the blue-green compose stack: the new image goes to the idle slot's
 * service only (`up -d --no-deps`), selected by TOGATHER_<SLOT>_IMAGE in the
 * environment of the docker compose call; the other slot is not touched.
 */
export function createComposeRunner(options: ComposeRunnerOptions): SlotRunner {
  const base = [
    'compose',
    ...options.files.flatMap((f) => ['-f', f]),
    '--env-file',
    options.envFile,
  ];
  const imageVariable = (slot: Slot) => `TOGATHER_${slot.toUpperCase()}_IMAGE`;

  function compose(slot: Slot, args: string[]): Promise<CommandResult> {
    return runToEnd(options.docker, [...base, ...args], {
      env: { ...process.env, [imageVariable(slot)]: options.image },
    });
  }

  function describe(slot: Slot, args: string[]): string {
    return `${imageVariable(slot)}=${options.image} ${options.docker} ${[...base, ...args].join(' ')}`;
  }

  /** Slots whose service this runner recreated with the new image. */
  const started = new Set<Slot>();

  const startArgs = (slot: Slot) => [
    'up',
    '-d',
    '--no-deps',
    '--force-recreate',
    slotService(slot),
  ];

  return {
    kind: 'compose',
    artifact: options.image,
    slotUrl: (slot) => `http://127.0.0.1:${options.ports[slot]}`,
    describeStart: (slot) => describe(slot, startArgs(slot)),
    runCommand: (slot, args) =>
      compose(slot, ['run', '--rm', '--no-deps', slotService(slot), ...args]),
    async start(slot) {
      const result = await compose(slot, startArgs(slot));
      if (result.code !== 0) {
        throw new Error(
          `docker compose up of ${slotService(slot)} failed (exit ${result.code}): ${tail(result.output)}`,
        );
      }
      started.add(slot);
      return `${slotService(slot)} running ${options.image}`;
    },
    exited: () => undefined,
    // Compose keeps no slot record of its own: nothing to correct.
    noteVersion: async () => {},
    async restore(slot) {
      const service = slotService(slot);
      // A failed `up` may have left the previous container running: not ours to stop.
      if (!started.has(slot)) return `${service} left as docker compose up left it`;
      const result = await compose(slot, ['stop', service]);
      if (result.code !== 0) {
        throw new Error(
          `${service} still runs the failed ${options.image}: docker compose stop failed (exit ${result.code}): ${tail(result.output)}`,
        );
      }
      started.delete(slot);
      // --force-recreate replaced the slot's previous container: it cannot be resumed.
      return `${service} stopped, so the failed ${options.image} serves nothing (its previous container was replaced)`;
    },
    async stop(slot) {
      const result = await compose(slot, ['stop', slotService(slot)]);
      if (result.code !== 0) {
        throw new Error(
          `docker compose stop of ${slotService(slot)} failed (exit ${result.code}): ${tail(result.output)}`,
        );
      }
      return `${slotService(slot)} stopped`;
    },
  };
}

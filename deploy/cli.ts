import type { Command } from 'commander';

/** Registers the deploy part's commands on the togather CLI. */
export function registerDeployCommands(_program: Command): void {}

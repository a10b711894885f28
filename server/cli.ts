import type { Command } from 'commander';

/** Registers the server part's commands on the togather CLI. */
export function registerServerCommands(_program: Command): void {}

import type { Command } from 'commander';

/** Registers the proxy part's commands on the togather CLI. */
export function registerProxyCommands(_program: Command): void {}

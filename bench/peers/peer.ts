/**
 * The reverse proxies the togather proxy is measured against ("peers"), behind
 * one interface: a peer writes its own configuration for one upstream, starts
 * as a foreground child, and tells which processes are its own for CPU and
 * memory readings. Adding a peer is one file implementing `Peer` plus its name
 * in peers/index.ts.
 *
 * Every peer is configured the same way, the way a careful operator runs it in
 * front of one app on the same host: keep-alive connections to the upstream,
 * one worker process or thread unless asked for more, no access log, the
 * usual X-Forwarded-For / X-Forwarded-Proto / X-Request-Id towards the
 * upstream, and on every response the headers the togather proxy adds
 * (X-Togather-Slot and X-Request-Id), so each does the same work per request.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { processTree } from '../proc.js';
import { waitForPort } from '../../harness/ports.js';
import type { ManagedProcess } from '../processes.js';

/** The header the togather proxy adds to every response, and its peers with it. */
export const SLOT_HEADER = 'x-togather-slot';

export interface PeerConfig {
  /** The upstream on 127.0.0.1. */
  upstreamPort: number;
  /** Worker processes (nginx) or threads (HAProxy's nbthread, Caddy's GOMAXPROCS); 1 when unset. */
  workers?: number;
  /** Value of X-Togather-Slot on every response; `blue` when unset. */
  slot?: string;
  /** Port to listen on (127.0.0.1); a free one when unset. */
  port?: number;
  /** The executable; the peer's command looked up on PATH and in the sbin directories when unset. */
  binary?: string;
}

export interface RunningPeer {
  name: string;
  port: number;
  /** Base URL, without path. */
  url: string;
  process: ManagedProcess;
  /** The peer's processes (a master and its workers), for CPU and memory readings. */
  pids(): number[];
  stop(): Promise<void>;
}

export interface Peer {
  name: string;
  /** The command looked up when no binary is given. */
  command: string;
  /** How to install it on Debian, for the skip line. */
  installHint: string;
  /** One line on how it is configured, for reports. */
  configSummary: string;
  /** The version the binary reports; undefined when it cannot say. */
  version(binary: string): string | undefined;
  start(config: PeerConfig & { binary: string }): Promise<RunningPeer>;
}

export type PeerStatus =
  | { peer: Peer; available: true; binary: string; version: string }
  | { peer: Peer; available: false; skip: string };

/** Debian puts nginx and haproxy in /usr/sbin, which a non-root PATH lacks. */
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** An absolute path to the command, from PATH or the sbin directories; undefined when absent. */
export function findCommand(command: string): string | undefined {
  if (isAbsolute(command)) return executable(command) ? command : undefined;
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN_DIRS];
  return dirs.map((dir) => join(dir, command)).find(executable);
}

/** What a peer's binary prints for its version flag (stdout and stderr), or undefined when it does not run. */
export function versionOutput(binary: string, args: string[]): string | undefined {
  const result = spawnSync(binary, args, { encoding: 'utf8', timeout: 10_000 });
  if (result.error || result.status !== 0) return undefined;
  return `${result.stdout}${result.stderr}`;
}

/**
 * Whether the peer can run here, with its version; otherwise the line the
 * bench prints instead of its figures.
 */
export function checkPeer(peer: Peer, binary?: string): PeerStatus {
  const where = binary === undefined ? '' : ` at ${binary}`;
  const found = findCommand(binary ?? peer.command);
  if (found === undefined)
    return {
      peer,
      available: false,
      skip: `${peer.name}: not installed${where} (${peer.installHint}); skipped`,
    };
  const version = peer.version(found);
  if (version === undefined)
    return {
      peer,
      available: false,
      skip: `${peer.name}: ${found} did not report a version (${peer.installHint}); skipped`,
    };
  return { peer, available: true, binary: found, version };
}

/** The pids of a peer started as one root process (a master and its workers, or one process). */
export function treeOf(child: ManagedProcess): () => number[] {
  return () => (child.running ? processTree(child.pid) : []);
}

/** Waits until the peer listens; one that does not is stopped, and the error carries its output. */
export async function waitUntilListening(
  name: string,
  child: ManagedProcess,
  port: number,
): Promise<void> {
  try {
    await waitForPort(port);
  } catch (error) {
    await child.stop();
    throw new Error(`${name} did not start: ${String(error)}\n${child.output()}`);
  }
}

/** A peer that is one process (HAProxy, Caddy), stopped with SIGTERM. */
export async function singleProcessPeer(
  name: string,
  child: ManagedProcess,
  port: number,
): Promise<RunningPeer> {
  await waitUntilListening(name, child, port);
  return {
    name,
    port,
    url: `http://127.0.0.1:${port}`,
    process: child,
    pids: treeOf(child),
    stop: async () => void (await child.stop('SIGTERM', 5_000)),
  };
}

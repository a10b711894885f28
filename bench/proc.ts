/**
 * CPU time and memory of processes, read from Linux /proc (the benchmark
 * measures the proxies from outside, as an operator would).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

function sysconf(name: string, fallback: number): number {
  try {
    const value = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isFinite(value) && value > 0 ? value : fallback;
  } catch {
    return fallback;
  }
}

const CLOCK_TICKS = sysconf('CLK_TCK', 100);
const PAGE_SIZE = sysconf('PAGESIZE', 4096);

interface StatFields {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime in clock ticks. */
  cpuTicks: number;
}

function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // the process is gone
  }
  // comm is in parentheses and may contain spaces: split after the last ')'.
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  // Fields after comm start at field 3 (state); ppid is field 4, utime 14, stime 15.
  const rest = text.slice(close + 2).split(' ');
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return { pid, comm, ppid, cpuTicks: utime + stime };
}

/** The pid and all its live descendants (nginx workers, cluster workers). */
export function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (!stat) continue;
    const list = children.get(stat.ppid) ?? [];
    list.push(stat.pid);
    children.set(stat.ppid, list);
  }
  const tree: number[] = [];
  const queue = [rootPid];
  // Bounded: a pid is visited once and /proc holds finitely many.
  while (queue.length > 0 && tree.length < 10_000) {
    const pid = queue.shift()!;
    if (tree.includes(pid)) continue;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/** Process names of a tree, for reports ("node ×3"). */
export function processNames(pids: number[]): string[] {
  return pids.flatMap((pid) => {
    const stat = readStat(pid);
    return stat ? [stat.comm] : [];
  });
}

/** User + system CPU seconds consumed so far by these processes (live ones). */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) ticks += readStat(pid)?.cpuTicks ?? 0;
  return ticks / CLOCK_TICKS;
}

/** Resident set size in bytes summed over these processes. */
export function rssBytes(pids: number[]): number {
  let pages = 0;
  for (const pid of pids) {
    try {
      pages += Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    } catch {
      // gone: contributes nothing
    }
  }
  return pages * PAGE_SIZE;
}

/**
 * CPU time of a set of processes across an interval. The set is re-read at the
 * end too, so workers started or replaced meanwhile still count (a worker that
 * exited during the interval loses its share: the report says so).
 */
export class CpuMeter {
  private readonly start = new Map<number, number>();

  /** `pids` names the processes, e.g. `() => processTree(root)` or a peer's `pids`. */
  constructor(private readonly pids: () => number[]) {
    for (const pid of pids()) this.start.set(pid, readStat(pid)?.cpuTicks ?? 0);
  }

  /** CPU seconds used by the processes since the meter was created. */
  elapsedCpuSeconds(): number {
    let ticks = 0;
    for (const pid of this.pids()) {
      const now = readStat(pid)?.cpuTicks ?? 0;
      ticks += now - (this.start.get(pid) ?? 0);
    }
    return ticks / CLOCK_TICKS;
  }
}

/**
 * cutime + cstime of this process in seconds: the CPU of every child it has
 * waited for. Read before a child starts and after it has been reaped, the
 * difference is that child's CPU (wrk's, whose /proc entry is gone by then).
 */
export function reapedChildrenCpuSeconds(): number {
  try {
    const text = readFileSync('/proc/self/stat', 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[13]) + Number(rest[14])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** utime + stime + cutime + cstime: a process plus every child it has reaped. */
function lifetimeTicks(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
  } catch {
    return 0;
  }
}

/** CPU of this benchmark: itself, its live descendants, and every descendant already reaped. */
function benchmarkTicks(): number {
  let ticks = 0;
  for (const pid of processTree(process.pid)) ticks += lifetimeTicks(pid);
  return ticks;
}

/** Busy and steal ticks of the whole machine (all CPUs) from /proc/stat. */
function machineTicks(): { busy: number; steal: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1);
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number);
  return { busy: user! + nice! + system! + irq! + softirq!, steal: steal ?? 0 };
}

export interface MachineLoad {
  seconds: number;
  /** Average cores used by processes that are not this benchmark's: noise in the figures. */
  otherCores: number;
  /** Average cores taken by the hypervisor. */
  stealCores: number;
}

/** How busy the rest of the machine was while a scenario ran. */
export class MachineLoadMeter {
  private readonly started = Date.now();
  private readonly machine = machineTicks();
  private readonly own = benchmarkTicks();

  read(): MachineLoad {
    const seconds = (Date.now() - this.started) / 1000;
    const machine = machineTicks();
    const own = benchmarkTicks() - this.own;
    const cores = (ticks: number) => Math.max(0, ticks / CLOCK_TICKS / Math.max(0.001, seconds));
    return {
      seconds,
      otherCores: cores(machine.busy - this.machine.busy - own),
      stealCores: cores(machine.steal - this.machine.steal),
    };
  }
}

/**
 * read + write system calls made so far by these processes (syscr + syscw of
 * `/proc/<pid>/io`; writev and sendmsg count as writes). Per request it is a
 * figure a shared machine does not move: it says whether a change batched
 * (or split) the socket writes. NaN when unreadable (another user's process).
 */
export function syscallCount(pids: number[]): number {
  let count = 0;
  for (const pid of pids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/io`, 'utf8');
    } catch {
      return Number.NaN;
    }
    for (const line of text.split('\n')) {
      if (line.startsWith('syscr: ') || line.startsWith('syscw: ')) count += Number(line.slice(7));
    }
  }
  return count;
}

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * Every process a benchmark starts is registered here and killed by its PID when the benchmark
 * ends, however it ends (normal exit, an exception, Ctrl-C).
 */
const live = new Set<ChildProcess>();
/** Processes started by a helper that does not hand out its ChildProcess (redis-server): by PID. */
const livePids = new Set<number>();

function killAll(signal: NodeJS.Signals) {
  for (const pid of livePids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
  for (const child of live) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, signal);
      } catch {
        // Already gone between the check and the kill.
      }
    }
  }
}

process.once('exit', () => killAll('SIGKILL'));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll('SIGKILL');
    process.exit(130);
  });
}

/** `node --import tsx <script> ...args`, from the repository root, tracked until it exits. */
export function spawnTsx(script: string, args: string[], options: SpawnOptions & { nodeArgs?: string[] } = {}) {
  const { nodeArgs = [], ...spawnOptions } = options;
  return spawnNode([...nodeArgs, '--import', 'tsx', script, ...args], spawnOptions);
}

/** `node ...args`, from the repository root, tracked until it exits. */
export function spawnNode(args: string[], options: SpawnOptions = {}) {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/**
 * Set by `runJsonWorker` for its workers: a worker tells its parent about the PIDs it tracks (on
 * stderr, `bench-pid +N` / `bench-pid -N`), so they are killed even if the worker is SIGKILLed.
 */
const reportPids = process.env['BENCH_REPORT_PIDS'] === '1';

/** Killed by PID when the benchmark ends, like the children spawned here; `untrackPid` once it is gone. */
export function trackPid(pid: number): void {
  livePids.add(pid);
  if (reportPids) process.stderr.write(`bench-pid +${pid}\n`);
}

export function untrackPid(pid: number): void {
  livePids.delete(pid);
  if (reportPids) process.stderr.write(`bench-pid -${pid}\n`);
}

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Resolves when the child has exited, with how; SIGTERM first, SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<ChildExit> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined)
    return { code: child.exitCode, signal: child.signalCode };
  const exited = new Promise<ChildExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null)
      process.kill(child.pid, 'SIGKILL');
  }, graceMs);
  const exit = await exited;
  clearTimeout(timer);
  return exit;
}

export const repoRoot = new URL('../../', import.meta.url).pathname;

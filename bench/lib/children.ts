import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * Every process a benchmark starts is registered here and killed by its PID when the benchmark
 * ends, however it ends (normal exit, an exception, Ctrl-C).
 */
const live = new Set<ChildProcess>();

function killAll(signal: NodeJS.Signals) {
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
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script, ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...spawnOptions,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Resolves when the child has exited; SIGTERM first, SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null)
      process.kill(child.pid, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

export const repoRoot = new URL('../../', import.meta.url).pathname;

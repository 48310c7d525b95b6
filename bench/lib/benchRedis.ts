import type { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../../test/support/redis.js';
import { procCpuSeconds } from './serverProcess.js';

/** Calls per command (lower case), from `INFO commandstats`. */
export type CommandCounts = Map<string, number>;

/**
 * A private `redis-server` on a free loopback port (test/support's, never the machine's 6379) whose
 * PID we know, so its CPU counts with the server's, and whose `INFO commandstats` we read.
 */
export interface BenchRedis extends AsyncDisposable {
  readonly url: string;
  readonly pid: number;
  cpuSeconds(): number;
  commandCounts(): Promise<CommandCounts>;
}

export async function startBenchRedis(): Promise<BenchRedis> {
  const redis: TestRedis = await startRedis();
  const admin: Redis = redis.client();
  const info = await admin.info('server');
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error('no process_id in INFO server');
  return {
    url: redis.url,
    pid,
    cpuSeconds: () => procCpuSeconds(pid),
    async commandCounts() {
      const counts: CommandCounts = new Map();
      for (const match of (await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        counts.set(match[1] ?? '', Number(match[2]));
      }
      return counts;
    },
    [Symbol.asyncDispose]: () => redis[Symbol.asyncDispose](),
  };
}

/** `after − before`, per command, without the commands the measuring connection itself sent. */
export function commandDelta(before: CommandCounts, after: CommandCounts): CommandCounts {
  const delta: CommandCounts = new Map();
  for (const [name, calls] of after) {
    if (name === 'info') continue;
    const diff = calls - (before.get(name) ?? 0);
    if (diff > 0) delta.set(name, diff);
  }
  return delta;
}

export const totalCalls = (counts: CommandCounts) => [...counts.values()].reduce((a, b) => a + b, 0);

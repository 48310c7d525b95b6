import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { procCpuSeconds, spawnTracked, stopChild } from './proc.js';

/** A port nothing listens on right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Calls per command (lower case), from `INFO commandstats`. */
export type CommandCounts = Map<string, number>;

/**
 * A private `redis-server` on a free loopback port, nothing persisted (never the machine's 6379),
 * whose PID we know, so its CPU counts with the server's, and whose `INFO commandstats` we read.
 * `kill()` (SIGKILL, like a crash) and `start()` (empty again, same port) make an outage.
 */
export interface BenchRedis extends AsyncDisposable {
  readonly url: string;
  cpuSeconds(): number;
  commandCounts(): Promise<CommandCounts>;
  kill(): Promise<void>;
  start(): Promise<void>;
}

export async function startBenchRedis(): Promise<BenchRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const admin = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  admin.on('error', () => undefined);
  const start = async () => {
    child = spawnTracked('redis-server', [
      ...['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      ...['--loglevel', 'warning'],
    ]);
    for (const deadline = Date.now() + 10_000; ; await sleep(25)) {
      try {
        if ((await admin.ping()) === 'PONG') return;
      } catch {
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer in time`);
      }
    }
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (running) await stopChild(running, 0);
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    cpuSeconds: () => (child?.pid === undefined ? 0 : procCpuSeconds(child.pid)),
    async commandCounts() {
      const counts: CommandCounts = new Map();
      for (const match of (await admin.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
        counts.set(match[1] ?? '', Number(match[2]));
      return counts;
    },
    kill,
    start,
    async [Symbol.asyncDispose]() {
      admin.disconnect();
      await kill();
    },
  };
}

/** `after − before`, per command, without the INFO calls of the measuring connection itself. */
export function commandDelta(before: CommandCounts, after: CommandCounts): CommandCounts {
  const delta: CommandCounts = new Map();
  for (const [name, calls] of after) {
    const diff = calls - (before.get(name) ?? 0);
    if (name !== 'info' && diff > 0) delta.set(name, diff);
  }
  return delta;
}

export const totalCalls = (counts: CommandCounts) => [...counts.values()].reduce((a, b) => a + b, 0);

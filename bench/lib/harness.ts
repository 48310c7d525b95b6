import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerProcess } from './proc.js';
import { startBenchRedis, type BenchRedis } from './redis.js';
import type { Section } from './report.js';

/** One connected client of a peer, reduced to what the scenarios do with it. */
export interface PeerClient {
  /** One application heartbeat, resolved when the server acknowledged it. */
  heartbeat(): Promise<void>;
  /** Joins `gameId`; resolved with the server's answer. */
  join(gameId: string): Promise<void>;
  leave(): Promise<void>;
  /** The members of `gameId`, as the server lists them. */
  members(gameId: string): Promise<number>;
  /** Calls `handler(userId)` for every join event of `gameId` this client receives (after `watch`). */
  watch(gameId: string, handler: (userId: string) => void): Promise<void>;
  /** Closes the socket without a goodbye call (what a closed tab does). */
  close(): Promise<void>;
}

/** A server that users could pick, run as its own child process, and how its clients talk to it. */
export interface Peer {
  /** Column label in the tables. */
  label: string;
  /** Whether it needs a Redis (each start gets its own). */
  usesRedis: boolean;
  start(options: {
    redis: BenchRedis | undefined;
    env?: Record<string, string>;
    nodeArgs?: string[];
  }): Promise<ServerProcess>;
  connect(server: ServerProcess, userId: string): Promise<PeerClient>;
}

/** measure → peer label → value: what the scenarios found, for the comparison table. */
export type Figures = Map<string, Map<string, number>>;

export interface ScenarioOptions {
  quick: boolean;
  log: (line: string) => void;
  /** Records one cell of the comparison table. */
  figure(measure: string, peer: string, value: number): void;
}

export interface Scenario {
  /** What `ONLY=` selects it by. */
  name: string;
  /** Left out of QUICK=1 runs unless selected by `ONLY`. */
  fullOnly?: boolean;
  run(options: ScenarioOptions): Promise<Section[]>;
}

/** A peer's server and its private redis-server, running; `stop` ends both by PID, once. */
interface StartedPeer {
  peer: Peer;
  server: ServerProcess;
  redis: BenchRedis | undefined;
  stop(): Promise<void>;
}

async function startPeer(peer: Peer, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<StartedPeer> {
  const redis = peer.usesRedis ? await startBenchRedis() : undefined;
  let server: ServerProcess;
  try {
    server = await peer.start({ redis, env, nodeArgs });
  } catch (error) {
    await redis?.[Symbol.asyncDispose]();
    throw error;
  }
  let stopped: Promise<void> | undefined;
  const stop = async () => {
    await server[Symbol.asyncDispose]();
    await redis?.[Symbol.asyncDispose]();
  };
  return { peer, server, redis, stop: () => (stopped ??= stop()) };
}

/** Runs `task` against `peer` (and its private redis-server), both stopped by PID however it ends. */
export async function withPeer<T>(
  peer: Peer,
  task: (server: ServerProcess, redis: BenchRedis | undefined) => Promise<T>,
  options: { env?: Record<string, string>; nodeArgs?: string[] } = {},
): Promise<T> {
  const started = await startPeer(peer, options.env, options.nodeArgs);
  try {
    return await task(started.server, started.redis);
  } finally {
    await started.stop();
  }
}

/**
 * Runs `task` for each peer in turn, all of them started at once beforehand: a start costs about a
 * second of CPU, an idle server next to nothing. Each is stopped as soon as its task is done.
 */
export async function eachPeer(
  peers: readonly Peer[],
  task: (peer: Peer, server: ServerProcess, redis: BenchRedis | undefined) => Promise<void>,
): Promise<void> {
  const starts = await Promise.allSettled(peers.map((peer) => startPeer(peer)));
  const started = starts.flatMap((start) => (start.status === 'fulfilled' ? [start.value] : []));
  try {
    const failed = starts.find((start) => start.status === 'rejected');
    if (failed) throw failed.reason;
    for (const run of started) {
      try {
        await task(run.peer, run.server, run.redis);
      } finally {
        await run.stop();
      }
    }
  } finally {
    await Promise.all(started.map((run) => run.stop()));
  }
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight; results in order. */
export async function inBatches<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, () => worker()));
  return results;
}

/** `count` clients of `peer`, 50 connecting at a time; user ids `${prefix}-${i}`. */
export const connectMany = (peer: Peer, server: ServerProcess, count: number, prefix: string) =>
  inBatches(count, 50, (i) => peer.connect(server, `${prefix}-${i}`));

export async function closeClients(clients: readonly PeerClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
  // Let the close frames reach the server before it is stopped.
  await sleep(50);
}

/** Polls `check` every `everyMs` until it holds; throws after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10_000,
  everyMs = 20,
) {
  for (const deadline = performance.now() + timeoutMs; !(await check()); await sleep(everyMs))
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
}

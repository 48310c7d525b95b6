import { setTimeout as sleep } from 'node:timers/promises';
import { startBenchRedis, type BenchRedis } from './benchRedis.js';
import type { Peer, PeerClient } from './peer.js';
import { inBatches } from './rawSession.js';
import type { ServerProcess } from './serverProcess.js';

/** measure → peer label → value: what the scenarios found, for the comparison table. */
export type Figures = Map<string, Map<string, number>>;

export function recordFigure(figures: Figures, measure: string, peer: string, value: number) {
  let row = figures.get(measure);
  if (!row) figures.set(measure, (row = new Map<string, number>()));
  row.set(peer, value);
}

export interface ScenarioOptions {
  quick: boolean;
  log: (line: string) => void;
  figures: Figures;
}

/** A peer's server (and its private redis-server) running; `stop` ends both by PID, once. */
interface StartedPeer {
  peer: Peer;
  server: ServerProcess;
  redis: BenchRedis | undefined;
  stop(): Promise<void>;
}

async function startPeer(peer: Peer, nodeArgs: string[] = []): Promise<StartedPeer> {
  const redis = peer.usesRedis ? await startBenchRedis() : undefined;
  let server: ServerProcess;
  try {
    server = await peer.start({ redis, nodeArgs });
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

/**
 * Runs `task` against `peer` started as a child process, with a private redis-server when the peer
 * needs one; both are stopped by PID afterwards, however `task` ends.
 */
export async function withPeer<T>(
  peer: Peer,
  task: (server: ServerProcess, redis: BenchRedis | undefined) => Promise<T>,
  nodeArgs: string[] = [],
): Promise<T> {
  const started = await startPeer(peer, nodeArgs);
  try {
    return await task(started.server, started.redis);
  } finally {
    await started.stop();
  }
}

/**
 * Runs `task` for each peer in turn, all of them started at once beforehand: a start costs about a
 * second of CPU, an idle server next to nothing. Each is stopped by PID as soon as its task is done,
 * and every one however the tasks end.
 */
export async function eachPeer<T>(
  peers: readonly Peer[],
  task: (peer: Peer, server: ServerProcess, redis: BenchRedis | undefined) => Promise<T>,
): Promise<T[]> {
  const starts = await Promise.allSettled(peers.map((peer) => startPeer(peer)));
  const started = starts.flatMap((start) => (start.status === 'fulfilled' ? [start.value] : []));
  try {
    const failed = starts.find((start) => start.status === 'rejected');
    if (failed) throw failed.reason;
    const results: T[] = [];
    for (const run of started) {
      try {
        results.push(await task(run.peer, run.server, run.redis));
      } finally {
        await run.stop();
      }
    }
    return results;
  } finally {
    await Promise.all(started.map((run) => run.stop()));
  }
}

/** `count` clients of `peer`, `concurrency` connecting at a time; user ids `${prefix}-${i}`. */
export function connectMany(
  peer: Peer,
  server: ServerProcess,
  count: number,
  prefix: string,
  concurrency = 50,
): Promise<PeerClient[]> {
  return inBatches(count, concurrency, (i) => peer.connect(server, `${prefix}-${i}`));
}

export async function closeClients(clients: readonly PeerClient[]): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
  // Let the close frames reach the server before it is stopped.
  await sleep(50);
}

export const ratio = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)}×` : 'n/a');

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

/**
 * Runs `task` against `peer` started as a child process, with a private redis-server when the peer
 * needs one; both are stopped by PID afterwards, however `task` ends.
 */
export async function withPeer<T>(
  peer: Peer,
  task: (server: ServerProcess, redis: BenchRedis | undefined) => Promise<T>,
  nodeArgs: string[] = [],
): Promise<T> {
  await using redis = peer.usesRedis ? await startBenchRedis() : undefined;
  await using server = await peer.start({ redis, nodeArgs });
  return await task(server, redis);
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
  await sleep(200);
}

export const ratio = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)}×` : 'n/a');

import type { BenchRedis } from './benchRedis.js';
import type { ServerProcess } from './serverProcess.js';

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
  /** Row label in the tables. */
  label: string;
  /** Whether it needs a Redis (each run gets its own). */
  usesRedis: boolean;
  start(options: { redis?: BenchRedis; nodeArgs?: string[] }): Promise<ServerProcess>;
  connect(server: ServerProcess, userId: string): Promise<PeerClient>;
}

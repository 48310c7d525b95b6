import type { Feeds } from '../presence/feeds.js';
import type { Logger } from 'pino';
import type { Actor, InspectionEvent, Observer } from 'xstate';
import type { PersistedConnection } from '../../machines/connection.js';
import type { SupervisorMachine } from '../../machines/supervisor.js';
import type { Clock } from '../clock.js';
import type { ResolvedConfig } from '../config.js';
import type { PresenceHooks } from '../hooks.js';
import type { PresenceIndex } from '../presence/presenceIndex.js';
import type { AdminConnection, Member, SessionInfo } from '../protocol.js';
import type { ConnectionRecord, PresenceStore } from '../store/types.js';
import type { ClosableSocket } from '../closeSocket.js';
import type { Connection } from './connection.js';

/** The part of a WebSocket the runtime needs. */
export type SocketLike = ClosableSocket;

/** A stored record that passed validation: its snapshot is a connection machine's. */
export type RestorableRecord = ConnectionRecord & { snapshot: PersistedConnection };

export interface OpenRequest {
  userId: string;
  role: 'admin' | 'user';
  ip: string | null;
  userAgent: string | null;
  resume?: string | undefined;
  socket: SocketLike;
}

export interface ConnectionsOptions {
  config: ResolvedConfig;
  store: PresenceStore;
  presence: PresenceIndex;
  /** Where session events go (`session.events`). */
  feeds: Pick<Feeds, 'publishSession' | 'endSession'>;
  clock: Clock;
  logger: Logger;
  hooks: PresenceHooks;
  /** Connections per supervisor shard (connections that run as actors). @default 64 */
  shardCapacity?: number;
  /** An inspection observer for the supervisor's actor system (`PRESENCED_INSPECT`). */
  inspect?: Observer<InspectionEvent> | undefined;
  /**
   * Whether every live connection runs as an XState actor in the supervisor's shards. Without, a
   * connection steps its own snapshot through the machine (`machine.transition`), which keeps ~2 KB
   * of actor, mailbox and registries per connection off the heap. @default whether `inspect` is set
   * (the inspector shows actors)
   */
  liveActors?: boolean;
  /**
   * How long an end waits for the store before it is announced anyway (the store unreachable); its
   * removal then stays queued. @default 2000 (the Redis command timeout)
   */
  endTimeoutMs?: number;
}

export type SupervisorActor = Actor<SupervisorMachine>;

/**
 * The supervisor and every connection of this node: what the transport, the routers and the
 * server's lifecycle do to connections.
 */
export interface Connections {
  /** The supervisor actor, once `start` ran. */
  readonly supervisor: SupervisorActor | null;
  /** Connections that have not ended. */
  readonly size: number;
  /** Restored connections nothing has happened to since the restore (they have no machine running yet). */
  readonly asleep: number;
  /**
   * Starts the supervisor with the connections restored from the store (validated records of this
   * node) and accepts connections; `lostAt` is when the previous process was last known alive.
   * Returns how many were restored.
   */
  start(records?: RestorableRecord[], lostAt?: number): number;
  /** A new connection, or the one `request.resume` names (resumed on this socket). */
  open(request: OpenRequest): Connection;
  get(connectionId: string): Connection | undefined;
  /** Any call from the client: it proves the user is there. */
  touch(connection: Connection): void;
  join(connection: Connection, gameId: string): Member[];
  /** Leaves its game; the game it left, if any. */
  leaveGame(connection: Connection): string | null;
  /** Ends a connection: at once in memory; `whenEnded` settles once the end is stored and announced. */
  end(connection: Connection, reason: 'left' | 'kicked' | 'replaced'): void;
  /** Ends a connection of this node; `false` when there is no such live connection. */
  kick(connectionId: string): boolean;
  /** Settles once this connection's end is stored (or given up on for now) and announced. */
  whenEnded(connectionId: string): Promise<void>;
  /** Settles once every end under way is stored (or given up on) and announced. */
  settled(): Promise<void>;
  /** The socket went away without `session.leave`: stale now, resumable until expiry. */
  socketClosed(connection: Connection, socket: SocketLike): void;
  info(connection: Connection): SessionInfo;
  list(query: { userId?: string | undefined; gameId?: string | undefined; limit: number }): AdminConnection[];
  /** Every live connection marked for the store (a flush then writes them all). */
  persistAll(): void;
  /** SIGTERM: stop accepting and tell every client to reconnect elsewhere. */
  drain(): void;
  stop(): void;
}

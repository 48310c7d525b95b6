import { createHash } from 'node:crypto';
import type { SnapshotFrom, StateValue } from 'xstate';
import {
  connectionStates,
  type ConnectionContext,
  type ConnectionEvent,
  type ConnectionState,
  type connectionMachine,
  type PersistedConnection,
} from '../../machines/connection.js';
import type { AdminConnection, EndReason, SessionInfo, SessionState } from '../protocol.js';
import { MAX_HISTORY_GAMES } from '../store/record.js';
import type { ConnectionRecord } from '../store/types.js';
import type { SocketLike } from './types.js';

/** What a connection needs of its actor (when it runs as one): its snapshot and its mailbox. */
export interface ConnectionActor {
  getSnapshot(): { value: StateValue; context: ConnectionContext };
  send(event: ConnectionEvent): void;
}
export type ConnectionSnapshot = SnapshotFrom<typeof connectionMachine>;

/**
 * The snapshot a connection without an actor holds: the persisted form (a `MachineSnapshot` also
 * carries its state nodes, a tag set and methods, ~400 B more per connection), the very object the
 * store's record then refers to. The runner expands it for each step (`MachineRunner.deliver`).
 */
export type HeldSnapshot = Omit<PersistedConnection, 'value'> & { value: ConnectionState };

/** A held snapshot of a connection that has not ended: what the store keeps. */
export function isPersistable(snapshot: HeldSnapshot): snapshot is PersistedConnection {
  return snapshot.value !== 'expired';
}

/** The machine's timers, by the key the deadline scheduler keeps them under. */
export const TimerKey = { stale: 0, expiry: 1, warning: 2 } as const;

export const hashToken = (token: string) => createHash('sha256').update(token).digest('base64url');

/** What a connection is opened with; the rest starts empty. */
export interface ConnectionInit {
  connectionId: string;
  userId: string;
  /** From the credentials of the socket attached last. */
  role: 'admin' | 'user';
  ip: string | null;
  userAgent: string | null;
  /** `null` for a connection restored after a restart until its client resumes with the token. */
  resumeToken: string | null;
  resumeTokenHash: string;
  socket: SocketLike | null;
}

/**
 * One connection as the server sees it: its machine (a snapshot it steps through the machine itself,
 * or, while inspecting, a live actor), its socket (if any). Its context and
 * state are read from that machine, never copied.
 */
export class Connection {
  readonly connectionId: string;
  readonly userId: string;
  role: 'admin' | 'user';
  readonly ip: string | null;
  readonly userAgent: string | null;
  resumeToken: string | null;
  readonly resumeTokenHash: string;
  socket: SocketLike | null;
  /** The machine's snapshot, while the connection has no actor. */
  machine: HeldSnapshot | null = null;
  /** Its actor, when it runs as one (inspection on). */
  actor: ConnectionActor | null = null;
  /**
   * A restored connection that has not taken `RESTORED` yet (nothing has happened to it since the
   * restore): its snapshot as of the restore, `stale`, deadlines kept. `wake` turns it into `machine`
   * or `actor`.
   */
  restored: PersistedConnection | null = null;
  /** The deadline each timer (`TimerKey`) is armed for; `0` when it is not armed. */
  staleTimer = 0;
  expiryTimer = 0;
  warningTimer = 0;
  resumed = false;
  /** Whether the machine has reported its first state. */
  opened = false;
  /** Set the moment it ends, before the end is stored: from then on no call, no resume. */
  ended: EndReason | null = null;
  /**
   * Its end being stored and then announced (`null` until it ends): settles once the store took the
   * end, or gave up for now, and every announcement went out.
   */
  ending: Promise<void> | null = null;
  /** Under the `replace` policy: the connection that replaced it (for its `replaced` event). */
  replacedBy: string | null = null;
  /** Set by `open` under `replace`: settles once the ends of the connections it replaced settled. */
  replacing: Promise<void> | null = null;
  /**
   * The games it was in, for history: the `MAX_HISTORY_GAMES` most recent, in the order they were
   * last joined (a `Set` keeps insertion order; `noteGame` moves a game to the end). `null` until
   * its first game: most connections never join one.
   */
  games: Set<string> | null = null;
  /** The `staleAt` last handed to the store (see `persist`). */
  persistedStaleAt = 0;

  constructor(init: ConnectionInit) {
    this.connectionId = init.connectionId;
    this.userId = init.userId;
    this.role = init.role;
    this.ip = init.ip;
    this.userAgent = init.userAgent;
    this.resumeToken = init.resumeToken;
    this.resumeTokenHash = init.resumeTokenHash;
    this.socket = init.socket;
  }

  /** The machine's context now. */
  get context(): ConnectionContext {
    if (this.actor) return this.actor.getSnapshot().context;
    if (this.machine) return this.machine.context;
    if (this.restored) return this.restored.context;
    throw new Error(`connection ${this.connectionId} has no machine`);
  }

  /** The machine's state now. */
  get state(): ConnectionState {
    if (this.actor) {
      const { value } = this.actor.getSnapshot();
      const state = connectionStates.find((known) => known === value);
      if (state) return state;
    }
    if (this.machine) return this.machine.value;
    if (this.restored) return this.restored.value;
    throw new Error(`connection ${this.connectionId} has no machine`);
  }

  get sessionState(): SessionState {
    const state = this.state;
    return state === 'expired' ? 'stale' : state;
  }

  /** It is in `gameId` now: the most recent game of its history, the oldest beyond the limit dropped. */
  noteGame(gameId: string): void {
    const games = (this.games ??= new Set<string>());
    games.delete(gameId);
    games.add(gameId);
    for (const oldest of games) {
      if (games.size <= MAX_HISTORY_GAMES) break;
      games.delete(oldest);
    }
  }

  /** The machine's snapshot as the store keeps it (what `getPersistedSnapshot()` gives, built directly). */
  persisted(): PersistedConnection {
    const held = this.restored ?? this.machine;
    if (held && isPersistable(held)) return held;
    const value = this.state;
    if (value === 'expired') throw new Error(`connection ${this.connectionId} has ended`);
    return { status: 'active', value, historyValue: {}, context: this.context, children: {} };
  }

  /** What the store keeps: the machine's persisted snapshot plus what the indexes need. */
  toRecord(nodeId: string): ConnectionRecord {
    const context = this.context;
    return {
      v: 1,
      connectionId: this.connectionId,
      userId: this.userId,
      nodeId,
      state: this.sessionState,
      gameId: context.gameId,
      lastSeen: context.lastSeen,
      expiresAt: context.expiresAt,
      resumeTokenHash: this.resumeTokenHash,
      ip: this.ip,
      userAgent: this.userAgent,
      snapshot: this.persisted(),
    };
  }

  /** What `session.info` and `admin.connections` both show, Dates as Dates. */
  private view(nodeId: string) {
    const { gameId, connectedAt, lastSeen, expiresAt } = this.context;
    return {
      connectionId: this.connectionId,
      userId: this.userId,
      nodeId,
      state: this.sessionState,
      gameId,
      connectedAt: new Date(connectedAt),
      lastSeen: new Date(lastSeen),
      expiresAt: expiresAt === null ? null : new Date(expiresAt),
    };
  }

  /** `session.info`. */
  info(nodeId: string, heartbeatMs: number): SessionInfo {
    return {
      ...this.view(nodeId),
      heartbeatMs,
      staleAt: new Date(this.context.staleAt),
      resumeToken: this.resumeToken ?? '',
      resumed: this.resumed,
    };
  }

  /** A row of `admin.connections`. */
  adminRow(nodeId: string): AdminConnection {
    return { ...this.view(nodeId), ip: this.ip, userAgent: this.userAgent };
  }
}

/** The name the routers and the transport know a connection by. */
export type ConnectionHandle = Connection;

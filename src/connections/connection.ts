import { createHash } from 'node:crypto';
import type { ActorRefFrom } from 'xstate';
import {
  restoredSnapshot,
  type ConnectionContext,
  type ConnectionState,
  type connectionMachine,
  type PersistedConnection,
} from '../../machines/connection.js';
import type { ClosableSocket } from '../wire/closeSocket.js';
import type { AdminConnection, EndReason, SessionInfo, SessionState } from '../protocol.js';
import { MAX_HISTORY_GAMES } from '../store/record.js';
import type { ConnectionRecord } from '../store/types.js';

/** The part of a WebSocket the runtime needs. */
export type SocketLike = ClosableSocket;

export type ConnectionActor = ActorRefFrom<typeof connectionMachine>;

/** A stored record that passed validation: its snapshot is a connection machine's. */
export type RestorableRecord = ConnectionRecord & { snapshot: PersistedConnection };

/** A restored connection that has no actor yet (see `ConnectionHandle.restored`). */
interface Asleep {
  /** Its snapshot as of the restore: `stale`, deadlines kept. */
  snapshot: PersistedConnection;
  /** Spawns its actor from `snapshot`; the handle calls it the first time its `actor` is asked for. */
  wake: (handle: ConnectionHandle, snapshot: PersistedConnection) => ConnectionActor;
}

export { closeCodeFor } from '../protocol.js';

export const hashToken = (token: string) => createHash('sha256').update(token).digest('base64url');

/** One connection as the server sees it: its actor, its socket (if any), its session events. */
export class ConnectionHandle {
  /** The actor's context as of its last report: deadlines, game, lastSeen. */
  context: ConnectionContext;
  state: ConnectionState = 'connected';
  socket: SocketLike | null;
  resumed = false;
  /** Whether the actor has reported its first state. */
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
  replacing: Promise<void> = Promise.resolve();
  /**
   * The games it was in, for history: the `MAX_HISTORY_GAMES` most recent, in the order they were
   * last joined (a `Set` keeps insertion order; `noteGame` moves a game to the end).
   */
  readonly games = new Set<string>();
  private awake: ConnectionActor | null = null;
  /** Set while a restored connection has no actor. */
  asleep: Asleep | null = null;
  /** The `staleAt` last handed to the store (see `persist`). */
  persistedStaleAt = 0;

  constructor(
    readonly connectionId: string,
    readonly userId: string,
    /** From the credentials of the socket attached last. */
    public role: 'admin' | 'user',
    readonly ip: string | null,
    readonly userAgent: string | null,
    /** `null` for a connection restored after a restart until its client resumes with the token. */
    public resumeToken: string | null,
    readonly resumeTokenHash: string,
    socket: SocketLike | null,
    context: ConnectionContext,
  ) {
    this.socket = socket;
    this.context = context;
  }

  /** It is in `gameId` now: the most recent game of its history, the oldest beyond the limit dropped. */
  noteGame(gameId: string): void {
    this.games.delete(gameId);
    this.games.add(gameId);
    for (const oldest of this.games) {
      if (this.games.size <= MAX_HISTORY_GAMES) break;
      this.games.delete(oldest);
    }
  }

  /** The connection's actor; a restored connection gets its actor here, the first time it is needed. */
  get actor(): ConnectionActor {
    if (this.awake) return this.awake;
    const asleep = this.asleep;
    if (!asleep) throw new Error(`connection ${this.connectionId} has no actor`);
    const actor = asleep.wake(this, asleep.snapshot);
    this.asleep = null;
    return actor;
  }

  set actor(actor: ConnectionActor) {
    this.awake = actor;
  }

  get sessionState(): SessionState {
    return this.state === 'expired' ? 'stale' : this.state;
  }

  /**
   * A handle for a connection restored from the store: `stale` (its socket is gone until it resumes,
   * lost at `lostAt` at the latest), its deadlines kept, and no actor until `wake` gives it one.
   */
  static restored(record: RestorableRecord, lostAt: number, wake: Asleep['wake']): ConnectionHandle {
    const snapshot = restoredSnapshot(record.snapshot, lostAt);
    const { context, value } = snapshot;
    const handle = new ConnectionHandle(
      record.connectionId,
      record.userId,
      'user',
      record.ip,
      record.userAgent,
      null,
      record.resumeTokenHash,
      null,
      context,
    );
    handle.state = value;
    handle.opened = true;
    handle.persistedStaleAt = context.staleAt;
    handle.asleep = { snapshot, wake };
    if (context.gameId) handle.noteGame(context.gameId);
    return handle;
  }

  /** What the store keeps: the actor's persisted snapshot plus what the indexes need. */
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
      snapshot: this.asleep ? this.asleep.snapshot : this.actor.getPersistedSnapshot(),
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

import type { ConnectionContext, ConnectionWarning, ConnectionState } from '../../machines/connection.js';
import type { LifecycleEvent } from '../hooks.js';
import type { ConnectionView } from '../presence/presenceIndex.js';
import { closeCodeFor, type EndReason, type SessionEvent, type SessionState } from '../protocol.js';
import type { HistoryRecord } from '../store/types.js';
import { closeFirmly } from '../closeSocket.js';
import { LogThrottle } from '../logThrottle.js';
import type { Connection } from './connection.js';
import type { ConnectionDirectory } from './directory.js';
import type { ConnectionsOptions, SocketLike } from './types.js';

export interface EffectsOptions extends Pick<
  ConnectionsOptions,
  'config' | 'store' | 'presence' | 'feeds' | 'clock' | 'logger' | 'hooks'
> {
  directory: ConnectionDirectory;
  /** How long an end waits for the store before it is announced anyway. */
  endTimeoutMs: number;
}

/** What presence knows of a connection as of its last report; `lastSeen` is read live, without a closure. */
class ReportedView implements ConnectionView {
  constructor(
    private readonly connection: Connection,
    readonly state: SessionState,
    readonly gameId: string | null,
    readonly joinedAt: number | null,
  ) {}

  get connectionId(): string {
    return this.connection.connectionId;
  }

  get userId(): string {
    return this.connection.userId;
  }

  lastSeen(): number {
    return this.connection.context.lastSeen;
  }
}

type LifecycleDetail = Record<string, unknown> & { type: LifecycleEvent['type'] };

/**
 * What the connection machine's `report`, `persist` and `warn` actions do on this server: a
 * transition moves presence, the store's write-behind, the hooks, the connection's history and
 * session events, and at the end its socket. Each takes the connection it acts for and the
 * machine's context at that action, as the machine passed it.
 */
export class ConnectionEffects {
  /** Ends being stored or announced, by connection: their callers and drain wait for them. */
  readonly endings = new Map<string, Promise<void>>();
  // Ends during a Redis outage: any client can cause them (connect, leave, again).
  private readonly throttled: LogThrottle;

  constructor(private readonly options: EffectsOptions) {
    this.throttled = new LogThrottle(options.logger, () => options.clock.now());
  }

  logError(error: unknown, where: string): void {
    this.options.logger.error({ err: error, where }, 'presenced caught an error');
    this.options.hooks.onError?.(error, where);
  }

  safely(where: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.logError(error, where);
    }
  }

  /**
   * Closing right away would drop the reply or event that announced the close: tRPC sends it in a
   * microtask after the resolver returns, and drops replies once the socket is closing.
   */
  closeSoon(socket: SocketLike, code: number, reason: string): void {
    setImmediate(() => this.safely('socket close', () => closeFirmly(socket, code, reason)));
  }

  /** Hands the connection to the store's write-behind (the record is built when it is written). */
  persist(connection: Connection, staleAt: number = connection.context.staleAt): void {
    connection.persistedStaleAt = staleAt;
    const { nodeId } = this.options.config;
    this.options.store.persist(connection.connectionId, () => connection.toRecord(nodeId));
  }

  viewOf(connection: Connection, context: ConnectionContext, state: SessionState): ConnectionView {
    return new ReportedView(connection, state, context.gameId, context.joinedAt);
  }

  /** The machine entered `state` (`report`); `context` is its new context. */
  entered(connection: Connection, context: ConnectionContext, state: ConnectionState): void {
    // The machine's snapshot is still the one before this transition (none yet for a new one).
    const first = !connection.opened;
    const previous = first ? null : connection.state;
    const previousGame = first ? null : connection.context.gameId;
    connection.opened = true;
    if (state === 'expired') return this.ended(connection, context);

    this.options.presence.update(this.viewOf(connection, context, state));
    this.persist(connection, context.staleAt);
    if (context.gameId && context.gameId !== previousGame) connection.noteGame(context.gameId);

    if (first) this.lifecycle(connection, { type: 'connection.opened' });
    if (previousGame && previousGame !== context.gameId) {
      this.lifecycle(connection, {
        type: 'game.left',
        gameId: previousGame,
        reason: context.gameId ? 'moved' : 'left',
      });
    }
    if (context.gameId && context.gameId !== previousGame) {
      this.lifecycle(connection, { type: 'game.joined', gameId: context.gameId });
    }
    if (state === 'stale' && previous !== 'stale') this.lifecycle(connection, { type: 'connection.stale' });
    if (previous === 'stale' && state !== 'stale') this.lifecycle(connection, { type: 'connection.resumed' });
    if (state !== previous || first) this.publish(connection, { type: 'state', state });
  }

  /**
   * Activity without a change of state (`persist`). Heartbeats only move `lastSeen`; writing each one
   * would cost the store a write per heartbeat. The stored `staleAt` is kept within half of staleMs
   * of the live one: with clients heartbeating at under half of staleMs (the defaults: 25 s of 60 s),
   * the stored deadline stays ahead of any crash, so a restore still starts the grace period at the
   * moment the socket was lost, exactly.
   */
  persisted(connection: Connection, context: ConnectionContext): void {
    if (connection.ended) return;
    if (context.staleAt - connection.persistedStaleAt >= this.options.config.staleMs / 2) {
      this.persist(connection, context.staleAt);
    }
  }

  /** A notice for the client (`warn`). */
  warn(connection: Connection, notice: ConnectionWarning): void {
    this.publish(connection, { type: 'warning', expiresAt: new Date(notice.expiresAt) });
  }

  private publish(connection: Connection, event: SessionEvent): void {
    this.options.feeds.publishSession(connection.connectionId, event);
  }

  private lifecycle(connection: Connection, event: LifecycleDetail): void {
    const { hooks, config, clock } = this.options;
    if (!hooks.onLifecycle) return;
    const full = {
      connectionId: connection.connectionId,
      userId: connection.userId,
      nodeId: config.nodeId,
      at: new Date(clock.now()),
      ...event,
    } as LifecycleEvent;
    this.safely(`hook onLifecycle(${event.type})`, () => hooks.onLifecycle?.(full));
  }

  private historyOf(connection: Connection, context: ConnectionContext, reason: EndReason): HistoryRecord {
    const now = this.options.clock.now();
    return {
      connectionId: connection.connectionId,
      userId: connection.userId,
      nodeId: this.options.config.nodeId,
      ip: connection.ip,
      userAgent: connection.userAgent,
      connectedAt: context.connectedAt,
      // Node may fire a timer a millisecond before Date.now() reaches its deadline.
      endedAt: reason === 'expired' && context.expiresAt !== null ? Math.max(now, context.expiresAt) : now,
      reason,
      games: [...(connection.games ?? [])],
    };
  }

  /**
   * Hands an end to the store, directly (not write-behind), and waits until it is stored — or for
   * `endTimeoutMs` at most: with the store unreachable the end is announced anyway and its removal
   * stays queued (the store's `end` says what it keeps).
   */
  private async storeEnd(connectionId: string, record: HistoryRecord): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), this.options.endTimeoutMs);
    });
    try {
      const result = await Promise.race([this.options.store.end(connectionId, record), late]);
      if (result !== 'stored') {
        this.throttled.warn('the store did not take an end; announced anyway, its removal is queued', {
          connectionId,
          result,
        });
      }
    } catch (error) {
      this.logError(error, 'store end');
    } finally {
      clearTimeout(timer);
    }
  }

  /** What an end tells everyone: only once it is stored, so nothing announced can come back. */
  private announce(connection: Connection, context: ConnectionContext, reason: EndReason, socket: SocketLike | null) {
    this.options.presence.remove(connection.connectionId, reason);
    if (context.gameId) this.lifecycle(connection, { type: 'game.left', gameId: context.gameId, reason });
    this.lifecycle(connection, { type: 'connection.expired', reason });
    if (reason === 'replaced' && connection.replacedBy) {
      this.publish(connection, { type: 'replaced', by: connection.replacedBy });
    }
    this.publish(connection, { type: 'expired', reason });
    if (socket) this.closeSoon(socket, closeCodeFor[reason], reason);
    this.options.feeds.endSession(connection.connectionId);
  }

  /**
   * The machine reached `expired`. In memory the connection ends at once: no call, no resume (its
   * token is dropped), not listed. The store then removes it directly, and only after that is the end
   * announced (presence `leave`, hooks, session events, the close): an end anyone was told about is
   * never restored after a crash, and so never announced twice.
   */
  private ended(connection: Connection, context: ConnectionContext): void {
    const reason = context.reason ?? 'expired';
    connection.ended = reason;
    this.options.directory.delete(connection);
    const socket = connection.socket;
    connection.socket = null;
    const ending = this.storeEnd(connection.connectionId, this.historyOf(connection, context, reason)).then(() =>
      this.safely('announce end', () => this.announce(connection, context, reason, socket)),
    );
    connection.ending = ending;
    this.endings.set(connection.connectionId, ending);
    void ending.finally(() => this.endings.delete(connection.connectionId));
  }
}

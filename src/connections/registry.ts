import { randomBytes, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import {
  connectionMachine,
  initialContext,
  type ConnectionContext,
  type ConnectionState,
  type ConnectionTiming,
  type PersistedConnection,
  wakeable,
} from '../../machines/connection.js';
import { shardMachine } from '../../machines/shard.js';
import { createTimerActions } from '../../machines/timers.js';
import { restoredSupervisorSnapshot, supervisorMachine } from '../../machines/supervisor.js';
import type { Clock } from '../clock.js';
import { closeFirmly } from '../wire/closeSocket.js';
import { LogThrottle } from '../wire/logThrottle.js';
import type { ResolvedConfig } from '../config.js';
import { PresenceError } from '../errors.js';
import type { LifecycleEvent, PresenceHooks } from '../hooks.js';
import type { Feeds } from '../presence/feeds.js';
import type { ConnectionView, PresenceIndex } from '../presence/presenceIndex.js';
import {
  CloseCode,
  type AdminConnection,
  type EndReason,
  type Member,
  type SessionEvent,
  type SessionInfo,
} from '../protocol.js';
import type { HistoryRecord, PresenceStore } from '../store/types.js';
import {
  closeCodeFor,
  ConnectionHandle,
  hashToken,
  type ConnectionActor,
  type RestorableRecord,
  type SocketLike,
} from './connection.js';

export { ConnectionHandle, type RestorableRecord, type SocketLike } from './connection.js';

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
  /** Connections per supervisor shard. @default 64 */
  shardCapacity?: number;
  /** An inspection observer for the supervisor's actor system (`PRESENCED_INSPECT`). */
  inspect?: Observer<InspectionEvent> | undefined;
  /**
   * How long an end waits for the store before it is announced anyway (the store unreachable); its
   * removal then stays queued. @default 2000 (the Redis command timeout)
   */
  endTimeoutMs?: number;
}

export type Connections = ReturnType<typeof createConnections>;

/**
 * The supervisor actor and everything bound to it: the machines' `report`, `persist` and `notify`
 * actions go to presence, the store's write-behind and session events; handles, resume tokens and
 * user policies live here.
 */
export function createConnections(options: ConnectionsOptions) {
  const { config, store, presence, feeds, clock, logger, hooks } = options;
  const endTimeoutMs = options.endTimeoutMs ?? 2_000;
  // Ends during a Redis outage: any client can cause them (connect, leave, again).
  const throttled = new LogThrottle(logger, () => clock.now());
  const handles = new Map<string, ConnectionHandle>();
  /** Ends being stored or announced, by connection: their callers and drain wait for them. */
  const endings = new Map<string, Promise<void>>();
  const byToken = new Map<string, string>();
  const timing: ConnectionTiming = {
    staleMs: config.staleMs,
    expireMs: config.expireMs,
    inGameExpireMs: config.inGameExpireMs,
    warnMs: config.warnMs,
  };

  function report(error: unknown, where: string) {
    logger.error({ err: error, where }, 'presenced caught an error');
    hooks.onError?.(error, where);
  }

  function safely(where: string, fn: () => void) {
    try {
      fn();
    } catch (error) {
      report(error, where);
    }
  }

  function lifecycle(handle: ConnectionHandle, event: Record<string, unknown> & { type: LifecycleEvent['type'] }) {
    const full = {
      connectionId: handle.connectionId,
      userId: handle.userId,
      nodeId: config.nodeId,
      at: new Date(clock.now()),
      ...event,
    } as LifecycleEvent;
    if (hooks.onLifecycle) safely(`hook onLifecycle(${event.type})`, () => hooks.onLifecycle?.(full));
  }

  function emit(handle: ConnectionHandle, event: SessionEvent) {
    feeds.publishSession(handle.connectionId, event);
  }

  // Closing right away would drop the reply or event that announced the close: tRPC sends it in a
  // microtask after the resolver returns, and drops replies once the socket is closing.
  function closeSoon(socket: SocketLike, code: number, reason: string) {
    setImmediate(() => safely('socket close', () => closeFirmly(socket, code, reason)));
  }

  function mark(handle: ConnectionHandle) {
    handle.persistedStaleAt = handle.context.staleAt;
    store.put(handle.connectionId, () => handle.toRecord(config.nodeId));
  }

  function viewOf(handle: ConnectionHandle): ConnectionView {
    return {
      connectionId: handle.connectionId,
      userId: handle.userId,
      state: handle.sessionState,
      gameId: handle.context.gameId,
      joinedAt: handle.context.joinedAt,
      lastSeen: () => handle.context.lastSeen,
    };
  }

  function historyOf(handle: ConnectionHandle, context: ConnectionContext, reason: EndReason): HistoryRecord {
    const now = clock.now();
    return {
      connectionId: handle.connectionId,
      userId: handle.userId,
      nodeId: config.nodeId,
      ip: handle.ip,
      userAgent: handle.userAgent,
      connectedAt: context.connectedAt,
      // Node may fire a timer a millisecond before Date.now() reaches its deadline.
      endedAt: reason === 'expired' && context.expiresAt !== null ? Math.max(now, context.expiresAt) : now,
      reason,
      games: [...handle.games],
    };
  }

  /**
   * Hands an end to the store, directly (not write-behind), and waits until it is stored — or for
   * `endTimeoutMs` at most: with the store unreachable the end is announced anyway and its removal
   * stays queued (the store's `end` says what it keeps).
   */
  async function storeEnd(connectionId: string, record: HistoryRecord): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), endTimeoutMs);
    });
    try {
      const result = await Promise.race([store.end(connectionId, record), late]);
      if (result !== 'stored') {
        throttled.warn('the store did not take an end; announced anyway, its removal is queued', {
          connectionId,
          result,
        });
      }
    } catch (error) {
      report(error, 'store end');
    } finally {
      clearTimeout(timer);
    }
  }

  /** What an end tells everyone: only once it is stored, so nothing announced can come back. */
  function announce(
    handle: ConnectionHandle,
    context: ConnectionContext,
    reason: EndReason,
    socket: SocketLike | null,
  ) {
    presence.remove(handle.connectionId, reason);
    if (context.gameId) lifecycle(handle, { type: 'game.left', gameId: context.gameId, reason });
    lifecycle(handle, { type: 'connection.expired', reason });
    if (reason === 'replaced' && handle.replacedBy) emit(handle, { type: 'replaced', by: handle.replacedBy });
    emit(handle, { type: 'expired', reason });
    if (socket) closeSoon(socket, closeCodeFor[reason], reason);
    feeds.endSession(handle.connectionId);
  }

  /**
   * The actor reached `expired`. In memory the connection ends at once: no call, no resume (its token
   * is dropped), not listed. The store then removes it directly, and only after that is the end
   * announced (presence `leave`, hooks, session events, the close): an end anyone was told about is
   * never restored after a crash, and so never announced twice.
   */
  function ended(handle: ConnectionHandle, context: ConnectionContext) {
    const reason = context.reason ?? 'expired';
    handle.ended = reason;
    handles.delete(handle.connectionId);
    byToken.delete(handle.resumeTokenHash);
    const socket = handle.socket;
    handle.socket = null;
    const ending = storeEnd(handle.connectionId, historyOf(handle, context, reason)).then(() =>
      safely('announce end', () => announce(handle, context, reason, socket)),
    );
    handle.ending = ending;
    endings.set(handle.connectionId, ending);
    void ending.finally(() => endings.delete(handle.connectionId));
  }

  function onReport(context: ConnectionContext, state: ConnectionState) {
    const handle = handles.get(context.connectionId);
    if (!handle) return;
    const previous = handle.state;
    const previousGame = handle.context.gameId;
    const first = !handle.opened;
    handle.opened = true;
    handle.context = context;
    handle.state = state;
    if (state === 'expired') return ended(handle, context);

    presence.update(viewOf(handle));
    mark(handle);
    if (context.gameId && context.gameId !== previousGame) handle.noteGame(context.gameId);

    if (first) lifecycle(handle, { type: 'connection.opened' });
    if (previousGame && previousGame !== context.gameId) {
      lifecycle(handle, { type: 'game.left', gameId: previousGame, reason: context.gameId ? 'moved' : 'left' });
    }
    if (context.gameId && context.gameId !== previousGame) {
      lifecycle(handle, { type: 'game.joined', gameId: context.gameId });
    }
    if (state === 'stale' && previous !== 'stale') lifecycle(handle, { type: 'connection.stale' });
    if (previous === 'stale' && state !== 'stale') lifecycle(handle, { type: 'connection.resumed' });
    if (state !== previous || first) emit(handle, { type: 'state', state: handle.sessionState });
  }

  const timers = createTimerActions(clock);
  const connectionLogic = connectionMachine.provide({
    actions: {
      ...timers.actions,
      report: ({ context }, { state }) => safely('report', () => onReport(context, state)),
      // Activity without a change of state. Heartbeats only move `lastSeen`; writing each one would
      // cost the store a write per heartbeat. The stored `staleAt` is kept within half of staleMs of
      // the live one: with clients heartbeating at under half of staleMs (the defaults: 25 s of 60 s),
      // the stored deadline stays ahead of any crash, so a restore still starts the grace period at
      // the moment the socket was lost, exactly.
      persist: ({ context }) => {
        const handle = handles.get(context.connectionId);
        if (!handle) return;
        handle.context = context;
        if (context.staleAt - handle.persistedStaleAt >= timing.staleMs / 2) mark(handle);
      },
      notify: ({ context }, notice) => {
        const handle = handles.get(context.connectionId);
        if (handle) emit(handle, { type: 'warning', expiresAt: new Date(notice.expiresAt) });
      },
    },
  });
  const supervisorLogic = supervisorMachine.provide({
    actors: { shard: shardMachine.provide({ actors: { connection: wakeable(connectionLogic) } }) },
  });
  const shardCapacity = options.shardCapacity ?? 64;
  let supervisor: Actor<typeof supervisorLogic> | null = null;
  /** SIGTERM came before the restore was done: the supervisor starts straight into `draining`. */
  let draining = false;

  function running(): Actor<typeof supervisorLogic> {
    if (!supervisor?.getSnapshot().matches('running')) {
      throw new PresenceError('UNAVAILABLE', 'the server is not accepting connections');
    }
    return supervisor;
  }

  // Redis came back, possibly empty: hand every live connection to the store again.
  store.onReconnect(() => {
    for (const handle of handles.values()) mark(handle);
  });

  /** Restored connections without an actor yet. */
  const sleeping = new Set<ConnectionHandle>();
  const wakeAt = (handle: ConnectionHandle) => handle.context.expiresAt ?? handle.context.staleAt;
  /**
   * The restored connections by deadline, and one timer for the next deadline: one timer per
   * connection cost 50,000 timer lists at a restore. Entries woken meanwhile are skipped.
   */
  let byDeadline: ConnectionHandle[] = [];
  let nextDue = 0;
  let deadlineTimer: unknown = null;
  /**
   * Restored connections whose expiry has come, woken (and so expired) `WAKE_BATCH` per turn of the
   * event loop: after a restart nobody came back to, they are all due within the same millisecond,
   * and waking 50,000 in one go would hold the event loop for seconds.
   */
  let due: ConnectionHandle[] = [];
  const WAKE_BATCH = 256;

  function wakeDue() {
    const batch = due.slice(0, WAKE_BATCH);
    due = due.slice(WAKE_BATCH);
    for (const handle of batch) if (handle.asleep) safely('wake', () => handle.actor);
    if (due.length > 0) clock.setTimeout(wakeDue, 0);
  }

  function armDeadlineTimer() {
    while (nextDue < byDeadline.length && !byDeadline[nextDue]?.asleep) nextDue++;
    const next = byDeadline[nextDue];
    if (!next) {
      byDeadline = [];
      nextDue = 0;
      return;
    }
    deadlineTimer = clock.setTimeout(
      () => {
        deadlineTimer = null;
        const now = clock.now();
        const wasIdle = due.length === 0;
        for (let handle = byDeadline[nextDue]; handle && wakeAt(handle) <= now; handle = byDeadline[++nextDue]) {
          if (handle.asleep) due.push(handle);
        }
        if (wasIdle && due.length > 0) clock.setTimeout(wakeDue, 0);
        armDeadlineTimer();
      },
      Math.max(0, wakeAt(next) - clock.now()),
    );
  }

  /**
   * Gives a restored connection its actor: its shard spawns it from the restored snapshot, and
   * `RESTORED` re-arms its timers (an expiry already due fires at once, through the machine).
   */
  function wake(
    handle: ConnectionHandle,
    snapshot: PersistedConnection,
    place: { shard: string; slot: number },
  ): ConnectionActor {
    const shard = supervisor?.getSnapshot().children[place.shard];
    shard?.send({ type: 'WAKE', connectionId: handle.connectionId, slot: place.slot, snapshot });
    const actor = supervisor?.system.get(handle.connectionId) as ConnectionActor | undefined;
    if (!actor) throw new PresenceError('UNAVAILABLE', 'the connection actor could not be restored');
    sleeping.delete(handle);
    handle.actor = actor;
    actor.send({ type: 'RESTORED', at: clock.now(), lostAt: handle.context.staleSince ?? clock.now() });
    return actor;
  }

  function live(handle: ConnectionHandle): ConnectionHandle {
    if (handle.ended) throw new PresenceError('SESSION_ENDED', `this session has ended (${handle.ended})`);
    return handle;
  }

  return {
    get supervisor() {
      return supervisor;
    },

    /**
     * Starts the supervisor with the connections restored from the store (validated records of this
     * node) and accepts connections. Each restored connection comes back `stale` with its game and
     * its original deadlines; `lostAt` is when the previous process was last known alive.
     */
    start(records: RestorableRecord[] = [], lostAt = clock.now()) {
      const at = clock.now();
      const restored = records.length > 0 ? restoredSupervisorSnapshot(records.length, shardCapacity) : undefined;
      const root = createActor(supervisorLogic, {
        clock,
        input: { shardCapacity },
        ...(restored ? { snapshot: restored.snapshot } : {}),
        ...(options.inspect ? { inspect: options.inspect } : {}),
      });
      supervisor = root;
      root.subscribe({
        error: (error) =>
          safely('supervisor', () => {
            throw error;
          }),
      });
      root.start();
      root.send({ type: draining ? 'DRAIN' : 'READY' });
      // Each restored connection is `stale` with its original deadlines and gets its actor only when
      // something happens to it: a resume, a kick, or its expiry (see `wake`).
      presence.quietly(() => {
        records.forEach((record, index) => {
          const place = restored?.placeOf(index) ?? { shard: '', slot: 0 };
          const handle = ConnectionHandle.restored(record, Math.min(lostAt, at), (asleep, snapshot) =>
            wake(asleep, snapshot, place),
          );
          handles.set(handle.connectionId, handle);
          byToken.set(handle.resumeTokenHash, handle.connectionId);
          sleeping.add(handle);
          presence.update(viewOf(handle));
          // What the restore changed (a connection that was live at a crash is `stale` now) must be
          // stored, or a second restart would count its grace period from a later moment.
          if (record.snapshot.value !== 'stale' || record.snapshot.context.socket) mark(handle);
        });
      });
      byDeadline = [...sleeping].sort((a, b) => wakeAt(a) - wakeAt(b));
      nextDue = 0;
      armDeadlineTimer();
      return records.length;
    },

    get size() {
      return handles.size;
    },

    /** Restored connections that have no actor yet (nothing has happened to them since the restore). */
    get asleep() {
      return sleeping.size;
    },

    open(request: OpenRequest): ConnectionHandle {
      const root = running();
      const now = clock.now();
      if (request.resume) {
        const existing = handles.get(byToken.get(hashToken(request.resume)) ?? '');
        // A token works only for the user it was issued to; anything else silently gets a fresh session.
        if (existing && existing.userId === request.userId && !existing.ended) {
          const old = existing.socket;
          existing.socket = request.socket;
          existing.resumed = true;
          existing.resumeToken = request.resume;
          existing.role = request.role;
          if (old && old !== request.socket) closeSoon(old, CloseCode.replaced, 'resumed on another socket');
          existing.actor.send({ type: 'RESUME', at: now });
          return existing;
        }
      }
      // Connections whose end is still being stored are gone from `handles` already: not counted.
      const others = presence.connectionsOfUser(request.userId).filter((view) => handles.has(view.connectionId));
      const connectionId = randomUUID();
      const replaced: Promise<void>[] = [];
      if (config.userPolicy === 'replace') {
        for (const view of others) {
          const old = handles.get(view.connectionId);
          if (!old) continue;
          // Its `replaced` event goes out with the rest of its end, once that is stored.
          old.replacedBy = connectionId;
          old.actor.send({ type: 'END', reason: 'replaced', at: now });
          if (old.ending) replaced.push(old.ending);
        }
      } else if (others.length >= config.maxConnectionsPerUser) {
        throw new PresenceError(
          'TOO_MANY_REQUESTS',
          `user ${request.userId} already has ${others.length} connections (cap ${config.maxConnectionsPerUser})`,
        );
      }
      const input = { connectionId, userId: request.userId, at: now, timing };
      const token = randomBytes(16).toString('base64url');
      const handle = new ConnectionHandle(
        connectionId,
        request.userId,
        request.role,
        request.ip,
        request.userAgent,
        token,
        hashToken(token),
        request.socket,
        initialContext(input),
      );
      handles.set(connectionId, handle);
      byToken.set(handle.resumeTokenHash, connectionId);
      root.send({ type: 'CONNECT', input });
      const actor = root.system.get(connectionId) as ConnectionActor | undefined;
      if (!actor) {
        handles.delete(connectionId);
        throw new PresenceError('UNAVAILABLE', 'the connection actor could not be started');
      }
      handle.actor = actor;
      handle.replacing = Promise.all(replaced).then(() => undefined);
      return handle;
    },

    get(connectionId: string): ConnectionHandle | undefined {
      return handles.get(connectionId);
    },

    /** Any call from the client: it proves the user is there. */
    touch(handle: ConnectionHandle) {
      live(handle).actor.send({ type: 'HEARTBEAT', at: clock.now() });
    },

    join(handle: ConnectionHandle, gameId: string): Member[] {
      live(handle).actor.send({ type: 'JOIN_GAME', gameId, at: clock.now() });
      return presence.members(gameId);
    },

    leaveGame(handle: ConnectionHandle): string | null {
      const gameId = live(handle).context.gameId;
      handle.actor.send({ type: 'LEAVE_GAME', at: clock.now() });
      return gameId;
    },

    /**
     * Ends a connection: at once in memory; `whenEnded` settles once the end is stored and announced
     * (what `session.leave` answers after).
     */
    end(handle: ConnectionHandle, reason: 'left' | 'kicked' | 'replaced') {
      live(handle).actor.send({ type: 'END', reason, at: clock.now() });
    },

    /** Ends a connection of this node (see `end`); `false` when there is no such live connection. */
    kick(connectionId: string): boolean {
      const handle = handles.get(connectionId);
      if (!handle || handle.ended) return false;
      handle.actor.send({ type: 'END', reason: 'kicked', at: clock.now() });
      return true;
    },

    /**
     * Settles once the end of this connection is stored (or the store gave up for now, see
     * `endTimeoutMs`) and announced; at once for a connection that has not ended.
     */
    whenEnded(connectionId: string): Promise<void> {
      return endings.get(connectionId) ?? Promise.resolve();
    },

    /** Settles once every end under way is stored (or given up on) and announced. */
    async settled(): Promise<void> {
      while (endings.size > 0) await Promise.all(endings.values());
    },

    /** The socket went away without `session.leave`: stale now, resumable until expiry. */
    socketClosed(handle: ConnectionHandle, socket: SocketLike) {
      if (handle.socket !== socket || handle.ended) return;
      handle.socket = null;
      handle.actor.send({ type: 'SOCKET_CLOSED', at: clock.now() });
    },

    info(handle: ConnectionHandle): SessionInfo {
      return live(handle).info(config.nodeId, config.heartbeatMs);
    },

    list(query: { userId?: string | undefined; gameId?: string | undefined; limit: number }): AdminConnection[] {
      const out: AdminConnection[] = [];
      for (const handle of handles.values()) {
        if (out.length >= query.limit) break;
        if (query.userId !== undefined && handle.userId !== query.userId) continue;
        if (query.gameId !== undefined && handle.context.gameId !== query.gameId) continue;
        out.push(handle.adminRow(config.nodeId));
      }
      return out;
    },

    /** Every live connection marked for the store (a flush then writes them all). */
    markAll() {
      for (const handle of handles.values()) mark(handle);
    },

    /**
     * SIGTERM: stop accepting and tell every client to reconnect elsewhere. Each connection loses its
     * socket now, not when the close handshake ends, so the snapshots flushed next are `stale` since
     * this moment and a restart keeps exactly the grace period they had left.
     */
    drain() {
      draining = true;
      supervisor?.send({ type: 'DRAIN' });
      const at = clock.now();
      for (const handle of handles.values()) {
        const socket = handle.socket;
        if (!socket) continue;
        handle.socket = null;
        handle.actor.send({ type: 'SOCKET_CLOSED', at });
        safely('socket close', () => closeFirmly(socket, CloseCode.serverRestarting, 'server restarting'));
      }
    },

    stop() {
      if (deadlineTimer !== null) clock.clearTimeout(deadlineTimer);
      sleeping.clear();
      byDeadline = [];
      due = [];
      supervisor?.send({ type: 'STOP' });
      supervisor?.stop();
      timers.dispose();
      for (const handle of handles.values()) feeds.endSession(handle.connectionId);
      handles.clear();
      byToken.clear();
    },
  };
}

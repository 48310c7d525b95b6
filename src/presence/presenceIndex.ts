import { EventEmitter, on } from 'node:events';
import type {
  EndReason,
  LeaveReason,
  Member,
  PresenceEvent,
  SessionState,
  StateCounts,
  UserPresence,
  UserStatus,
} from '../protocol.js';
import { createPushIterator, type PushIterator } from './pushIterator.js';

/**
 * What presence knows of one connection: exactly what its actor reported when it last entered a
 * state. `lastSeen` is read live from the actor, so heartbeats cost presence nothing.
 */
export interface ConnectionView {
  connectionId: string;
  userId: string;
  state: SessionState;
  gameId: string | null;
  joinedAt: number | null;
  lastSeen(): number;
}

export interface TrackedPresenceEvent {
  /** Increasing per game (one counter for every game of this process). */
  id: string;
  event: PresenceEvent;
}

interface GameEntry {
  members: Map<string, ConnectionView>;
  /** The last `retain` events, oldest first. */
  log: TrackedPresenceEvent[];
  subscribers: number;
}

interface UserEntry {
  connections: Map<string, ConnectionView>;
  presence: UserPresence;
}

export interface PresenceIndexOptions {
  /** Events kept per game for `lastEventId` replay. @default 512 */
  retain?: number;
}

export interface PresenceStats {
  connections: number;
  users: number;
  games: number;
  byState: StateCounts;
  perGame: Record<string, number>;
}

function toMember(view: ConnectionView): Member {
  return {
    userId: view.userId,
    connectionId: view.connectionId,
    state: view.state === 'stale' ? 'stale' : 'active',
    joinedAt: new Date(view.joinedAt ?? view.lastSeen()),
    lastSeen: new Date(view.lastSeen()),
  };
}

function statusOf(connections: Map<string, ConnectionView>): UserStatus {
  if (connections.size === 0) return 'offline';
  for (const view of connections.values()) if (view.state !== 'stale') return 'online';
  return 'away';
}

/**
 * Members per game and connections per user, derived from connection actors' reports and from
 * nothing else, so it cannot drift from the actors. Emits `game:<id>`, `user:<id>` and `stats`.
 */
export class PresenceIndex {
  private readonly connections = new Map<string, ConnectionView>();
  private readonly games = new Map<string, GameEntry>();
  private readonly users = new Map<string, UserEntry>();
  private readonly emitter = new EventEmitter();
  private readonly counts: StateCounts = { connected: 0, inGame: 0, stale: 0 };
  private readonly retain: number;
  private seq = 0;
  /** While set, games publish no events (see `quietly`). */
  private quiet = false;
  /**
   * Ids are `<process epoch>-<sequence>`, fixed width, so they increase as strings within and across
   * restarts. A bare counter would start again at 1 after a restart, and a client re-subscribing with
   * an id from the old process would be "replayed" the unrelated events of the new one.
   */
  private readonly epoch = Date.now().toString(36).padStart(9, '0');

  constructor(options: PresenceIndexOptions = {}) {
    this.retain = options.retain ?? 512;
    this.emitter.setMaxListeners(0);
  }

  /** A connection entered `view.state`. */
  update(view: ConnectionView): void {
    const previous = this.connections.get(view.connectionId);
    this.connections.set(view.connectionId, view);
    if (previous) this.counts[previous.state]--;
    this.counts[view.state]++;

    if (previous?.gameId && previous.gameId !== view.gameId) {
      this.leaveGame(previous, view.gameId ? 'moved' : 'left');
    }
    if (view.gameId) {
      const game = this.game(view.gameId);
      const wasMember = game.members.has(view.connectionId);
      game.members.set(view.connectionId, view);
      if (!wasMember) this.publish(view.gameId, { type: 'join', gameId: view.gameId, member: toMember(view) });
      else if ((previous?.state === 'stale') !== (view.state === 'stale')) {
        this.publish(view.gameId, { type: 'update', gameId: view.gameId, member: toMember(view) });
      }
    }
    this.updateUser(view.userId, (connections) => connections.set(view.connectionId, view));
    if (!this.quiet) this.emitter.emit('stats');
  }

  /** A connection ended. */
  remove(connectionId: string, reason: EndReason): void {
    const previous = this.connections.get(connectionId);
    if (!previous) return;
    this.connections.delete(connectionId);
    this.counts[previous.state]--;
    if (previous.gameId) this.leaveGame(previous, reason);
    this.updateUser(previous.userId, (connections) => connections.delete(connectionId));
    if (!this.quiet) this.emitter.emit('stats');
  }

  /**
   * Runs `fn` without publishing game, user or stats events: for a restore, before the node accepts
   * any socket, when no subscriber can exist to miss them (and a re-subscriber from before a restart
   * gets a `sync` anyway). Members, counts and user presence are updated as usual; one `stats` event
   * follows.
   */
  quietly(fn: () => void): void {
    this.quiet = true;
    try {
      fn();
    } finally {
      this.quiet = false;
      this.emitter.emit('stats');
    }
  }

  members(gameId: string): Member[] {
    const game = this.games.get(gameId);
    if (!game) return [];
    return [...game.members.values()].map(toMember).sort((a, b) => a.joinedAt.getTime() - b.joinedAt.getTime());
  }

  connectionsOfUser(userId: string): ConnectionView[] {
    return [...(this.users.get(userId)?.connections.values() ?? [])];
  }

  user(userId: string): UserPresence {
    return this.users.get(userId)?.presence ?? { userId, status: 'offline', connections: 0, lastSeen: null };
  }

  stats(): PresenceStats {
    const perGame: Record<string, number> = {};
    let games = 0;
    for (const [gameId, game] of this.games) {
      if (game.members.size === 0) continue;
      perGame[gameId] = game.members.size;
      games++;
    }
    return {
      connections: this.connections.size,
      users: this.users.size,
      games,
      byState: { ...this.counts },
      perGame,
    };
  }

  /**
   * The events of a game for one subscriber, each passed through `wrap`: what it missed since
   * `lastEventId` when that is still retained, a `sync` otherwise, then every new event. Ends when
   * `signal` aborts or the consumer returns.
   */
  subscribeGame<T>(
    gameId: string,
    lastEventId: string | undefined,
    signal: AbortSignal,
    wrap: (tracked: TrackedPresenceEvent) => T,
  ): PushIterator<T> {
    const game = this.game(gameId);
    const name = `game:${gameId}`;
    let last = '';
    const deliver = (tracked: TrackedPresenceEvent) => {
      // Ids increase: anything at or before the last one delivered was delivered already.
      if (tracked.id <= last) return;
      last = tracked.id;
      events.push(wrap(tracked));
    };
    const stop = () => events.end();
    const events = createPushIterator<T>(() => {
      this.emitter.off(name, deliver);
      signal.removeEventListener('abort', stop);
      game.subscribers--;
      this.dropIfUnused(gameId);
    });
    game.subscribers++;
    this.emitter.on(name, deliver);
    signal.addEventListener('abort', stop);
    const missed = this.replay(game, lastEventId);
    if (missed) {
      for (const tracked of missed) deliver(tracked);
    } else {
      // The newest retained event of this game, so a re-subscribe with this id replays from here.
      last = game.log.at(-1)?.id ?? this.idOf(this.seq);
      events.push(wrap({ id: last, event: { type: 'sync', gameId, members: this.members(gameId) } }));
    }
    if (signal.aborted) stop();
    return events;
  }

  /** The user's presence now, then every change of status or connection count. */
  async *subscribeUser(userId: string, signal: AbortSignal) {
    const live = on(this.emitter, `user:${userId}`, { signal });
    yield this.user(userId);
    for await (const [presence] of live as AsyncIterable<[UserPresence]>) yield presence;
  }

  /** Stats now, then after every change (callers throttle). */
  onStats(listener: () => void): () => void {
    this.emitter.on('stats', listener);
    return () => this.emitter.off('stats', listener);
  }

  private idOf(seq: number): string {
    return `${this.epoch}-${String(seq).padStart(12, '0')}`;
  }

  private replay(game: GameEntry, lastEventId: string | undefined): TrackedPresenceEvent[] | null {
    if (lastEventId === undefined) return null;
    const index = game.log.findIndex((tracked) => tracked.id === lastEventId);
    if (index === -1) return null;
    return game.log.slice(index + 1);
  }

  private leaveGame(view: ConnectionView, reason: LeaveReason) {
    const gameId = view.gameId;
    if (!gameId) return;
    const game = this.games.get(gameId);
    if (!game?.members.delete(view.connectionId)) return;
    this.publish(gameId, { type: 'leave', gameId, member: toMember(view), reason });
    this.dropIfUnused(gameId);
  }

  private game(gameId: string): GameEntry {
    let game = this.games.get(gameId);
    if (!game) this.games.set(gameId, (game = { members: new Map(), log: [], subscribers: 0 }));
    return game;
  }

  private dropIfUnused(gameId: string) {
    const game = this.games.get(gameId);
    if (game && game.members.size === 0 && game.subscribers === 0) this.games.delete(gameId);
  }

  private publish(gameId: string, event: PresenceEvent) {
    if (this.quiet) return;
    const game = this.game(gameId);
    const tracked = { id: this.idOf(++this.seq), event };
    game.log.push(tracked);
    if (game.log.length > this.retain) game.log.shift();
    this.emitter.emit(`game:${gameId}`, tracked);
  }

  private updateUser(userId: string, change: (connections: Map<string, ConnectionView>) => void) {
    let entry = this.users.get(userId);
    if (!entry) {
      entry = { connections: new Map(), presence: this.user(userId) };
      this.users.set(userId, entry);
    }
    change(entry.connections);
    let lastSeen = entry.presence.lastSeen?.getTime() ?? 0;
    for (const view of entry.connections.values()) lastSeen = Math.max(lastSeen, view.lastSeen());
    const next: UserPresence = {
      userId,
      status: statusOf(entry.connections),
      connections: entry.connections.size,
      lastSeen: lastSeen ? new Date(lastSeen) : null,
    };
    const changed = next.status !== entry.presence.status || next.connections !== entry.presence.connections;
    entry.presence = next;
    if (entry.connections.size === 0) this.users.delete(userId);
    if (changed && !this.quiet) this.emitter.emit(`user:${userId}`, next);
  }
}

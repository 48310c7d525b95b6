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
import { topicName, type Topics } from './feeds.js';
import type { Topic } from './topic.js';

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

interface GameEntry {
  members: Map<string, ConnectionView>;
  /** Its presence events: held while the game has members or subscribers. */
  topic: Topic<PresenceEvent>;
}

interface UserEntry {
  connections: Map<string, ConnectionView>;
  presence: UserPresence;
}

export interface PresenceIndexOptions {
  /** Where game and user events are published. */
  topics: Topics;
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
 * nothing else, so it cannot drift from the actors. Publishes each game's presence events and each
 * user's presence changes to their topics, and tells `onChange` after every change.
 */
export class PresenceIndex {
  private readonly connections = new Map<string, ConnectionView>();
  private readonly games = new Map<string, GameEntry>();
  private readonly users = new Map<string, UserEntry>();
  private readonly counts: StateCounts = { connected: 0, inGame: 0, stale: 0 };
  private readonly topics: Topics;
  private readonly retain: number;
  private changed: () => void = () => {};
  /** While set, nothing is published (see `quietly`). */
  private quiet = false;

  constructor(options: PresenceIndexOptions) {
    this.topics = options.topics;
    this.retain = options.retain ?? 512;
  }

  /** `listener` runs after every change of members, states or users (one listener). */
  onChange(listener: () => void): void {
    this.changed = listener;
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
    if (!this.quiet) this.changed();
  }

  /** A connection ended. */
  remove(connectionId: string, reason: EndReason): void {
    const previous = this.connections.get(connectionId);
    if (!previous) return;
    this.connections.delete(connectionId);
    this.counts[previous.state]--;
    if (previous.gameId) this.leaveGame(previous, reason);
    this.updateUser(previous.userId, (connections) => connections.delete(connectionId));
    if (!this.quiet) this.changed();
  }

  /**
   * Runs `fn` without publishing game, user or change events: for a restore, before the node accepts
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
      this.changed();
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

  /** The topic of a game's presence events, held from now on while the game has members or subscribers. */
  gameTopic(gameId: string): Topic<PresenceEvent> {
    return this.game(gameId).topic;
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
    if (!game) {
      const topic = this.topics.hold(topicName.game(gameId), {
        retain: this.retain,
        onUnsubscribed: () => this.dropIfUnused(gameId),
      });
      this.games.set(gameId, (game = { members: new Map(), topic }));
    }
    return game;
  }

  /** A game without members or subscribers is forgotten, its retained events with it. */
  private dropIfUnused(gameId: string) {
    const game = this.games.get(gameId);
    if (!game || game.members.size > 0 || game.topic.subscriberCount > 0) return;
    this.games.delete(gameId);
    this.topics.release(game.topic.name);
  }

  private publish(gameId: string, event: PresenceEvent) {
    if (this.quiet) return;
    this.game(gameId).topic.publish(event);
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
    if (changed && !this.quiet) this.topics.publish(topicName.user(userId), next);
  }
}

import type { Clock } from '../clock.js';
import type { AdminStats, PresenceEvent, SessionEvent, UserPresence } from '../protocol.js';
import type { PresenceIndex } from './presenceIndex.js';
import { Topic, type Bus, type TopicEvent, type TopicSubscription } from './topic.js';

/** A topic's name, typed by the events it carries. */
export type TopicName<T> = string & { readonly __events?: T };

/**
 * Every topic's name, in one place: a bus shared by several nodes routes by these (`game:chess:42`
 * on one node is the same topic on every other).
 */
export const topicName = {
  game: (gameId: string) => `game:${gameId}` as TopicName<PresenceEvent>,
  user: (userId: string) => `user:${userId}` as TopicName<UserPresence>,
  session: (connectionId: string) => `session:${connectionId}` as TopicName<SessionEvent>,
  stats: 'admin:stats' as TopicName<AdminStats>,
};

export interface HoldOptions<T> {
  /** Events kept for `lastEventId` replay. @default 0 */
  retain?: number;
  /** Its last subscriber left: the default lets the topic go. */
  onUnsubscribed?: (topic: Topic<T>) => void;
}

/** The topics this node holds: one per name, held while someone subscribes (or its owner keeps it). */
export class Topics {
  private readonly held = new Map<string, Topic<unknown>>();

  /** The default when a topic's last subscriber leaves: one function for every topic, not a closure each. */
  private readonly releaseTopic = (topic: { readonly name: string }) => this.release(topic.name);

  constructor(private readonly bus: Bus) {}

  /** The topic named `name`, held from now on. */
  hold<T>(name: TopicName<T>, options: HoldOptions<T> = {}): Topic<T> {
    const existing = this.held.get(name) as Topic<T> | undefined;
    if (existing) return existing;
    const topic = new Topic<T>(name, this.bus, options.retain ?? 0, options.onUnsubscribed ?? this.releaseTopic);
    this.held.set(name, topic as Topic<unknown>);
    return topic;
  }

  get<T>(name: TopicName<T>): Topic<T> | undefined {
    return this.held.get(name) as Topic<T> | undefined;
  }

  /** To every node holding the topic (nowhere, if no one does). */
  publish<T>(name: TopicName<T>, data: T): void {
    this.bus.publish(name, data);
  }

  /** Let the topic go: its subscriptions end once they handed out what they had queued. */
  release(name: string): void {
    const topic = this.held.get(name);
    if (!topic) return;
    this.held.delete(name);
    topic.close();
  }

  /** How many topics this node holds (a test sees nothing leak). */
  get size(): number {
    return this.held.size;
  }
}

export interface FeedsOptions {
  topics: Topics;
  presence: PresenceIndex;
  clock: Clock;
  /** `admin.stats` as of now. */
  stats: () => AdminStats;
  /** `admin.watch` sends at most once per this long. @default 100 */
  statsIntervalMs?: number;
}

/** What a subscriber asks for: where it left off, when it stops, and how it wants each event. */
export interface FeedRequest<T, TOut> {
  lastEventId?: string | undefined;
  signal?: AbortSignal | undefined;
  wrap: (event: TopicEvent<T>) => TOut;
}

const dataOf = <T>(event: TopicEvent<T>): T => event.data;

/**
 * The four streams a client can subscribe to, each a topic: a game's presence events (a `sync`
 * first, or what was missed since `lastEventId`), a user's presence (its value now, then every
 * change), a connection's session events, and the admin stats (its value now, then every change, at
 * most once per `statsIntervalMs`).
 */
export class Feeds {
  private readonly topics: Topics;
  private readonly presence: PresenceIndex;
  private readonly clock: Clock;
  private readonly stats: () => AdminStats;
  private readonly statsIntervalMs: number;
  /** The stats value sent last, as JSON (nothing is sent when it did not change). */
  private statsSent = '';
  private statsTimer: unknown = null;

  constructor(options: FeedsOptions) {
    this.topics = options.topics;
    this.presence = options.presence;
    this.clock = options.clock;
    this.stats = options.stats;
    this.statsIntervalMs = options.statsIntervalMs ?? 100;
    this.presence.onChange(() => this.statsChanged());
  }

  game<TOut>(gameId: string, request: FeedRequest<PresenceEvent, TOut>): TopicSubscription<PresenceEvent, TOut> {
    return this.presence.gameTopic(gameId).subscribe({
      ...request,
      first: () => ({ type: 'sync', gameId, members: this.presence.members(gameId) }),
    });
  }

  user(userId: string, signal?: AbortSignal): TopicSubscription<UserPresence, UserPresence> {
    const topic = this.topics.hold(topicName.user(userId));
    return topic.subscribe({ signal, wrap: dataOf, first: () => this.presence.user(userId) });
  }

  session(connectionId: string, signal?: AbortSignal): TopicSubscription<SessionEvent, SessionEvent> {
    return this.topics.hold(topicName.session(connectionId)).subscribe({ signal, wrap: dataOf });
  }

  /** An event for `connectionId`'s `session.events` subscribers, wherever they are. */
  publishSession(connectionId: string, event: SessionEvent): void {
    this.topics.publish(topicName.session(connectionId), event);
  }

  /** The session is over: its subscriptions end once they sent what they had. */
  endSession(connectionId: string): void {
    this.topics.release(topicName.session(connectionId));
  }

  /** `admin.stats` now. */
  statsNow(): AdminStats {
    return this.stats();
  }

  adminStats(signal?: AbortSignal): TopicSubscription<AdminStats, AdminStats> {
    const topic = this.topics.hold(topicName.stats, {
      onUnsubscribed: () => {
        this.topics.release(topicName.stats);
        this.statsSent = '';
      },
    });
    // The value now, published first if it changed, so that the new subscriber's first value and the
    // next one it gets from the topic differ, as they do for every other subscriber.
    this.sendStats();
    return topic.subscribe({ signal, wrap: dataOf, first: () => this.stats() });
  }

  /** Stops the pending stats timer (the server is closing). */
  close(): void {
    if (this.statsTimer !== null) this.clock.clearTimeout(this.statsTimer);
    this.statsTimer = null;
  }

  /** Presence changed: the stats go out after the interval (bursts coalesce), if anyone watches. */
  private statsChanged() {
    if (this.statsTimer !== null || !this.topics.get(topicName.stats)) return;
    this.statsTimer = this.clock.setTimeout(() => {
      this.statsTimer = null;
      this.sendStats();
    }, this.statsIntervalMs);
  }

  private sendStats() {
    if (!this.topics.get(topicName.stats)) return;
    const stats = this.stats();
    const json = JSON.stringify(stats);
    if (json === this.statsSent) return;
    this.statsSent = json;
    this.topics.publish(topicName.stats, stats);
  }
}

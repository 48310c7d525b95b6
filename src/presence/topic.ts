/**
 * The one subscription primitive: a topic is a named sequence of events with ordered ids, of which
 * the last `retain` are kept for replay. Game, user, session and admin streams are all topics; only
 * what a new subscriber gets first differs (a `sync`, the current value, nothing).
 *
 * Events reach a topic through a `Bus`, which gives each its id: the local bus numbers them in this
 * process; a bus shared by several nodes numbers them in the shared store and delivers each to every
 * node that holds the topic. Subscribers never see which.
 */

/** An event as a topic delivers it: `id`s increase (as strings) within a topic. */
export interface TopicEvent<T> {
  readonly id: string;
  readonly data: T;
}

/** What the bus delivers a topic's events to (the topic itself, with no closure per topic). */
export interface TopicReceiver {
  receive(event: TopicEvent<unknown>): void;
}

/**
 * Where topics' events come from. `publish` gives the event its id and delivers it, synchronously on
 * the local bus, to the listener of every node holding that topic, this one's included.
 */
export interface Bus {
  publish(topic: string, data: unknown): void;
  /** Events of `topic` go to `receiver` from now on (one receiver per topic and node). */
  listen(topic: string, receiver: TopicReceiver): void;
  unlisten(topic: string): void;
  /** The id a subscriber starting now has seen everything up to (for a `sync` with nothing retained). */
  currentId(topic: string): string;
}

/**
 * Ids are `<epoch>-<sequence>`, fixed width, so they increase as strings within a process and across
 * its restarts (the epoch is the process' start time). A bare counter would start again at 1 after a
 * restart, and a client re-subscribing with an id from the old process would be "replayed" the
 * unrelated events of the new one.
 */
export class LocalBus implements Bus {
  private readonly receivers = new Map<string, TopicReceiver>();
  private readonly epoch: string;
  private seq = 0;

  constructor(startedAt: number) {
    this.epoch = startedAt.toString(36).padStart(9, '0');
  }

  publish(topic: string, data: unknown): void {
    // Nobody here holds the topic: nothing to deliver, and no id is spent on it.
    this.receivers.get(topic)?.receive({ id: this.idOf(++this.seq), data });
  }

  listen(topic: string, receiver: TopicReceiver): void {
    this.receivers.set(topic, receiver);
  }

  unlisten(topic: string): void {
    this.receivers.delete(topic);
  }

  currentId(): string {
    return this.idOf(this.seq);
  }

  private idOf(seq: number): string {
    return `${this.epoch}-${String(seq).padStart(12, '0')}`;
  }
}

export interface SubscribeOptions<T, TOut> {
  /** The id of the last event the subscriber saw: what followed it is replayed if still retained. */
  lastEventId?: string | undefined;
  /**
   * Ends the subscription when it aborts. Optional: a consumer that calls `return()` when it stops
   * needs none (an AbortSignal with its listener costs about 700 bytes per subscription).
   */
  signal?: AbortSignal | undefined;
  /** What the subscriber gets for each event (tRPC's `tracked(id, data)`, or the data alone). */
  wrap: (event: TopicEvent<T>) => TOut;
  /**
   * What a subscriber gets first when nothing is replayed (a `sync`, the current value), with the id
   * of the newest event it stands for; nothing when absent.
   */
  first?: (id: string) => T;
}

/** What a topic hands its events to. */
interface Subscriber<T> {
  deliver(event: TopicEvent<T>): void;
  end(): void;
}

/**
 * One subscriber's events: an async iterator (what tRPC reads; one `next()` at a time) that can also
 * hand events over as they happen (`redirect`). A class with no closures of its own: one is open for
 * nearly every connection (the typed client subscribes to `session.events`), so its size is paid per
 * connection. It listens for its signal's abort, if it has one, as an event listener object
 * (`handleEvent`).
 */
export class TopicSubscription<T, TOut> implements AsyncIterableIterator<TOut, undefined>, Subscriber<T> {
  private queue: TOut[] | null = null;
  private waiting: ((result: IteratorResult<TOut, undefined>) => void) | null = null;
  private writer: ((value: TOut) => void) | null = null;
  private ended = false;
  /** The id of the last event delivered: anything at or before it was delivered already. */
  private last = '';

  constructor(
    private readonly topic: Topic<T>,
    private readonly wrap: (event: TopicEvent<T>) => TOut,
    private readonly signal: AbortSignal | undefined,
  ) {
    signal?.addEventListener('abort', this);
  }

  /** Called by the topic for each event, in order. */
  deliver(event: TopicEvent<T>): void {
    if (this.ended || event.id <= this.last) return;
    this.last = event.id;
    this.push(this.wrap(event));
  }

  /** The first value, before any event: its id marks what it stands for. */
  start(event: TopicEvent<T>): void {
    this.last = event.id;
    this.push(this.wrap(event));
  }

  /**
   * From now on every value goes to `write` as it is delivered (queued ones first) instead of to
   * `next()`, which stays pending until the end.
   */
  redirect(write: (value: TOut) => void): void {
    this.writer = write;
    const queued = this.queue;
    this.queue = null;
    if (queued) for (const value of queued) write(value);
  }

  /**
   * No more events. Values already queued are still handed out (an `expired` session event is
   * published just before its topic closes); then `next()` resolves done.
   */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.signal?.removeEventListener('abort', this);
    this.topic.unsubscribe(this);
    if (this.waiting && !this.queue?.length) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ done: true, value: undefined });
    }
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.queue = null;
    this.end();
  }

  next(): Promise<IteratorResult<TOut, undefined>> {
    const queue = this.queue;
    if (queue?.length) {
      const value = queue.shift() as TOut;
      if (queue.length === 0) this.queue = null;
      return Promise.resolve({ done: false, value });
    }
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  /** The consumer is done: nothing queued is handed out any more. */
  return(): Promise<IteratorResult<TOut, undefined>> {
    this.queue = null;
    this.end();
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private push(value: TOut) {
    if (this.writer) this.writer(value);
    else if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ done: false, value });
    } else (this.queue ??= []).push(value);
  }
}

/** One topic as this node holds it: its retained events and its subscribers here. */
export class Topic<T> implements TopicReceiver {
  /** The last `retain` events, oldest first (none kept when `retain` is 0). */
  private log: TopicEvent<T>[] | null = null;
  /**
   * An array, not a Set: most topics have one subscriber (a session's), and an array of one is a
   * fraction of a Set's size; leaving is rare next to delivering.
   */
  private readonly subscribers: Subscriber<T>[] = [];

  constructor(
    readonly name: string,
    private readonly bus: Bus,
    private readonly retain: number,
    /** Called when its last subscriber leaves. */
    private readonly onUnsubscribed: (topic: Topic<T>) => void,
  ) {
    bus.listen(name, this);
  }

  get subscriberCount(): number {
    return this.subscribers.length;
  }

  publish(data: T): void {
    this.bus.publish(this.name, data);
  }

  subscribe<TOut>(options: SubscribeOptions<T, TOut>): TopicSubscription<T, TOut> {
    const subscription = new TopicSubscription<T, TOut>(this, options.wrap, options.signal);
    if (options.signal?.aborted) {
      subscription.end();
      return subscription;
    }
    this.subscribers.push(subscription);
    const missed = this.missedSince(options.lastEventId);
    if (missed) for (const event of missed) subscription.deliver(event);
    else if (options.first) {
      // The newest retained event, so a re-subscribe with this id replays from here.
      const id = this.log?.at(-1)?.id ?? this.bus.currentId(this.name);
      subscription.start({ id, data: options.first(id) });
    }
    return subscription;
  }

  unsubscribe(subscription: Subscriber<T>): void {
    const index = this.subscribers.indexOf(subscription);
    if (index === -1) return;
    this.subscribers.splice(index, 1);
    if (this.subscribers.length === 0) this.onUnsubscribed(this);
  }

  /** Ends every subscription (values already queued are still handed out) and stops listening. */
  close(): void {
    this.bus.unlisten(this.name);
    for (const subscription of [...this.subscribers]) subscription.end();
  }

  /** From the bus: its events are this topic's, published as `T` (`Topics` names tie the two). */
  receive(event: TopicEvent<T>): void {
    if (this.retain > 0) {
      const log = (this.log ??= []);
      log.push(event);
      if (log.length > this.retain) log.shift();
    }
    // A copy only when a subscriber could leave during delivery (one that ends on this event).
    const subscribers = this.subscribers.length === 1 ? this.subscribers : [...this.subscribers];
    for (const subscription of subscribers) subscription.deliver(event);
  }

  private missedSince(lastEventId: string | undefined): TopicEvent<T>[] | null {
    if (lastEventId === undefined) return null;
    const index = this.log?.findIndex((event) => event.id === lastEventId) ?? -1;
    return index === -1 ? null : (this.log?.slice(index + 1) ?? null);
  }
}

import type { Clock } from '../clock.js';

/** One pending deadline: `fire` runs at `at` unless `current` says the entry was re-armed or cleared. */
interface Entry<T> {
  at: number;
  target: T;
  key: number;
}

export interface DeadlineSchedulerOptions<T> {
  clock: Clock;
  /** Runs a due entry, once; `at` is its deadline (a timer may fire a millisecond early). */
  fire: (target: T, key: number, at: number) => void;
  /** Whether an entry is still wanted: a re-armed or cleared deadline leaves its old entry behind. */
  current: (target: T, key: number, at: number) => boolean;
  /** Entries run per turn of the event loop at most. @default 256 */
  batch?: number;
  report: (error: unknown, where: string) => void;
}

/**
 * Every deadline of every connection in one binary heap, behind one clock timer for the earliest.
 * A Node timer per connection deadline cost ~200 B each (the Timeout, its closure, a map entry) and
 * a timer list per distinct duration; a heap entry is three fields. Re-arming pushes a new entry
 * and leaves the old one to be skipped when it comes up (`current`), so a heartbeat, which only
 * moves a deadline the machine re-arms lazily, costs the scheduler nothing.
 *
 * Due entries run `batch` per turn of the event loop: after a restart nobody came back to, every
 * restored connection is due within the same millisecond, and running 50,000 in one go would hold
 * the event loop for seconds.
 */
export class DeadlineScheduler<T> {
  private heap: Entry<T>[] = [];
  private timer: unknown = null;
  /** The deadline `timer` was armed for (a timer may fire a millisecond before `now()` reaches it). */
  private timerAt = 0;
  private readonly batch: number;

  constructor(private readonly options: DeadlineSchedulerOptions<T>) {
    this.batch = options.batch ?? 256;
  }

  arm(target: T, key: number, at: number): void {
    const heap = this.heap;
    heap.push({ at, target, key });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const up = heap[parent];
      const entry = heap[i];
      if (!up || !entry || up.at <= entry.at) break;
      heap[parent] = entry;
      heap[i] = up;
      i = parent;
    }
    if (i === 0) this.rearm();
  }

  /** Drops every entry and the timer: the server is stopping without ending its connections. */
  dispose(): void {
    if (this.timer !== null) this.options.clock.clearTimeout(this.timer);
    this.timer = null;
    this.heap = [];
  }

  private pop(): Entry<T> | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (!top || !last || heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if ((heap[left]?.at ?? Infinity) < (heap[least]?.at ?? Infinity)) least = left;
      if ((heap[right]?.at ?? Infinity) < (heap[least]?.at ?? Infinity)) least = right;
      if (least === i) break;
      const a = heap[i];
      const b = heap[least];
      if (!a || !b) break;
      heap[i] = b;
      heap[least] = a;
      i = least;
    }
    return top;
  }

  private rearm(): void {
    const { clock } = this.options;
    const next = this.heap[0];
    if (this.timer !== null) {
      if (next && this.timerAt <= next.at) return;
      clock.clearTimeout(this.timer);
      this.timer = null;
    }
    if (!next) return;
    this.timerAt = next.at;
    this.timer = clock.setTimeout(() => this.run(), Math.max(0, next.at - clock.now()));
  }

  private run(): void {
    this.timer = null;
    const due = Math.max(this.options.clock.now(), this.timerAt);
    const { fire, current, report } = this.options;
    for (let ran = 0; ran < this.batch;) {
      const next = this.heap[0];
      if (!next || next.at > due) break;
      this.pop();
      if (!current(next.target, next.key, next.at)) continue;
      ran++;
      try {
        fire(next.target, next.key, next.at);
      } catch (error) {
        report(error, 'deadline');
      }
    }
    const next = this.heap[0];
    if (next && next.at <= due) {
      // More are due than one batch: the rest on the next turn, after I/O.
      this.timerAt = next.at;
      this.timer = this.options.clock.setTimeout(() => this.run(), 0);
      return;
    }
    this.rearm();
  }
}

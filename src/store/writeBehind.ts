import type { ConnectionRecord } from './types.js';

/** `null` marks a removal. */
export type Mark = (() => ConnectionRecord) | null;

/**
 * The coalescing queue in front of every store: one entry per connection, whatever the number of
 * changes, so its size is bounded by the number of connections, never by the number of heartbeats.
 */
export class WriteBehind {
  private marks = new Map<string, Mark>();

  put(connectionId: string, read: () => ConnectionRecord): void {
    this.marks.set(connectionId, read);
  }

  remove(connectionId: string): void {
    this.marks.set(connectionId, null);
  }

  get size(): number {
    return this.marks.size;
  }

  /** Hands over everything marked so far and starts a new window. */
  take(): Map<string, Mark> {
    const taken = this.marks;
    this.marks = new Map();
    return taken;
  }

  /** Puts back what a failed write took, unless a newer mark came in meanwhile. */
  restore(taken: Map<string, Mark>): void {
    for (const [id, mark] of taken) if (!this.marks.has(id)) this.marks.set(id, mark);
  }
}

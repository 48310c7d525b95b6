import type { ConnectionRecord } from './types.js';

/** `null` marks a removal. */
export type Mark = (() => ConnectionRecord) | null;

/**
 * The coalescing queue in front of every store: one entry per connection, whatever the number of
 * changes, so its size is bounded by the number of connections, never by the number of heartbeats.
 * A removal is queued only for a connection the backing service may hold (see `PresenceStore.end`),
 * so ended connections the service never saw leave nothing here.
 */
export class WriteBehind {
  private marks = new Map<string, Mark>();

  persist(connectionId: string, read: () => ConnectionRecord): void {
    this.marks.set(connectionId, read);
  }

  remove(connectionId: string): void {
    this.marks.set(connectionId, null);
  }

  /** Drops whatever is marked for a connection (its end was written directly). */
  forget(connectionId: string): void {
    this.marks.delete(connectionId);
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

  /**
   * Puts back what a failed write took, unless a newer `persist` came in meanwhile or `keep` refuses it:
   * a connection that ended while the write was under way must not get its older `persist` back.
   */
  restore(taken: Map<string, Mark>, keep: (connectionId: string) => boolean = () => true): void {
    for (const [id, read] of taken) if (!this.marks.has(id) && keep(id)) this.marks.set(id, read);
  }
}

import type { EndReason, LeaveReason } from './protocol.js';

interface Base {
  connectionId: string;
  userId: string;
  nodeId: string;
  at: Date;
}

/** Lifecycle events, each emitted exactly once. */
export type LifecycleEvent =
  | (Base & { type: 'connection.opened' })
  | (Base & { type: 'connection.stale' })
  | (Base & { type: 'connection.resumed' })
  | (Base & { type: 'connection.expired'; reason: EndReason })
  | (Base & { type: 'game.joined'; gameId: string })
  | (Base & { type: 'game.left'; gameId: string; reason: LeaveReason });

export interface PresenceHooks {
  /** Every lifecycle event. A throwing hook is reported to `onError` and changes nothing. */
  onLifecycle?(event: LifecycleEvent): void;
  /** Every error presenced catches instead of crashing: hooks, actors, sockets, the store. */
  onError?(error: unknown, where: string): void;
}

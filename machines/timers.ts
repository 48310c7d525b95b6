import { fromCallback } from 'xstate';

/** The clock timers run on: the server's, or a `SimulatedClock` in tests. */
export interface TimerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export type TimerName = 'stale' | 'expiry' | 'warning';

/** Arm a timer for an absolute time (replacing one of the same name), or clear it. */
export type TimerCommand = { type: 'ARM'; name: TimerName; at: number } | { type: 'CLEAR'; name: TimerName };

export type TimerFired =
  { type: 'STALE_DUE'; at: number } | { type: 'EXPIRY_DUE'; at: number } | { type: 'WARNING_DUE'; at: number };

const fired = { stale: 'STALE_DUE', expiry: 'EXPIRY_DUE', warning: 'WARNING_DUE' } as const;

/**
 * A connection's timers, as a child actor of the connection (invoked by string `src`).
 *
 * Why not `after` or a delayed `raise`: XState keeps delayed events in the system, and stopping any
 * actor scans every delayed event of the system (`scheduler.cancelAll`). With every connection in one
 * system that makes each connection's end O(connections) and stopping many quadratic (25k connections
 * took 180 s to stop). A child actor's timers go away with it, at O(1). Delayed events are not
 * restored from snapshots either (statelyai/xstate#5331); the machine re-arms these from the absolute
 * deadlines in its context.
 */
export function createTimers(clock: TimerClock) {
  return fromCallback<TimerCommand>(({ sendBack, receive }) => {
    const pending = new Map<TimerName, unknown>();
    receive((command) => {
      const current = pending.get(command.name);
      if (current !== undefined) {
        clock.clearTimeout(current);
        pending.delete(command.name);
      }
      if (command.type !== 'ARM') return;
      const { name, at } = command;
      const id = clock.setTimeout(
        () => {
          pending.delete(name);
          sendBack({ type: fired[name], at } satisfies TimerFired);
        },
        Math.max(0, at - clock.now()),
      );
      pending.set(name, id);
    });
    return () => {
      for (const id of pending.values()) clock.clearTimeout(id);
      pending.clear();
    };
  });
}

/** Real time, for a machine used without `.provide()`; the server binds its own clock. */
export const realTimeClock: TimerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

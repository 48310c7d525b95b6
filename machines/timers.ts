import type { AnyActorRef } from 'xstate';

/** The clock timers run on: the server's, or a `SimulatedClock` in tests. */
export interface TimerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export type TimerName = 'stale' | 'expiry' | 'warning';

export type TimerFired =
  { type: 'STALE_DUE'; at: number } | { type: 'EXPIRY_DUE'; at: number } | { type: 'WARNING_DUE'; at: number };

const fired = { stale: 'STALE_DUE', expiry: 'EXPIRY_DUE', warning: 'WARNING_DUE' } as const;

interface ActionArgs {
  self: AnyActorRef;
}

/**
 * The implementations of the connection machine's `armTimer`, `clearTimer` and `clearTimers` actions:
 * timers on an injected clock that send `*_DUE` events (with the deadline as `at`) to the actor.
 *
 * Why not `after` or a delayed `raise`: XState keeps delayed events in the actor system, and stopping
 * any actor scans every delayed event of the system (`scheduler.cancelAll`), which with every
 * connection in one system made each session end O(connections) and a shutdown quadratic (25k
 * connections: 180 s). A child actor per connection for its timers fixed that but doubled the actors
 * to create, restore and collect. Delayed events are not restored from snapshots either
 * (statelyai/xstate#5331): the machine re-arms these from the absolute deadlines in its context.
 */
export function createTimerActions(clock: TimerClock) {
  const pending = new Map<AnyActorRef, Map<TimerName, unknown>>();

  function clear(self: AnyActorRef, name: TimerName) {
    const timers = pending.get(self);
    const id = timers?.get(name);
    if (id === undefined || !timers) return;
    clock.clearTimeout(id);
    timers.delete(name);
    if (timers.size === 0) pending.delete(self);
  }

  function clearAll(self: AnyActorRef) {
    for (const id of pending.get(self)?.values() ?? []) clock.clearTimeout(id);
    pending.delete(self);
  }

  return {
    actions: {
      armTimer: ({ self }: ActionArgs, { name, at }: { name: TimerName; at: number }) => {
        clear(self, name);
        let timers = pending.get(self);
        if (!timers) pending.set(self, (timers = new Map<TimerName, unknown>()));
        const id = clock.setTimeout(
          () => {
            clear(self, name);
            self.send({ type: fired[name], at } satisfies TimerFired);
          },
          Math.max(0, at - clock.now()),
        );
        timers.set(name, id);
      },
      clearTimer: ({ self }: ActionArgs, { name }: { name: TimerName }) => clear(self, name),
      clearTimers: ({ self }: ActionArgs) => clearAll(self),
    },
    /** Timers still pending (for tests and metrics). */
    get size() {
      let n = 0;
      for (const timers of pending.values()) n += timers.size;
      return n;
    },
    /** Clears every timer: the server is stopping its actors without ending them. */
    dispose() {
      for (const self of [...pending.keys()]) clearAll(self);
    },
  };
}

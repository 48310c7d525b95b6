/**
 * Time, injected: XState's `clock` option (timers) plus `now()` (the time stamped on every event).
 * Tests pass short configured timeouts or `vi.useFakeTimers()`, which drives both.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};

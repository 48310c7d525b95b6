import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/wire/admission.js';

/** A clock whose timers run only when the test says so. */
function manualClock() {
  const timers = new Map<number, () => void>();
  let next = 1;
  return {
    setTimeout: (fn: () => void) => {
      timers.set(next, fn);
      return next++;
    },
    clearTimeout: (id: unknown) => void timers.delete(id as number),
    fireAll: () => {
      const due = [...timers.values()];
      timers.clear();
      for (const fn of due) fn();
    },
    get pending() {
      return timers.size;
    },
  };
}

describe('Admission', () => {
  const limits = { maxConnections: 2, maxPending: 2, authTimeoutMs: 1000 };

  it('waiting sockets never take a slot; beyond maxPending they are turned away', () => {
    const clock = manualClock();
    const admission = new Admission<string>(limits, clock);
    expect(admission.arrive('a', () => undefined)).toBe('waiting');
    expect(admission.arrive('b', () => undefined)).toBe('waiting');
    expect(admission.arrive('c', () => undefined)).toBe('tooManyPending');
    expect(admission.counts()).toEqual({ authenticated: 0, pending: 2 });
    expect(admission.hasRoom()).toBe(true);
  });

  it('an admitted socket takes a slot and stops its timer; at maxConnections new sockets are turned away', () => {
    const clock = manualClock();
    const admission = new Admission<string>(limits, clock);
    admission.arrive('a', () => undefined);
    admission.arrive('b', () => undefined);
    admission.admit('a');
    admission.admit('b');
    expect(clock.pending).toBe(0);
    expect(admission.counts()).toEqual({ authenticated: 2, pending: 0 });
    expect(admission.hasRoom()).toBe(false);
    expect(admission.arrive('c', () => undefined)).toBe('atCapacity');
    admission.leave('a');
    expect(admission.arrive('c', () => undefined)).toBe('waiting');
  });

  it('times out only sockets still waiting', () => {
    const clock = manualClock();
    const admission = new Admission<string>(limits, clock);
    const timedOut: string[] = [];
    admission.arrive('a', () => timedOut.push('a'));
    admission.arrive('b', () => timedOut.push('b'));
    admission.admit('b');
    clock.fireAll();
    expect(timedOut).toEqual(['a']);
    admission.leave('a');
    expect(admission.counts()).toEqual({ authenticated: 1, pending: 0 });
  });
});

import { expect } from 'vitest';
import { createActor, SimulatedClock, type Actor, type Snapshot } from 'xstate';
import {
  connectionMachine,
  type ConnectionWarning,
  type ConnectionState,
  type ConnectionTiming,
} from '../../machines/connection.js';
import { createTimerActions } from '../../machines/timers.js';
import { games as gameIds } from './connectionExpectations.js';
import type { ConnectionModelPath, ConnectionModelSnapshot } from './connectionModel.js';
import type { TransitionRecorder } from './coverage.js';

/** Deadlines for the machine runs: distinct, so a wrong one shows. */
export const machineTiming: ConnectionTiming = {
  staleMs: 1_000,
  expireMs: 5_000,
  inGameExpireMs: 8_000,
  warnMs: 2_000,
};
const T0 = 1_700_000_000_000;
/** Time between two external events: far below staleMs, so only SILENCE lets it go stale. */
const GAP_MS = 50;
/** How long a process stays down on RESTART: far below any grace period. */
const DOWNTIME_MS = 250;
/** The clock moves in steps this small, as a real clock does (see test/unit/connection.test.ts). */
const TICK_MS = 10;

type ConnectionLogic = ReturnType<typeof connectionMachine.provide>;

/**
 * Runs paths of the abstract model against the real `connectionMachine`, bound to a `SimulatedClock`
 * through `createTimerActions`. One driver per path.
 */
export function connectionMachineDriver(recorder: TransitionRecorder) {
  let clock = new SimulatedClock();
  clock.set(T0);
  const reports: ConnectionState[] = [];
  const notices: ConnectionWarning[] = [];
  let timers = createTimerActions(clock);
  let actor: Actor<ConnectionLogic>;
  /** The abstract state the previous step ended in. */
  let previous: ConnectionModelSnapshot | undefined;

  function logic() {
    return connectionMachine.provide({
      actions: {
        ...timers.actions,
        report: (_, params) => reports.push(params.state),
        warn: (_, params) => notices.push(params),
      },
    });
  }

  function start(snapshot?: Snapshot<unknown>) {
    actor = createActor(logic(), {
      clock,
      inspect: recorder.inspect,
      input: { connectionId: 'c1', userId: 'alice', at: clock.now(), timing: machineTiming },
      ...(snapshot ? { snapshot } : {}),
    });
    actor.start();
  }
  start();

  const now = () => clock.now();
  const value = () => actor.getSnapshot().value;
  const context = () => actor.getSnapshot().context;
  const send = (event: Parameters<typeof actor.send>[0]) => actor.send(event);

  /** Advances the clock in ticks until `done` holds; fails past `maxMs`. Returns when it held. */
  function advanceUntil(done: () => boolean, maxMs: number): number {
    const until = now() + maxMs;
    while (!done()) {
      if (now() >= until) throw new Error(`not reached within ${maxMs} ms (state ${String(value())})`);
      clock.increment(TICK_MS);
    }
    return now();
  }

  /** A little time passes before every external event. */
  const gap = () => clock.increment(GAP_MS);

  const events = {
    HEARTBEAT: () => {
      gap();
      send({ type: 'HEARTBEAT', at: now() });
    },
    JOIN: () => {
      gap();
      send({ type: 'JOIN_GAME', gameId: gameIds.A, at: now() });
    },
    MOVE: () => {
      gap();
      const current = context().gameId;
      send({ type: 'JOIN_GAME', gameId: current === gameIds.A ? gameIds.B : gameIds.A, at: now() });
    },
    LEAVE_GAME: () => {
      gap();
      send({ type: 'LEAVE_GAME', at: now() });
    },
    SOCKET_DROP: () => {
      gap();
      send({ type: 'SOCKET_CLOSED', at: now() });
    },
    RESUME: () => {
      gap();
      send({ type: 'RESUME', at: now() });
    },
    SILENCE: () => {
      const deadline = context().staleAt;
      const at = advanceUntil(() => value() === 'stale', machineTiming.staleMs + GAP_MS);
      // It went stale on its deadline, by its own timer (STALE_DUE), and is stale since then.
      expect(at).toBe(deadline);
      expect(context().staleSince).toBe(deadline);
    },
    GRACE_ELAPSED: () => {
      const deadline = context().expiresAt;
      const warnedBefore = notices.length;
      const at = advanceUntil(() => actor.getSnapshot().status === 'done', machineTiming.inGameExpireMs + GAP_MS);
      expect(at).toBe(deadline);
      // A warning went out warnMs before expiry only if a socket was there to receive it.
      const warned = notices.slice(warnedBefore);
      if (previous?.context.socket) expect(warned).toEqual([{ type: 'warning', expiresAt: deadline }]);
      else expect(warned).toEqual([]);
    },
    KICK: () => {
      gap();
      send({ type: 'END', reason: 'kicked', at: now() });
    },
    REPLACE: () => {
      gap();
      send({ type: 'END', reason: 'replaced', at: now() });
    },
    LEAVE: () => {
      gap();
      send({ type: 'END', reason: 'left', at: now() });
    },
    RESTART: () => {
      gap();
      // The process dies now (a crash: unlike the server's drain, nothing marks it stale first, so
      // RESTORED is taken from connected and inGame too). What survives is the persisted snapshot,
      // through JSON as in a store.
      const lostAt = now();
      const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot())) as Snapshot<unknown>;
      const wasStale = value() === 'stale';
      const expiresAt = context().expiresAt;
      actor.stop();
      timers.dispose();
      // A new process: a new clock, later, with nothing scheduled.
      clock = new SimulatedClock();
      clock.set(lostAt + DOWNTIME_MS);
      timers = createTimerActions(clock);
      start(persisted);
      // Restored as persisted; entry actions do not run again, so no report.
      expect(value()).toBe((persisted as { value?: unknown }).value);
      send({ type: 'RESTORED', at: now(), lostAt });
      // A restart neither extends nor cuts the grace period: a stale one keeps its deadline, a live
      // one is stale since the moment the process died.
      if (wasStale) expect(context().expiresAt).toBe(expiresAt);
      else {
        const expireMs = context().gameId === null ? machineTiming.expireMs : machineTiming.inGameExpireMs;
        expect(context().staleSince).toBe(lostAt);
        expect(context().expiresAt).toBe(lostAt + expireMs);
      }
    },
  } satisfies Record<string, () => void>;

  /** The real machine agrees with the abstract state. */
  function checkState(state: ConnectionModelSnapshot) {
    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe(state.value);
    if (state.value === 'expired') {
      expect(snapshot.status).toBe('done');
      expect(snapshot.output).toEqual({ reason: state.context.reason });
      expect(reports.at(-1)).toBe('expired');
      // An ended connection leaves no timer behind.
      expect(timers.size).toBe(0);
    } else {
      expect(snapshot.status).toBe('active');
      expect(snapshot.context.gameId).toBe(state.context.game === null ? null : gameIds[state.context.game]);
      expect(snapshot.context.socket).toBe(state.context.socket);
      // Every state entered was reported (a restored actor reports once RESTORED re-enters stale).
      expect(reports.at(-1)).toBe(state.value);
      if (state.value === 'stale') {
        expect(snapshot.context.staleSince).toEqual(expect.any(Number));
        const expireMs = snapshot.context.gameId === null ? machineTiming.expireMs : machineTiming.inGameExpireMs;
        expect(snapshot.context.expiresAt).toBe((snapshot.context.staleSince ?? 0) + expireMs);
        // One timer for expiry, one for the warning while a socket can receive it.
        expect(timers.size).toBe(state.context.socket ? 2 : 1);
      } else {
        expect(snapshot.context.staleSince).toBeNull();
        expect(snapshot.context.expiresAt).toBeNull();
        expect(snapshot.context.staleAt).toBeGreaterThan(now());
        // Only the stale timer.
        expect(timers.size).toBe(1);
      }
    }
    previous = state;
  }

  return {
    params: { events, states: { '*': checkState } },
    stop() {
      actor.stop();
      timers.dispose();
    },
  };
}

/** Runs one path against the real machine; throws (with the path printed) on the first disagreement. */
export async function runOnMachine(path: ConnectionModelPath, recorder: TransitionRecorder) {
  const driver = connectionMachineDriver(recorder);
  try {
    await path.test(driver.params);
  } finally {
    driver.stop();
  }
}

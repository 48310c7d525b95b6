import { describe, expect, it } from 'vitest';
import { createActor, SimulatedClock, type Snapshot } from 'xstate';
import {
  connectionMachine,
  restoredSnapshot,
  wakeable,
  type ConnectionWarning,
  type PersistedConnection,
  type ConnectionReport,
  type ConnectionTiming,
} from '../../machines/connection.js';
import { createTimerActions } from '../../machines/timers.js';

const timing: ConnectionTiming = { staleMs: 1_000, expireMs: 5_000, inGameExpireMs: 8_000, warnMs: 2_000 };
const T0 = 1_700_000_000_000;

function start(options: { clock?: SimulatedClock; snapshot?: Snapshot<unknown> } = {}) {
  const clock = options.clock ?? new SimulatedClock();
  if (!options.snapshot) clock.set(T0);
  const reports: ConnectionReport['state'][] = [];
  const notices: ConnectionWarning[] = [];
  const machine = connectionMachine.provide({
    actions: {
      ...createTimerActions(clock).actions,
      report: (_, params) => reports.push(params.state),
      warn: (_, params) => notices.push(params),
    },
  });
  const actor = createActor(machine, {
    clock,
    input: { connectionId: 'c1', userId: 'alice', at: clock.now(), timing },
    ...(options.snapshot ? { snapshot: options.snapshot } : {}),
  });
  actor.start();
  // SimulatedClock.increment jumps to the end before firing due timers, so a timer re-armed while
  // firing would be measured from the end of the jump; stepping keeps time moving as a real clock does.
  const advance = (ms: number) => {
    for (let left = ms; left > 0; left -= 10) clock.increment(Math.min(10, left));
  };
  return { actor, clock, reports, notices, advance, now: () => clock.now() };
}

describe('connection machine', () => {
  it('starts connected with deadlines derived from lastSeen', () => {
    const { actor } = start();
    const snap = actor.getSnapshot();
    expect(snap.value).toBe('connected');
    expect(snap.context.staleAt).toBe(T0 + timing.staleMs);
    expect(snap.context.expiresAt).toBeNull();
  });

  it('goes stale after staleMs of silence and expires expireMs later', () => {
    const { actor, advance, reports } = start();
    advance(999);
    expect(actor.getSnapshot().value).toBe('connected');
    advance(1);
    expect(actor.getSnapshot().value).toBe('stale');
    expect(actor.getSnapshot().context.staleSince).toBe(T0 + 1_000);
    expect(actor.getSnapshot().context.expiresAt).toBe(T0 + 6_000);
    advance(4_999);
    expect(actor.getSnapshot().value).toBe('stale');
    advance(1);
    expect(actor.getSnapshot().status).toBe('done');
    expect(actor.getSnapshot().value).toBe('expired');
    expect(actor.getSnapshot().output).toEqual({ reason: 'expired' });
    expect(reports).toEqual(['connected', 'stale', 'expired']);
  });

  it('a heartbeat moves the stale deadline without reporting a transition', () => {
    const { actor, advance, now, reports } = start();
    advance(800);
    actor.send({ type: 'HEARTBEAT', at: now() });
    advance(900);
    expect(actor.getSnapshot().value).toBe('connected');
    expect(actor.getSnapshot().context.staleAt).toBe(T0 + 1_800);
    advance(100);
    expect(actor.getSnapshot().value).toBe('stale');
    expect(actor.getSnapshot().context.staleSince).toBe(T0 + 1_800);
    expect(reports).toEqual(['connected', 'stale']);
  });

  it('comes back from stale to where it was on activity', () => {
    const { actor, advance, now } = start();
    actor.send({ type: 'JOIN_GAME', gameId: 'g1', at: now() });
    expect(actor.getSnapshot().value).toBe('inGame');
    advance(1_000);
    expect(actor.getSnapshot().value).toBe('stale');
    expect(actor.getSnapshot().context.expiresAt).toBe(T0 + 1_000 + timing.inGameExpireMs);
    actor.send({ type: 'HEARTBEAT', at: now() });
    expect(actor.getSnapshot().value).toBe('inGame');
    expect(actor.getSnapshot().context.gameId).toBe('g1');
    expect(actor.getSnapshot().context.expiresAt).toBeNull();
    actor.send({ type: 'LEAVE_GAME', at: now() });
    expect(actor.getSnapshot().value).toBe('connected');
    advance(1_000);
    actor.send({ type: 'HEARTBEAT', at: now() });
    expect(actor.getSnapshot().value).toBe('connected');
  });

  it('a lost socket makes it stale at once; resume brings it back with its game', () => {
    const { actor, advance, now } = start();
    actor.send({ type: 'JOIN_GAME', gameId: 'g1', at: now() });
    advance(100);
    actor.send({ type: 'SOCKET_CLOSED', at: now() });
    expect(actor.getSnapshot().value).toBe('stale');
    expect(actor.getSnapshot().context.staleSince).toBe(T0 + 100);
    expect(actor.getSnapshot().context.socket).toBe(false);
    advance(3_000);
    actor.send({ type: 'RESUME', at: now() });
    expect(actor.getSnapshot().value).toBe('inGame');
    expect(actor.getSnapshot().context.socket).toBe(true);
    expect(actor.getSnapshot().context.staleAt).toBe(now() + timing.staleMs);
  });

  it('warns warnMs before expiry only while a socket is attached', () => {
    const attached = start();
    attached.advance(1_000);
    attached.advance(2_999);
    expect(attached.notices).toEqual([]);
    attached.advance(1);
    expect(attached.notices).toEqual([{ type: 'warning', expiresAt: T0 + 6_000 }]);

    const detached = start();
    detached.actor.send({ type: 'SOCKET_CLOSED', at: detached.now() });
    detached.advance(5_000);
    expect(detached.notices).toEqual([]);
    expect(detached.actor.getSnapshot().value).toBe('expired');
  });

  it('moving to another game re-enters inGame with the new game', () => {
    const { actor, now, reports } = start();
    actor.send({ type: 'JOIN_GAME', gameId: 'g1', at: now() });
    actor.send({ type: 'JOIN_GAME', gameId: 'g1', at: now() });
    actor.send({ type: 'JOIN_GAME', gameId: 'g2', at: now() });
    expect(actor.getSnapshot().context.gameId).toBe('g2');
    expect(reports).toEqual(['connected', 'inGame', 'inGame']);
  });

  it.each(['left', 'kicked', 'replaced'] as const)('ends at once with reason %s', (reason) => {
    const { actor, now } = start();
    actor.send({ type: 'END', reason, at: now() });
    expect(actor.getSnapshot().status).toBe('done');
    expect(actor.getSnapshot().output).toEqual({ reason });
  });

  it('a snapshot persisted in stale and read back from JSON expires on its original deadline', () => {
    const first = start();
    first.actor.send({ type: 'JOIN_GAME', gameId: 'g1', at: first.now() });
    first.advance(300);
    first.actor.send({ type: 'SOCKET_CLOSED', at: first.now() });
    const deadline = first.actor.getSnapshot().context.expiresAt;
    expect(deadline).toBe(T0 + 300 + timing.inGameExpireMs);
    const persisted: unknown = JSON.parse(JSON.stringify(first.actor.getPersistedSnapshot()));
    first.actor.stop();

    // The process restarts 2 s later; its new clock has not scheduled anything.
    const clock = new SimulatedClock();
    clock.set(first.now() + 2_000);
    const second = start({ clock, snapshot: persisted as Snapshot<unknown> });
    expect(second.actor.getSnapshot().value).toBe('stale');
    second.actor.send({ type: 'RESTORED', at: clock.now(), lostAt: clock.now() });
    expect(second.actor.getSnapshot().context.expiresAt).toBe(deadline);
    expect(second.actor.getSnapshot().context.gameId).toBe('g1');
    clock.set((deadline ?? 0) - 1);
    expect(second.actor.getSnapshot().value).toBe('stale');
    clock.increment(1);
    expect(second.actor.getSnapshot().value).toBe('expired');
    expect(second.actor.getSnapshot().output).toEqual({ reason: 'expired' });
  });

  it('restoredSnapshot is what RESTORED makes of a persisted snapshot, in every live state', () => {
    const persistedIn = (setup: (first: ReturnType<typeof start>) => void) => {
      const first = start();
      setup(first);
      const persisted = JSON.parse(JSON.stringify(first.actor.getPersistedSnapshot())) as PersistedConnection;
      first.actor.stop();
      return persisted;
    };
    const cases = {
      connected: persistedIn((first) => first.advance(200)),
      inGame: persistedIn((first) => first.actor.send({ type: 'JOIN_GAME', gameId: 'g1', at: first.now() })),
      staleWithSocket: persistedIn((first) => first.advance(1_200)),
      staleWithoutSocket: persistedIn((first) => {
        first.actor.send({ type: 'JOIN_GAME', gameId: 'g1', at: first.now() });
        first.actor.send({ type: 'SOCKET_CLOSED', at: first.now() + 100 });
      }),
    };
    for (const [name, persisted] of Object.entries(cases)) {
      for (const lostAt of [T0 + 50, T0 + 150, T0 + 5_000]) {
        const clock = new SimulatedClock();
        clock.set(T0 + 6_000);
        const viaEvent = start({ clock, snapshot: persisted as unknown as Snapshot<unknown> });
        viaEvent.actor.send({ type: 'RESTORED', at: clock.now(), lostAt });
        const expected = restoredSnapshot(persisted, lostAt);
        expect({ name, lostAt, snapshot: viaEvent.actor.getPersistedSnapshot() }).toMatchObject({
          name,
          lostAt,
          snapshot: expected,
        });
        // Woken from it (a spawn with its snapshot as input), RESTORED changes nothing but the timers.
        const woken = createActor(wakeable(connectionMachine), { clock, input: { snapshot: expected } as never });
        woken.start();
        woken.send({ type: 'RESTORED', at: clock.now(), lostAt });
        expect(woken.getPersistedSnapshot()).toMatchObject(expected);
      }
    }
  });

  it('a snapshot persisted while connected comes back stale from the time its socket was lost', () => {
    const first = start();
    first.advance(200);
    const persisted: unknown = JSON.parse(JSON.stringify(first.actor.getPersistedSnapshot()));
    first.actor.stop();
    const clock = new SimulatedClock();
    clock.set(T0 + 400);
    const second = start({ clock, snapshot: persisted as Snapshot<unknown> });
    second.actor.send({ type: 'RESTORED', at: clock.now(), lostAt: T0 + 250 });
    expect(second.actor.getSnapshot().value).toBe('stale');
    expect(second.actor.getSnapshot().context.expiresAt).toBe(T0 + 250 + timing.expireMs);
    clock.set(T0 + 250 + timing.expireMs);
    expect(second.actor.getSnapshot().value).toBe('expired');
  });
});

describe('connection timers', () => {
  it('an ended connection leaves no timer behind; dispose clears the rest', () => {
    const clock = new SimulatedClock();
    clock.set(T0);
    const timers = createTimerActions(clock);
    const machine = connectionMachine.provide({ actions: timers.actions });
    const start = (connectionId: string) =>
      createActor(machine, { clock, input: { connectionId, userId: 'u', at: clock.now(), timing } }).start();
    const ended = start('a');
    const stale = start('b');
    stale.send({ type: 'SOCKET_CLOSED', at: clock.now() });
    // a: the stale timer; b: the expiry (no warning: no socket to receive it).
    expect(timers.size).toBe(2);
    ended.send({ type: 'END', reason: 'left', at: clock.now() });
    expect(timers.size).toBe(1);
    stale.stop();
    timers.dispose();
    expect(timers.size).toBe(0);
  });
});

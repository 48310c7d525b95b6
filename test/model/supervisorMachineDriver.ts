import { expect } from 'vitest';
import {
  createActor,
  SimulatedClock,
  type Actor,
  type ActorRefFrom,
  type AnyActorLogic,
  type AnyActorRef,
  type Snapshot,
} from 'xstate';
import {
  connectionMachine,
  restoredSnapshot,
  wakeable,
  type ConnectionTiming,
  type PersistedConnection,
} from '../../machines/connection.js';
import { shardMachine } from '../../machines/shard.js';
import { restoredSupervisorSnapshot, supervisorMachine } from '../../machines/supervisor.js';
import { createTimerActions } from '../../machines/timers.js';
import type { TransitionRecorder } from './coverage.js';
import {
  SHARD_CAPACITY,
  type ShardModel,
  type SupervisorModelEventType,
  type SupervisorModelPath,
  type SupervisorModelSnapshot,
} from './supervisorModel.js';

const T0 = 1_700_000_000_000;
/** Connections never go stale here: the clock only moves across restarts, by far less than this. */
const timing: ConnectionTiming = { staleMs: 3_600_000, expireMs: 3_600_000, inGameExpireMs: 3_600_000, warnMs: 0 };

type ShardRef = ActorRefFrom<typeof shardMachine>;

/** The shards of a supervisor snapshot, oldest first (`shard-<seq>`), as the abstract model counts them. */
export function shardsOf(children: Record<string, AnyActorRef | undefined>) {
  return Object.entries(children)
    .filter((entry): entry is [string, ShardRef] => entry[1] !== undefined)
    .sort(([a], [b]) => Number(a.slice('shard-'.length)) - Number(b.slice('shard-'.length)))
    .map(([id, ref]) => {
      const snapshot = ref.getSnapshot();
      // Children are named by slot (`slotId`); a connection's id is its systemId.
      const children = Object.values(snapshot.children) as Actor<AnyActorLogic>[];
      return { id, snapshot, connections: children.map((child) => child.systemId ?? child.id) };
    });
}

/**
 * The layout the abstract model predicts, read from real shards. Each shard's `live` counts its
 * actors plus its restored connections still without one: `asleep` in all.
 */
export function layoutOf(shards: ReturnType<typeof shardsOf>, asleep: number): ShardModel[] {
  let withoutActor = 0;
  const layout = shards.map(({ snapshot, connections }) => {
    expect(snapshot.status).toBe('active');
    expect(connections.length).toBeLessThanOrEqual(snapshot.context.live);
    withoutActor += snapshot.context.live - connections.length;
    return { spawned: snapshot.context.spawned, live: snapshot.context.live, sealed: snapshot.value === 'sealed' };
  });
  expect(withoutActor).toBe(asleep);
  return layout;
}

/**
 * Runs paths of the abstract supervisor model against the real `supervisorMachine` with real shards
 * and connection machines (timers on a `SimulatedClock`). One driver per path.
 */
export function supervisorMachineDriver(recorder: TransitionRecorder) {
  let clock = new SimulatedClock();
  clock.set(T0);
  let timers = createTimerActions(clock);
  const logic = () =>
    supervisorMachine.provide({
      actors: {
        shard: shardMachine.provide({
          actors: { connection: wakeable(connectionMachine.provide({ actions: timers.actions })) },
        }),
      },
    });
  type SupervisorActor = Actor<ReturnType<typeof logic>>;
  const create = (snapshot?: Snapshot<unknown>): SupervisorActor =>
    createActor(logic(), {
      clock,
      inspect: recorder.inspect,
      input: { shardCapacity: SHARD_CAPACITY },
      ...(snapshot ? { snapshot } : {}),
    }).start();
  let supervisor = create();
  let seq = 0;
  let previous: SupervisorModelSnapshot | undefined;

  const shards = () => shardsOf(supervisor.getSnapshot().children as Record<string, AnyActorRef | undefined>);
  const connection = (id: string) => supervisor.system.get(id) as ActorRefFrom<typeof connectionMachine> | undefined;
  /** Restored connections without an actor yet, as the server keeps them (src/connections/registry.ts). */
  let asleep = new Map<string, { shard: string; slot: number; snapshot: PersistedConnection }>();
  /** Every live connection by shard, oldest shard first: actors and restored ones without one. */
  const liveConnections = () =>
    shards().flatMap((shard) => [
      ...shard.connections,
      ...[...asleep].filter(([, entry]) => entry.shard === shard.id).map(([id]) => id),
    ]);
  /** What the server does when something happens to a restored connection: WAKE, then RESTORED. */
  const wake = (id: string) => {
    const entry = asleep.get(id);
    if (!entry) return;
    asleep.delete(id);
    const shard = shards().find((candidate) => candidate.id === entry.shard);
    expect(shard?.snapshot.value).toBe('sealed');
    supervisor
      .getSnapshot()
      .children[entry.shard]?.send({ type: 'WAKE', connectionId: id, slot: entry.slot, snapshot: entry.snapshot });
    connection(id)?.send({ type: 'RESTORED', at: clock.now(), lostAt: entry.snapshot.context.staleSince ?? 0 });
    expect(connection(id)?.getSnapshot()).toMatchObject({ value: 'stale', context: entry.snapshot.context });
  };

  const events: Record<SupervisorModelEventType, (step: { state: SupervisorModelSnapshot }) => void> = {
    READY: () => supervisor.send({ type: 'READY' }),
    DRAIN: () => supervisor.send({ type: 'DRAIN' }),
    STOP: () => supervisor.send({ type: 'STOP' }),
    CONNECT: () => {
      const connectionId = `c${seq++}`;
      supervisor.send({ type: 'CONNECT', input: { connectionId, userId: connectionId, at: clock.now(), timing } });
      // Spawned only while running.
      if (previous?.value === 'running')
        expect(connection(connectionId)?.getSnapshot()).toMatchObject({ value: 'connected' });
      else expect(connection(connectionId)).toBeUndefined();
    },
    END: () => {
      const id = liveConnections()[0];
      if (id === undefined) throw new Error('no live connection to end');
      wake(id);
      connection(id)?.send({ type: 'END', reason: 'left', at: clock.now() });
      // The shard stopped it: nothing done is left behind.
      expect(connection(id)).toBeUndefined();
    },
    RESTART: () => {
      // What survives a crash: each connection's own persisted snapshot, through JSON as in a store.
      const persisted = liveConnections().map((connectionId) => ({
        connectionId,
        snapshot: JSON.parse(
          JSON.stringify(asleep.get(connectionId)?.snapshot ?? connection(connectionId)?.getPersistedSnapshot()),
        ) as PersistedConnection,
      }));
      const lostAt = clock.now();
      supervisor.stop();
      timers.dispose();
      clock = new SimulatedClock();
      clock.set(lostAt + 1_000);
      timers = createTimerActions(clock);
      // As the server does (src/connections/registry.ts `start`): sealed shards counting the connections,
      // which get their actors only when something happens to them.
      const restored = restoredSupervisorSnapshot(persisted.length, SHARD_CAPACITY);
      supervisor = create(persisted.length > 0 ? restored.snapshot : undefined);
      asleep = new Map(
        persisted.map(({ connectionId, snapshot }, index) => [
          connectionId,
          { ...restored.placeOf(index), snapshot: restoredSnapshot(snapshot, lostAt) },
        ]),
      );
      for (const { connectionId } of persisted) {
        expect(connection(connectionId)).toBeUndefined();
        expect(asleep.get(connectionId)?.snapshot).toMatchObject({ value: 'stale', status: 'active' });
      }
    },
  };

  function checkState(state: SupervisorModelSnapshot) {
    const snapshot = supervisor.getSnapshot();
    if (state.value === 'stopped') {
      expect(snapshot.status).toBe('done');
      expect(snapshot.value).toBe('stopped');
    } else {
      expect(snapshot.status).toBe('active');
      expect(snapshot.value).toBe(state.value);
      expect(layoutOf(shards(), asleep.size)).toEqual(state.context.shards);
      for (const id of liveConnections()) {
        if (!asleep.has(id)) expect(connection(id)?.getSnapshot().status).toBe('active');
      }
    }
    previous = state;
  }

  return {
    params: { events, states: { '*': checkState } },
    stop() {
      supervisor.stop();
      timers.dispose();
    },
  };
}

export async function runSupervisorOnMachine(path: SupervisorModelPath, recorder: TransitionRecorder) {
  const driver = supervisorMachineDriver(recorder);
  try {
    await path.test(driver.params);
  } finally {
    driver.stop();
  }
}

import { assign, setup, type SnapshotFrom } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import { bySnapshot, byTransition, spread } from './paths.js';

/**
 * The abstract model of the supervisor and its shards, written for testing. The supervisor goes
 * `starting` (restoring) → `running` → `draining` → `stopped`; while running it spawns connections
 * into shards of `SHARD_CAPACITY`, a shard is sealed once it has spawned that many and retires when
 * sealed and empty. A restart brings every live connection back in sealed shards of at most
 * `SHARD_CAPACITY` (`restoredSupervisorSnapshot`), the supervisor in `starting`.
 */

/** Small, so two connections seal a shard and paths stay short. */
export const SHARD_CAPACITY = 2;
/** Live connections at most: enough for a sealed shard and an open one. */
export const MAX_LIVE = 3;

/** A shard that has not retired, as the abstract model counts it. */
export interface ShardModel {
  spawned: number;
  live: number;
  sealed: boolean;
}

export interface SupervisorModelContext {
  /** Shards that have not retired, oldest first. */
  shards: ShardModel[];
}

export const supervisorModelEventTypes = [
  /** The store's state has been restored: start accepting. */
  'READY',
  /** A new client connects (refused unless running). */
  'CONNECT',
  /** One connection of the oldest shard that has one ends (`session.leave`). */
  'END',
  /** SIGTERM: stop accepting, tell clients to reconnect. */
  'DRAIN',
  /** The process stops after draining. */
  'STOP',
  /** The process restarts (with a persistent store). */
  'RESTART',
] as const;
export type SupervisorModelEventType = (typeof supervisorModelEventTypes)[number];
export type SupervisorModelEvent = { type: SupervisorModelEventType };

const live = (context: SupervisorModelContext) => context.shards.reduce((n, shard) => n + shard.live, 0);

/** What the supervisor and the shard do on a spawn: the open shard takes it, or a new shard opens. */
function connect(context: SupervisorModelContext): SupervisorModelContext {
  const shards = context.shards.map((shard) => ({ ...shard }));
  const last = shards.at(-1);
  const target = last && !last.sealed ? last : { spawned: 0, live: 0, sealed: false };
  if (target !== last) shards.push(target);
  target.spawned++;
  target.live++;
  target.sealed = target.spawned >= SHARD_CAPACITY;
  return { shards };
}

/** One connection of the oldest shard that has one ends; a sealed shard left empty retires. */
function endOne(context: SupervisorModelContext): SupervisorModelContext {
  const index = context.shards.findIndex((shard) => shard.live > 0);
  const shards = context.shards.map((shard, i) => (i === index ? { ...shard, live: shard.live - 1 } : shard));
  return { ...context, shards: shards.filter((shard) => !(shard.sealed && shard.live === 0)) };
}

/** After a restart: every live connection, in sealed shards of at most SHARD_CAPACITY. */
function restore(context: SupervisorModelContext): SupervisorModelContext {
  const shards: ShardModel[] = [];
  for (let left = live(context); left > 0; left -= SHARD_CAPACITY) {
    const n = Math.min(SHARD_CAPACITY, left);
    shards.push({ spawned: n, live: n, sealed: true });
  }
  return { ...context, shards };
}

export const supervisorModel = setup({
  types: {
    context: {} as SupervisorModelContext,
    events: {} as SupervisorModelEvent,
  },
  guards: {
    canConnect: ({ context }) => live(context) < MAX_LIVE,
    hasLive: ({ context }) => live(context) > 0,
  },
}).createMachine({
  id: 'supervisorModel',
  initial: 'starting',
  context: { shards: [] },
  states: {
    starting: {
      on: {
        // Only here: a restore that completes after a drain is not modelled. The server builds its
        // supervisor when the restore completes and sends it READY even if it was told to drain
        // meanwhile (the supervisor then runs while the server drains), which this model would flag.
        READY: { target: 'running' },
        DRAIN: { target: 'draining' },
        // Not accepting yet: the connection is refused and nothing is spawned.
        CONNECT: { target: 'starting' },
      },
    },
    running: {
      on: {
        CONNECT: { guard: 'canConnect', target: 'running', actions: assign(({ context }) => connect(context)) },
        END: { guard: 'hasLive', target: 'running', actions: assign(({ context }) => endOne(context)) },
        DRAIN: { target: 'draining' },
        RESTART: { target: 'starting', actions: assign(({ context }) => restore(context)) },
      },
    },
    draining: {
      on: {
        STOP: { target: 'stopped' },
        CONNECT: { target: 'draining' },
        RESTART: { target: 'starting', actions: assign(({ context }) => restore(context)) },
      },
    },
    stopped: { type: 'final' },
  },
});

export type SupervisorModelSnapshot = SnapshotFrom<typeof supervisorModel>;
export type SupervisorModelPath = TestPath<SupervisorModelSnapshot, SupervisorModelEvent>;

const enabled = (state: SupervisorModelSnapshot, event: SupervisorModelEvent) =>
  state.status === 'active' && state.can(event);

export const supervisorTestModel = createTestModel(supervisorModel, {
  events: supervisorModelEventTypes.map((type) => ({ type })),
  filterEvents: enabled,
  limit: 5_000,
});

/** Shortest paths to every (state, incoming event, previous state): every model transition is taken. */
export function supervisorShortestPaths(): SupervisorModelPath[] {
  return supervisorTestModel.getShortestPaths({ serializeState: byTransition });
}

/**
 * Simple paths to `stopped` without RESTART (each is a server restart; shortest paths cover it),
 * at most `maxEvents` long, at most `limit` of them spread over all that qualify.
 */
export function supervisorSimplePaths(bounds: { maxEvents: number; limit: number }) {
  const all = supervisorTestModel
    .getSimplePaths({
      serializeState: bySnapshot,
      filterEvents: (state, event) => event.type !== 'RESTART' && enabled(state, event),
      toState: (state) => state.status === 'done',
    })
    .filter((path) => path.steps.length - 1 <= bounds.maxEvents);
  return { paths: spread(all, bounds.limit), total: all.length };
}

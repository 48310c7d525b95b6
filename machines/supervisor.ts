import { assign, sendTo, setup, stopChild, type ActorRefFrom, type DoneActorEvent, type Snapshot } from 'xstate';
import type { ConnectionInput } from './connection.js';
import { shardMachine } from './shard.js';

export interface SupervisorInput {
  /** Connections per shard (see `shard.ts`). */
  shardCapacity: number;
}

export interface SupervisorContext {
  shardCapacity: number;
  shardSeq: number;
  openShard: ActorRefFrom<typeof shardMachine> | null;
  openShardSpawned: number;
}

export type SupervisorEvent =
  /** The store's state has been restored: start accepting connections. */
  | { type: 'READY' }
  | { type: 'CONNECT'; input: ConnectionInput }
  /** SIGTERM: stop accepting, let the server flush. */
  | { type: 'DRAIN' }
  | { type: 'STOP' }
  | DoneActorEvent<unknown, string>;

export const supervisorStates = ['starting', 'running', 'draining', 'stopped'] as const;
export type SupervisorState = (typeof supervisorStates)[number];

/**
 * The root of every connection actor: `starting` (restoring) → `running` → `draining` → `stopped`.
 * Connections are spawned by string `src` into shards (so they persist and restore), and every
 * connection reports its transitions through the `report` action the server provides.
 */
export const supervisorMachine = setup({
  types: {
    context: {} as SupervisorContext,
    events: {} as SupervisorEvent,
    input: {} as SupervisorInput,
  },
  actors: { shard: shardMachine },
}).createMachine({
  id: 'supervisor',
  context: ({ input }) => ({
    shardCapacity: input.shardCapacity,
    shardSeq: 0,
    openShard: null,
    openShardSpawned: 0,
  }),
  initial: 'starting',
  on: {
    // A shard retires once it is sealed and empty.
    'xstate.done.actor.*': { actions: stopChild(({ event }) => event.actorId) },
  },
  states: {
    starting: {
      on: { READY: 'running', DRAIN: 'draining' },
    },
    running: {
      on: {
        CONNECT: {
          actions: [
            assign(({ context, spawn }) => {
              if (context.openShard && context.openShardSpawned < context.shardCapacity) {
                return { openShardSpawned: context.openShardSpawned + 1 };
              }
              const id = `shard-${context.shardSeq}`;
              const openShard = spawn('shard', { id, input: { capacity: context.shardCapacity } });
              return { openShard, shardSeq: context.shardSeq + 1, openShardSpawned: 1 };
            }),
            sendTo(
              ({ context }) => context.openShard ?? '',
              ({ event }) => ({ type: 'SPAWN' as const, input: event.input }),
            ),
          ],
        },
        DRAIN: 'draining',
      },
    },
    draining: {
      on: { STOP: 'stopped' },
    },
    stopped: { type: 'final' },
  },
});

export type SupervisorMachine = typeof supervisorMachine;

/**
 * The persisted snapshot of a supervisor that owns `count` restored connections, and the shard and
 * slot (see `slotId`) of each one (by index). Connections are persisted one by one (persisting the supervisor whole
 * would serialise every child on each write), so a restart assembles the tree here and XState
 * restores it: the supervisor in `starting`, sealed shards of at most `shardCapacity` connections
 * that count them in `live` but hold no actors yet. The server sends a shard `WAKE` with a
 * connection's snapshot when something happens to that connection (see `shard.ts`).
 */
export function restoredSupervisorSnapshot(
  count: number,
  shardCapacity: number,
): { snapshot: Snapshot<unknown>; placeOf: (index: number) => { shard: string; slot: number } } {
  const placeOf = (index: number) => ({
    shard: `shard-${Math.floor(index / shardCapacity)}`,
    slot: index % shardCapacity,
  });
  const shardSeq = Math.ceil(count / shardCapacity);
  const children: Record<string, unknown> = {};
  for (let seq = 0; seq < shardSeq; seq++) {
    const live = Math.min(shardCapacity, count - seq * shardCapacity);
    children[`shard-${seq}`] = {
      src: 'shard',
      snapshot: {
        status: 'active',
        value: 'sealed',
        historyValue: {},
        context: { capacity: shardCapacity, spawned: live, live },
        children: {},
      },
    };
  }
  const snapshot = {
    status: 'active' as const,
    output: undefined,
    error: undefined,
    value: 'starting',
    historyValue: {},
    context: { shardCapacity, shardSeq, openShard: null, openShardSpawned: 0 },
    children,
  };
  return { snapshot, placeOf };
}

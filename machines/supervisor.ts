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
 * The persisted snapshot of a supervisor that owns these connections, built from each connection's
 * own persisted snapshot. Connections are persisted one by one (persisting the supervisor whole would
 * serialise every child on each write), so a restart assembles the tree here and XState restores it:
 * sealed shards of at most `shardCapacity` connections, supervisor in `starting`. Entry actions do not
 * run on restore and delayed events are not restored; the server sends each connection `RESTORED`.
 */
export function restoredSupervisorSnapshot(
  connections: { connectionId: string; snapshot: unknown }[],
  shardCapacity: number,
): Snapshot<unknown> {
  const children: Record<string, unknown> = {};
  let shardSeq = 0;
  for (let start = 0; start < connections.length; start += shardCapacity) {
    const chunk = connections.slice(start, start + shardCapacity);
    children[`shard-${shardSeq++}`] = {
      src: 'shard',
      snapshot: {
        status: 'active',
        value: 'sealed',
        historyValue: {},
        context: { capacity: shardCapacity, spawned: chunk.length, live: chunk.length },
        children: Object.fromEntries(
          chunk.map((c) => [c.connectionId, { src: 'connection', systemId: c.connectionId, snapshot: c.snapshot }]),
        ),
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
  return snapshot;
}

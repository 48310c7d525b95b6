import { assign, setup, stopChild, type DoneActorEvent } from 'xstate';
import { connectionMachine, type ConnectionInput, type ConnectionOutput } from './connection.js';

export interface ShardInput {
  /** How many connections this shard spawns in its lifetime before it is sealed. */
  capacity: number;
}

export interface ShardContext {
  capacity: number;
  spawned: number;
  live: number;
}

export type ShardEvent = { type: 'SPAWN'; input: ConnectionInput } | DoneActorEvent<ConnectionOutput, string>;

/**
 * A shard holds a bounded number of connection actors. XState copies a parent's `children` on every
 * spawn, so one flat parent makes connecting O(n) and a million connects quadratic (NOTES.md: 20k
 * children took 77 s). A shard accepts `capacity` spawns, is then sealed, and retires (final) when its
 * last connection ends; the supervisor opens a new one as each fills. Every spawn therefore copies at
 * most `capacity` entries, whatever the number of connections.
 */
export const shardMachine = setup({
  types: {
    context: {} as ShardContext,
    events: {} as ShardEvent,
    input: {} as ShardInput,
  },
  actors: { connection: connectionMachine },
  guards: {
    full: ({ context }) => context.spawned >= context.capacity,
    empty: ({ context }) => context.live === 0,
  },
}).createMachine({
  id: 'shard',
  context: ({ input }) => ({ capacity: input.capacity, spawned: 0, live: 0 }),
  initial: 'open',
  on: {
    // A connection reached `expired`: stop it, or it stays in `children` with status 'done' (a leak).
    'xstate.done.actor.*': {
      actions: [stopChild(({ event }) => event.actorId), assign({ live: ({ context }) => context.live - 1 })],
    },
  },
  states: {
    open: {
      always: { guard: 'full', target: 'sealed' },
      on: {
        SPAWN: {
          actions: assign(({ context, event, spawn }) => {
            const { connectionId } = event.input;
            spawn('connection', { id: connectionId, systemId: connectionId, input: event.input });
            return { spawned: context.spawned + 1, live: context.live + 1 };
          }),
        },
      },
    },
    sealed: {
      always: { guard: 'empty', target: 'retired' },
    },
    retired: { type: 'final' },
  },
});

export type ShardMachine = typeof shardMachine;

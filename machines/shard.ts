import { assign, setup, stopChild, type DoneActorEvent } from 'xstate';
import {
  connectionMachine,
  wakeable,
  type ConnectionInput,
  type ConnectionOutput,
  type PersistedConnection,
  type WakeInput,
} from './connection.js';

export interface ShardInput {
  /** How many connections this shard spawns in its lifetime before it is sealed. */
  capacity: number;
}

export interface ShardContext {
  capacity: number;
  spawned: number;
  /** Connections that have not ended, including restored ones still waiting for `WAKE`. */
  live: number;
}

export type ShardEvent =
  | { type: 'SPAWN'; input: ConnectionInput }
  /** A restored connection of this shard gets its actor, started from its snapshot, in its `slot`. */
  | { type: 'WAKE'; connectionId: string; slot: number; snapshot: PersistedConnection }
  | DoneActorEvent<ConnectionOutput, string>;

/**
 * The child id of the `slot`-th connection a shard holds (its systemId is its connection id). The
 * same few ids in every shard: XState copies `children` on every spawn and stop, and V8 copies an
 * object whose keys it has seen in that shape before far faster than one with new keys (64 UUID keys:
 * ~80 µs per copy; 64 slot keys: ~10 µs), so connection ids as child ids made every connect and end
 * pay for a fresh hidden-class chain.
 */
export const slotId = (slot: number) => `slot-${slot}`;

/**
 * A shard holds a bounded number of connection actors. XState copies a parent's `children` on every
 * spawn, so one flat parent makes connecting O(n) and a million connects quadratic (measured: 20k
 * children took 77 s). A shard accepts `capacity` spawns, is then sealed, and retires (final) when its
 * last connection ends; the supervisor opens a new one as each fills. Every spawn therefore copies at
 * most `capacity` entries, whatever the number of connections.
 *
 * After a restart the supervisor is restored with sealed shards that count their connections in
 * `live` but hold no actors: restoring 50,000 actors took seconds, and most restored connections
 * either resume or expire long after. The server sends `WAKE` when something happens to one.
 */
export const shardMachine = setup({
  types: {
    context: {} as ShardContext,
    events: {} as ShardEvent,
    input: {} as ShardInput,
  },
  actors: { connection: wakeable(connectionMachine) },
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
            spawn('connection', { id: slotId(context.spawned), systemId: connectionId, input: event.input });
            return { spawned: context.spawned + 1, live: context.live + 1 };
          }),
        },
      },
    },
    sealed: {
      always: { guard: 'empty', target: 'retired' },
      on: {
        WAKE: {
          actions: assign(({ event, spawn }) => {
            const { connectionId, slot, snapshot } = event;
            // The logic is `wakeable`: this input starts the actor from the snapshot (its own input type
            // is a new connection's, which a woken one never uses).
            const input = { snapshot } satisfies WakeInput as unknown as ConnectionInput;
            spawn('connection', { id: slotId(slot), systemId: connectionId, input });
            return {};
          }),
        },
      },
    },
    retired: { type: 'final' },
  },
});

export type ShardMachine = typeof shardMachine;

import { and, assign, setup, type SnapshotFrom } from 'xstate';
import { createTestModel, type TestPath } from 'xstate/graph';
import type { EndReason } from '../../machines/connection.js';
import { bySnapshot, byTransition, spread } from './paths.js';

/**
 * The abstract model of one connection, written for testing: what a client, an admin and the clock
 * can do to it, and where each leads. No `after`, no `invoke` (`createTestModel` refuses both): time
 * passing is an explicit event (`SILENCE`, `GRACE_ELAPSED`) whose executor advances the clock or
 * waits for the server. Its states are the real machine's (`connected`, `inGame`, `stale`,
 * `expired`); its context is only what the guards need to pick a target and the tests need to check.
 */

/** The two games a path can visit: `JOIN` goes to A, `MOVE` to the other one. */
export type AbstractGame = 'A' | 'B';

export interface ConnectionModelContext {
  game: AbstractGame | null;
  /** Whether the client's socket is attached (a call needs one; `RESUME` needs it gone). */
  socket: boolean;
  /** Why it ended, once `expired`. */
  reason: EndReason | null;
}

export const connectionModelEventTypes = [
  /** `session.heartbeat` (any call is activity). */
  'HEARTBEAT',
  /** `game.join` of game A. */
  'JOIN',
  /** `game.join` of the other game while in one. */
  'MOVE',
  /** `game.leave`. */
  'LEAVE_GAME',
  /** The socket is lost without `session.leave`. */
  'SOCKET_DROP',
  /** A new socket presents the resume token. */
  'RESUME',
  /** No call for `staleMs`: the connection goes stale by itself. */
  'SILENCE',
  /** The grace period runs out: the connection expires by itself. */
  'GRACE_ELAPSED',
  /** `admin.kick`. */
  'KICK',
  /** Another connection of the same user under `userPolicy: 'replace'`. */
  'REPLACE',
  /** `session.leave`. */
  'LEAVE',
  /** The server process restarts (with a persistent store): back `stale`, without a socket, in its game. */
  'RESTART',
] as const;
export type ConnectionModelEventType = (typeof connectionModelEventTypes)[number];
export type ConnectionModelEvent = { type: ConnectionModelEventType };

const other = (game: AbstractGame | null): AbstractGame => (game === 'A' ? 'B' : 'A');

export const connectionModel = setup({
  types: {
    context: {} as ConnectionModelContext,
    events: {} as ConnectionModelEvent,
  },
  actions: {
    end: assign((_, params: { reason: EndReason }) => ({ game: null, socket: false, reason: params.reason })),
  },
  guards: {
    socket: ({ context }) => context.socket,
    noSocket: ({ context }) => !context.socket,
    inGame: ({ context }) => context.game !== null,
  },
}).createMachine({
  id: 'connectionModel',
  initial: 'connected',
  context: { game: null, socket: true, reason: null },
  on: {
    KICK: { target: '.expired', actions: { type: 'end', params: { reason: 'kicked' } } },
    REPLACE: { target: '.expired', actions: { type: 'end', params: { reason: 'replaced' } } },
    // A call: only over an attached socket.
    LEAVE: { guard: 'socket', target: '.expired', actions: { type: 'end', params: { reason: 'left' } } },
    RESTART: { target: '.stale', actions: assign({ socket: false }) },
  },
  states: {
    connected: {
      on: {
        HEARTBEAT: { target: 'connected' },
        JOIN: { target: 'inGame', actions: assign({ game: 'A' }) },
        LEAVE_GAME: { target: 'connected' },
        SOCKET_DROP: { target: 'stale', actions: assign({ socket: false }) },
        SILENCE: { target: 'stale' },
      },
    },
    inGame: {
      on: {
        HEARTBEAT: { target: 'inGame' },
        // In A already: nothing changes; in B: a move to A.
        JOIN: { target: 'inGame', actions: assign({ game: 'A' }) },
        MOVE: { target: 'inGame', actions: assign(({ context }) => ({ game: other(context.game) })) },
        LEAVE_GAME: { target: 'connected', actions: assign({ game: null }) },
        SOCKET_DROP: { target: 'stale', actions: assign({ socket: false }) },
        SILENCE: { target: 'stale' },
      },
    },
    stale: {
      on: {
        // Calls need the socket that is still attached (stale by silence); they bring it back.
        HEARTBEAT: [
          { guard: and(['socket', 'inGame']), target: 'inGame' },
          { guard: 'socket', target: 'connected' },
        ],
        JOIN: { guard: 'socket', target: 'inGame', actions: assign({ game: 'A' }) },
        MOVE: {
          guard: and(['socket', 'inGame']),
          target: 'inGame',
          actions: assign(({ context }) => ({ game: other(context.game) })),
        },
        LEAVE_GAME: { guard: 'socket', target: 'connected', actions: assign({ game: null }) },
        SOCKET_DROP: { guard: 'socket', target: 'stale', actions: assign({ socket: false }) },
        RESUME: [
          { guard: and(['noSocket', 'inGame']), target: 'inGame', actions: assign({ socket: true }) },
          { guard: 'noSocket', target: 'connected', actions: assign({ socket: true }) },
        ],
        GRACE_ELAPSED: { target: 'expired', actions: { type: 'end', params: { reason: 'expired' } } },
      },
    },
    expired: { type: 'final' },
  },
});

export type ConnectionModelSnapshot = SnapshotFrom<typeof connectionModel>;
export type ConnectionModelPath = TestPath<ConnectionModelSnapshot, ConnectionModelEvent>;
export type ConnectionModelValue = ConnectionModelSnapshot['value'];

const allEvents: ConnectionModelEvent[] = connectionModelEventTypes.map((type) => ({ type }));

/**
 * Every event the model offers is one it takes: events whose guards fail are left out, or a path
 * could "take" them and reach a duplicate of the state it was in.
 */
const enabled = (state: ConnectionModelSnapshot, event: ConnectionModelEvent) =>
  state.status === 'active' && state.can(event);

export const connectionTestModel = createTestModel(connectionModel, {
  events: allEvents,
  filterEvents: enabled,
  // Guards the traversal: the abstract state space is small and must stay so.
  limit: 2_000,
});

/**
 * Shortest paths to every (state, incoming event, previous state) of the model: every model
 * transition is the last step of one. Paths that are a prefix of another are dropped
 * (`allowDuplicatePaths: false`).
 */
export function connectionShortestPaths(): ConnectionModelPath[] {
  return connectionTestModel.getShortestPaths({ serializeState: byTransition });
}

export interface SimplePathBounds {
  /** Longest path, in events. */
  maxEvents: number;
  /** How many paths at most (an even spread over the generated ones, in generation order). */
  limit: number;
}

/**
 * Simple paths (no snapshot twice) to every final state, without `RESTART` (each costs a server
 * restart; shortest paths cover it), at most `maxEvents` long, and at most `limit` of them, spread
 * evenly over all that qualify so the sample keeps the variety of the full set.
 */
export function connectionSimplePaths(bounds: SimplePathBounds): {
  paths: ConnectionModelPath[];
  /** How many simple paths qualified before the limit was applied. */
  total: number;
} {
  const all = connectionTestModel
    .getSimplePaths({
      serializeState: bySnapshot,
      filterEvents: (state, event) => event.type !== 'RESTART' && enabled(state, event),
      toState: (state) => state.status === 'done',
    })
    .filter((path) => path.steps.length - 1 <= bounds.maxEvents);
  return { paths: spread(all, bounds.limit), total: all.length };
}

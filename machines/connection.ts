import { assign, enqueueActions, setup, type AnyStateMachine, type Snapshot } from 'xstate';
import type { EndReason } from './endReasons.js';
import type { TimerName } from './timers.js';

export { endReasons, type EndReason } from './endReasons.js';

/** The states a user can see, in the order of the lifecycle. */
export const connectionStates = ['connected', 'inGame', 'stale', 'expired'] as const;
export type ConnectionState = (typeof connectionStates)[number];

/** Deadlines of one connection, in milliseconds. Persisted with the context so a restore keeps them. */
export interface ConnectionTiming {
  /** No activity for this long → `stale`. */
  staleMs: number;
  /** `stale` for this long → `expired`. */
  expireMs: number;
  /** The same, for a connection that was in a game. */
  inGameExpireMs: number;
  /** A `warning` goes out this long before `expiresAt`, while a socket is attached. */
  warnMs: number;
}

export interface ConnectionInput {
  connectionId: string;
  userId: string;
  /** The time the connection opened (epoch ms, from the server's clock). */
  at: number;
  timing: ConnectionTiming;
}

/**
 * Everything the machine knows. All times are absolute epoch milliseconds: XState does not restore
 * delayed events from a persisted snapshot (statelyai/xstate#5331), so deadlines live here and the
 * timers are re-armed from them (`RESTORED`).
 */
export interface ConnectionContext {
  connectionId: string;
  userId: string;
  gameId: string | null;
  /** When the connection joined its current game. */
  joinedAt: number | null;
  connectedAt: number;
  lastSeen: number;
  /** `lastSeen + staleMs`. */
  staleAt: number;
  /** When it went stale; `null` while it is not stale. */
  staleSince: number | null;
  /** `staleSince + expireMs` (or `inGameExpireMs`); `null` while it is not stale. */
  expiresAt: number | null;
  /** Whether a socket is attached: a stale connection without one gets no warning. */
  socket: boolean;
  /**
   * The deadline the pending stale timer was armed for. Activity only moves `staleAt`; when the
   * timer fires early relative to the new `staleAt` it is re-armed, so a heartbeat costs no timer work.
   */
  staleTimerAt: number;
  reason: EndReason | null;
  timing: ConnectionTiming;
}

/** Every event carries the time it happened (`at`, epoch ms), stamped by the server's clock. */
export type ConnectionEvent =
  /** Any call from the client, including `session.heartbeat`: it proves the user is there. */
  | { type: 'HEARTBEAT'; at: number }
  | { type: 'JOIN_GAME'; gameId: string; at: number }
  | { type: 'LEAVE_GAME'; at: number }
  | { type: 'SOCKET_CLOSED'; at: number }
  /** A new socket took over this connection with its resume token. */
  | { type: 'RESUME'; at: number }
  | { type: 'END'; reason: Exclude<EndReason, 'expired'>; at: number }
  /** Sent once after a restore from a snapshot: re-arms timers; the socket is gone since `lostAt`. */
  | { type: 'RESTORED'; at: number; lostAt: number }
  /** A timer armed from the context (`armTimer`) has come due; `at` is its deadline. */
  | { type: 'STALE_DUE'; at: number }
  | { type: 'WARNING_DUE'; at: number }
  | { type: 'EXPIRY_DUE'; at: number };

export interface ConnectionOutput {
  reason: EndReason;
}

/** What the machine tells the server when it enters a state; `context` is the new context. */
export interface ConnectionReport {
  state: ConnectionState;
}

export interface ConnectionWarning {
  type: 'warning';
  expiresAt: number;
}

/** One pending stale timer at a time, armed for the current `staleAt` (arming replaces it). */
const restartStaleTimer = [
  'noteStaleTimer',
  {
    type: 'armTimer',
    params: ({ context }: { context: ConnectionContext }) => ({ name: 'stale' as const, at: context.staleAt }),
  },
] as const;
const clearStaleTimer = { type: 'clearTimer', params: { name: 'stale' } } as const;

function expiryOf(context: ConnectionContext, staleSince: number): number {
  const { expireMs, inGameExpireMs } = context.timing;
  return staleSince + (context.gameId === null ? expireMs : inGameExpireMs);
}

/** The context of a new connection. */
export function initialContext(input: ConnectionInput): ConnectionContext {
  const staleAt = input.at + input.timing.staleMs;
  return {
    connectionId: input.connectionId,
    userId: input.userId,
    gameId: null,
    joinedAt: null,
    connectedAt: input.at,
    lastSeen: input.at,
    staleAt,
    staleSince: null,
    expiresAt: null,
    socket: true,
    staleTimerAt: staleAt,
    reason: null,
    timing: input.timing,
  };
}

/**
 * The context of a connection brought back after a restart: its socket is gone since `lostAt` (or
 * since it went stale, if that was earlier, so a restart never extends a grace period), and it
 * expires on its original deadline. What `RESTORED` assigns, and what a restored connection that has
 * not taken `RESTORED` yet reports (src/connections/restore.ts).
 */
export function restoredContext(context: ConnectionContext, lostAt: number): ConnectionContext {
  const staleSince = context.staleSince ?? Math.min(lostAt, context.staleAt);
  return { ...context, socket: false, staleSince, expiresAt: expiryOf(context, staleSince) };
}

/** `getPersistedSnapshot()` of a live connection actor, as the store keeps it. */
export interface PersistedConnection {
  status: 'active';
  value: Exclude<ConnectionState, 'expired'>;
  historyValue: Record<string, never>;
  context: ConnectionContext;
  children: Record<string, never>;
}

/**
 * The snapshot a persisted connection has once it has taken `RESTORED` with this `lostAt`: `stale`,
 * with `restoredContext`. Starting an actor from it and sending `RESTORED` gives the same snapshot
 * again (the event only re-arms the timers, which are not part of a snapshot).
 */
export function restoredSnapshot(persisted: PersistedConnection, lostAt: number): PersistedConnection {
  return { ...persisted, value: 'stale', context: restoredContext(persisted.context, lostAt) };
}

/** What a connection actor is spawned with when it starts from a snapshot instead of fresh. */
export interface WakeInput {
  snapshot: PersistedConnection;
}

/**
 * `logic`, except that spawning it with a `WakeInput` starts the actor from that snapshot. XState's
 * `spawn` takes an input but no snapshot, and a restored connection is spawned into its shard only
 * when something happens to it (src/connections/runner.ts, `wake`).
 */
export function wakeable<T extends AnyStateMachine>(logic: T): T {
  return Object.create(logic, {
    getInitialSnapshot: {
      value: (scope: Parameters<T['getInitialSnapshot']>[0], input: unknown): Snapshot<unknown> =>
        isWakeInput(input)
          ? logic.restoreSnapshot({ ...input.snapshot, output: undefined, error: undefined }, scope)
          : logic.getInitialSnapshot(scope, input),
    },
  }) as T;
}

function isWakeInput(input: unknown): input is WakeInput {
  return typeof input === 'object' && input !== null && 'snapshot' in input;
}

export const connectionMachine = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as ConnectionInput,
    output: {} as ConnectionOutput,
  },
  actions: {
    /**
     * Timers, bound by the server to its clock (machines/timers.ts): a timer armed for `at` sends
     * `STALE_DUE` / `EXPIRY_DUE` / `WARNING_DUE` with that `at`; arming a name replaces its timer.
     */
    armTimer: (_, _params: { name: TimerName; at: number }) => {},
    clearTimer: (_, _params: { name: TimerName }) => {},
    clearTimers: () => {},
    /** A state was entered: bound by the server to presence and the store. */
    report: (_, _params: ConnectionReport) => {},
    /** The context changed without a change of state (activity): bound to the store's write-behind. */
    persist: () => {},
    /** A message for the client's `session.events`. */
    warn: (_, _params: ConnectionWarning) => {},
    touch: assign(({ context, event }) => {
      const at = 'at' in event ? event.at : context.lastSeen;
      return { lastSeen: at, staleAt: at + context.timing.staleMs };
    }),
    noteStaleTimer: assign(({ context }) => ({ staleTimerAt: context.staleAt })),
    clearStaleness: assign({ staleSince: null, expiresAt: null }),
  },
  guards: {
    silentUntilDeadline: ({ context }) => context.staleAt <= context.staleTimerAt,
    inGame: ({ context }) => context.gameId !== null,
    sameGame: ({ context, event }) => event.type === 'JOIN_GAME' && event.gameId === context.gameId,
    socketAttached: ({ context }) => context.socket,
  },
}).createMachine({
  id: 'connection',
  context: ({ input }) => initialContext(input),
  initial: 'connected',
  output: ({ context }) => ({ reason: context.reason ?? 'expired' }),
  on: {
    HEARTBEAT: { actions: ['touch', 'persist'] },
    SOCKET_CLOSED: {
      target: '.stale',
      actions: assign(({ event }) => ({ socket: false, staleSince: event.at })),
    },
    END: {
      target: '.expired',
      actions: assign(({ event }) => ({ reason: event.reason })),
    },
    STALE_DUE: [
      {
        guard: 'silentUntilDeadline',
        target: '.stale',
        actions: assign(({ context }) => ({ staleSince: context.staleAt })),
      },
      // Activity moved the deadline since the timer was armed: arm it again for the new one.
      { actions: [...restartStaleTimer] },
    ],
    RESTORED: {
      target: '.stale',
      actions: assign(({ context, event }) => restoredContext(context, event.lostAt)),
    },
    RESUME: { actions: ['touch', assign({ socket: true }), 'persist'] },
  },
  states: {
    connected: {
      entry: ['clearStaleness', ...restartStaleTimer, { type: 'report', params: { state: 'connected' } }],
      on: {
        JOIN_GAME: {
          target: 'inGame',
          actions: ['touch', assign(({ event }) => ({ gameId: event.gameId, joinedAt: event.at }))],
        },
        LEAVE_GAME: { actions: ['touch', 'persist'] },
      },
    },
    inGame: {
      entry: ['clearStaleness', ...restartStaleTimer, { type: 'report', params: { state: 'inGame' } }],
      on: {
        JOIN_GAME: [
          { guard: 'sameGame', actions: ['touch', 'persist'] },
          {
            // Moving to another game: re-entering reports the new game; the old one sees `moved`.
            target: 'inGame',
            reenter: true,
            actions: ['touch', assign(({ event }) => ({ gameId: event.gameId, joinedAt: event.at }))],
          },
        ],
        LEAVE_GAME: {
          target: 'connected',
          actions: ['touch', assign({ gameId: null, joinedAt: null })],
        },
      },
    },
    stale: {
      entry: [
        clearStaleTimer,
        assign(({ context }) => {
          const staleSince = context.staleSince ?? context.staleAt;
          const expiresAt = expiryOf(context, staleSince);
          return { staleSince, expiresAt };
        }),
        { type: 'report', params: { state: 'stale' } },
        // The expiry, and the warning only while a socket is there to receive it.
        enqueueActions(({ context, enqueue }) => {
          const expiresAt = context.expiresAt ?? 0;
          enqueue({ type: 'armTimer', params: { name: 'expiry', at: expiresAt } });
          if (context.socket) {
            enqueue({ type: 'armTimer', params: { name: 'warning', at: expiresAt - context.timing.warnMs } });
          }
        }),
      ],
      exit: [
        { type: 'clearTimer', params: { name: 'expiry' } },
        { type: 'clearTimer', params: { name: 'warning' } },
      ],
      on: {
        HEARTBEAT: [
          { guard: 'inGame', target: 'inGame', actions: 'touch' },
          { target: 'connected', actions: 'touch' },
        ],
        RESUME: [
          { guard: 'inGame', target: 'inGame', actions: ['touch', assign({ socket: true })] },
          { target: 'connected', actions: ['touch', assign({ socket: true })] },
        ],
        JOIN_GAME: {
          target: 'inGame',
          actions: [
            'touch',
            assign(({ context, event }) => ({
              gameId: event.gameId,
              joinedAt: event.gameId === context.gameId ? context.joinedAt : event.at,
            })),
          ],
        },
        LEAVE_GAME: {
          target: 'connected',
          actions: ['touch', assign({ gameId: null, joinedAt: null })],
        },
        SOCKET_CLOSED: {
          actions: [assign({ socket: false }), { type: 'clearTimer', params: { name: 'warning' } }, 'persist'],
        },
        STALE_DUE: {},
        RESTORED: { target: 'stale', reenter: true, actions: assign({ socket: false }) },
        WARNING_DUE: {
          guard: 'socketAttached',
          actions: {
            type: 'warn',
            params: ({ context }) => ({ type: 'warning' as const, expiresAt: context.expiresAt ?? 0 }),
          },
        },
        EXPIRY_DUE: {
          target: 'expired',
          actions: assign({ reason: 'expired' as const }),
        },
      },
    },
    expired: {
      type: 'final',
      entry: ['clearTimers', { type: 'report', params: { state: 'expired' } }],
    },
  },
});

export type ConnectionMachine = typeof connectionMachine;

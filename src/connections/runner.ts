import { createActor, type ActorScope, type ExecutableActionObject } from 'xstate';
import {
  connectionMachine,
  connectionStates,
  type ConnectionState,
  type ConnectionEvent,
  type ConnectionInput,
  type ConnectionMachine,
  type PersistedConnection,
} from '../../machines/connection.js';
import type { TimerFired, TimerName } from '../../machines/timers.js';
import type { Clock } from '../clock.js';
import {
  TimerKey,
  type Connection,
  type ConnectionActor,
  type ConnectionSnapshot,
  type HeldSnapshot,
} from './connection.js';
import type { ConnectionEffects } from './effects.js';
import { DeadlineScheduler } from './scheduler.js';

/** The scheduler's key for a restored connection's first event (`RESTORED`), after the timers'. */
const WAKE_KEY = 3;
/** The empty `historyValue` and `children` every held snapshot shares. */
const EMPTY: Record<string, never> = Object.freeze({});
/** The machine's timers by `TimerKey`, and the event each sends when it comes due. */
const timerNames = ['stale', 'expiry', 'warning'] as const satisfies TimerName[];
const fired = {
  stale: 'STALE_DUE',
  expiry: 'EXPIRY_DUE',
  warning: 'WARNING_DUE',
} as const satisfies Record<TimerName, TimerFired['type']>;

export interface MachineRunnerOptions {
  clock: Clock;
  effects: ConnectionEffects;
  /**
   * Spawns a new connection's actor in the supervisor's open shard, or `null` when connections step
   * their own snapshots (no live actors).
   */
  actors: {
    spawn: (input: ConnectionInput) => ConnectionActor;
    /** A restored connection's actor, started from `snapshot` in the place the restore gave it. */
    wake: (connectionId: string, snapshot: PersistedConnection) => ConnectionActor;
  } | null;
}

function timerOf(connection: Connection, key: number): number {
  return key === TimerKey.stale
    ? connection.staleTimer
    : key === TimerKey.expiry
      ? connection.expiryTimer
      : connection.warningTimer;
}

function setTimer(connection: Connection, name: TimerName, at: number): void {
  if (name === 'stale') connection.staleTimer = at;
  else if (name === 'expiry') connection.expiryTimer = at;
  else connection.warningTimer = at;
}

/**
 * Runs the connection machine for every connection: delivers each event, executes the machine's
 * actions against the connection they are for, keeps its timers. A connection without an actor is
 * stepped with `machine.transition(snapshot, event, scope)`, the pure step an actor makes inside
 * `send` without its mailbox, observers and system registries; with inspection on every connection
 * runs as an actor in the supervisor's shards (the inspector shows actors). The machine decides
 * every transition either way.
 */
export class MachineRunner {
  /** The machine with this server's implementations (what the shards spawn). */
  readonly logic: ConnectionMachine;
  private readonly scheduler: DeadlineScheduler<Connection>;
  /** An actor that never starts: the `self` a pure step's actions see (XState's own pure `transition` makes one per call). */
  private readonly inert = createActor(connectionMachine, {
    input: { connectionId: '', userId: '', at: 0, timing: { staleMs: 0, expireMs: 0, inGameExpireMs: 0, warnMs: 0 } },
  });
  /**
   * The connection whose event is being processed: the bound actions act for it. Both a pure step
   * and an actor's `send` run the machine's actions synchronously, before they return.
   */
  private delivering: Connection | null = null;
  private sleeping = 0;
  private readonly templates = new Map<ConnectionState, ConnectionSnapshot>();
  private pureScope: ActorScope<ConnectionSnapshot, ConnectionEvent> | null = null;

  constructor(private readonly options: MachineRunnerOptions) {
    const { effects } = options;
    // An actor runs its first state's actions as it starts, inside the spawn, before `spawn` returns
    // it: the first action for a connection without one yet gives it its actor (`self`).
    const target = (self: ConnectionActor) => {
      const connection = this.delivering;
      if (connection && options.actors && !connection.actor && !connection.restored) connection.actor = self;
      return connection;
    };
    this.logic = connectionMachine.provide({
      actions: {
        report: ({ context, self }, { state }) => this.on(target(self), (c) => effects.entered(c, context, state)),
        persist: ({ context, self }) => this.on(target(self), (c) => effects.persisted(c, context)),
        warn: ({ self }, notice) => this.on(target(self), (c) => effects.warn(c, notice)),
        armTimer: ({ self }, { name, at }) => this.on(target(self), (c) => this.arm(c, name, at)),
        clearTimer: ({ self }, { name }) => this.on(target(self), (c) => setTimer(c, name, 0)),
        clearTimers: ({ self }) => this.on(target(self), (c) => this.clearTimers(c)),
      },
    });
    this.scheduler = new DeadlineScheduler<Connection>({
      clock: options.clock,
      current: (c, key, at) => (key === WAKE_KEY ? c.restored !== null : timerOf(c, key) === at),
      fire: (c, key, at) => {
        if (key === WAKE_KEY) return this.wake(c);
        const name = timerNames[key];
        if (!name) return;
        setTimer(c, name, 0);
        this.deliver(c, { type: fired[name], at });
      },
      report: (error, where) => effects.logError(error, where),
    });
  }

  /** Restored connections that have not taken `RESTORED` yet. */
  get asleep(): number {
    return this.sleeping;
  }

  /** Starts a new connection's machine: its initial state's actions run (its first `report`). */
  start(connection: Connection, input: ConnectionInput): void {
    const { actors } = this.options;
    if (actors) {
      connection.actor = this.with(connection, () => actors.spawn(input));
      return;
    }
    // The first state's actions run once the connection has its snapshot: they read it (presence
    // asks for `lastSeen` at once).
    const actions: ExecutableActionObject[] = [];
    const scope = { ...this.scope(), actionExecutor: (action: ExecutableActionObject) => void actions.push(action) };
    connection.machine = this.hold(this.logic.getInitialSnapshot(scope, input));
    this.with(connection, () => {
      for (const action of actions) action.exec?.(action.info, action.params);
    });
  }

  /**
   * A restored connection, `stale` with its deadlines kept in `connection.restored`: it takes
   * `RESTORED` when the first event comes for it (`deliver`) or at its deadline, whichever is first.
   */
  sleep(connection: Connection, wakeAt: number): void {
    this.sleeping++;
    this.scheduler.arm(connection, WAKE_KEY, wakeAt);
  }

  /** Processes one event for `connection`, waking it first if it was restored and nothing happened since. */
  deliver(connection: Connection, event: ConnectionEvent): void {
    if (connection.restored) this.wake(connection);
    const actor = connection.actor;
    if (actor) return this.with(connection, () => actor.send(event));
    const snapshot = connection.machine;
    if (!snapshot) throw new Error(`connection ${connection.connectionId} has no machine`);
    const next = this.with(connection, () => this.logic.transition(this.expand(snapshot), event, this.scope()));
    connection.machine = this.hold(next);
  }

  /**
   * Gives a restored connection its running machine and re-arms its timers: `RESTORED` (an expiry
   * already due fires at once, through the machine).
   */
  wake(connection: Connection): void {
    const restored = connection.restored;
    if (!restored) return;
    const { actors } = this.options;
    if (actors) connection.actor = this.with(connection, () => actors.wake(connection.connectionId, restored));
    else connection.machine = restored;
    connection.restored = null;
    this.sleeping--;
    const at = this.options.clock.now();
    this.deliver(connection, { type: 'RESTORED', at, lostAt: restored.context.staleSince ?? at });
  }

  dispose(): void {
    this.scheduler.dispose();
    this.sleeping = 0;
  }

  /**
   * The full snapshot a step needs, from a held one: the state's template (its state nodes, tags and
   * methods, the same for every connection in that state; XState never mutates a snapshot) with
   * this connection's context.
   */
  private expand(held: HeldSnapshot): ConnectionSnapshot {
    let template = this.templates.get(held.value);
    if (!template) {
      template = this.logic.resolveState({ value: held.value, context: held.context });
      this.templates.set(held.value, template);
    }
    return { ...template, context: held.context };
  }

  private hold(snapshot: ConnectionSnapshot): HeldSnapshot {
    const value = connectionStates.find((state) => state === snapshot.value);
    if (!value) throw new Error(`not a connection state: ${JSON.stringify(snapshot.value)}`);
    return { status: 'active', value, historyValue: EMPTY, context: snapshot.context, children: EMPTY };
  }

  private arm(connection: Connection, name: TimerName, at: number): void {
    setTimer(connection, name, at);
    this.scheduler.arm(connection, TimerKey[name], at);
  }

  private clearTimers(connection: Connection): void {
    connection.staleTimer = 0;
    connection.expiryTimer = 0;
    connection.warningTimer = 0;
  }

  private on(connection: Connection | null, effect: (connection: Connection) => void): void {
    if (connection) this.options.effects.safely('connection effect', () => effect(connection));
  }

  private with<T>(connection: Connection, run: () => T): T {
    const outer = this.delivering;
    this.delivering = connection;
    try {
      return run();
    } finally {
      this.delivering = outer;
    }
  }

  /**
   * The scope of a pure step: the machine's actions run at once, as in an actor's `send`, with the
   * implementations `logic` binds (they act for `delivering`, which `deliver` sets).
   */
  private scope(): ActorScope<ConnectionSnapshot, ConnectionEvent> {
    const inert = this.inert;
    return (this.pureScope ??= {
      self: inert,
      id: '',
      sessionId: '',
      system: inert.system,
      logger: () => {},
      defer: (fn) => fn(),
      emit: () => {},
      stopChild: () => {},
      actionExecutor: (action) => action.exec?.(action.info, action.params),
    });
  }
}

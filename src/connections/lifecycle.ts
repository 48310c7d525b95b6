import { createActor, type InspectionEvent, type Observer } from 'xstate';
import { wakeable, type ConnectionInput, type PersistedConnection } from '../../machines/connection.js';
import { shardMachine } from '../../machines/shard.js';
import { restoredSupervisorSnapshot, supervisorMachine } from '../../machines/supervisor.js';
import type { Clock } from '../clock.js';
import { PresenceError } from '../errors.js';
import type { ConnectionActor } from './connection.js';
import type { ConnectionMachine } from '../../machines/connection.js';
import type { SupervisorActor } from './types.js';

export interface SupervisorOptions {
  clock: Clock;
  shardCapacity: number;
  inspect?: Observer<InspectionEvent> | undefined;
  report: (error: unknown, where: string) => void;
}

/**
 * The supervisor actor: `starting` (restoring) → `running` → `draining` → `stopped`, and, when
 * connections run as actors, the shards that hold them. It is created by `start`, once the store's
 * state is restored; a SIGTERM before that makes it start straight into `draining`.
 */
export class Supervisor {
  actor: SupervisorActor | null = null;
  private draining = false;
  /** Where each restored connection's actor goes when it wakes (actors only): its shard and slot. */
  private readonly places = new Map<string, { shard: string; slot: number }>();

  constructor(private readonly options: SupervisorOptions) {}

  /** Starts the supervisor; with `restored` connections that will run as actors, their sealed shards. */
  start(connectionLogic: ConnectionMachine, restored: { ids: string[]; actors: boolean }): void {
    const { clock, shardCapacity, inspect } = this.options;
    const logic = supervisorMachine.provide({
      actors: { shard: shardMachine.provide({ actors: { connection: wakeable(connectionLogic) } }) },
    });
    const layout =
      restored.actors && restored.ids.length > 0
        ? restoredSupervisorSnapshot(restored.ids.length, shardCapacity)
        : undefined;
    if (layout) restored.ids.forEach((id, index) => this.places.set(id, layout.placeOf(index)));
    const root = createActor(logic, {
      clock,
      input: { shardCapacity },
      ...(layout ? { snapshot: layout.snapshot } : {}),
      ...(inspect ? { inspect } : {}),
    });
    this.actor = root;
    root.subscribe({ error: (error) => this.options.report(error, 'supervisor') });
    root.start();
    root.send({ type: this.draining ? 'DRAIN' : 'READY' });
  }

  /** Refuses unless the supervisor is `running`. */
  running(): SupervisorActor {
    const root = this.actor;
    if (!root?.getSnapshot().matches('running')) {
      throw new PresenceError('UNAVAILABLE', 'the server is not accepting connections');
    }
    return root;
  }

  /** A new connection's actor, spawned into the open shard. */
  spawn(input: ConnectionInput): ConnectionActor {
    const root = this.running();
    root.send({ type: 'CONNECT', input });
    const actor = root.system.get(input.connectionId) as ConnectionActor | undefined;
    if (!actor) throw new PresenceError('UNAVAILABLE', 'the connection actor could not be started');
    return actor;
  }

  /** A restored connection's actor, spawned from its snapshot into the slot the restore gave it. */
  wake(connectionId: string, snapshot: PersistedConnection): ConnectionActor {
    const place = this.places.get(connectionId) ?? { shard: '', slot: 0 };
    this.places.delete(connectionId);
    const root = this.actor;
    root?.getSnapshot().children[place.shard]?.send({ type: 'WAKE', connectionId, slot: place.slot, snapshot });
    const actor = root?.system.get(connectionId) as ConnectionActor | undefined;
    if (!actor) throw new PresenceError('UNAVAILABLE', 'the connection actor could not be restored');
    return actor;
  }

  drain(): void {
    this.draining = true;
    this.actor?.send({ type: 'DRAIN' });
  }

  stop(): void {
    this.places.clear();
    this.actor?.send({ type: 'STOP' });
    this.actor?.stop();
  }
}

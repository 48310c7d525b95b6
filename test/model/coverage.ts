import type { AnyActorRef, AnyStateMachine, InspectionEvent, Observer } from 'xstate';
import { graphOf } from '../../src/tools/machineGraph.js';

/** A transition as `graphOf` (src/tools/machineGraph.ts) draws it: source state, event, target state, guard. */
export interface TransitionKey {
  from: string;
  event: string;
  to: string;
  guard: string | null;
}

export const keyOf = (edge: TransitionKey) =>
  `${edge.from} --${edge.event}${edge.guard ? ` [${edge.guard}]` : ''}--> ${edge.to}`;

/** Every state and every transition of a machine, as `graphOf` walks them. */
export function expectedCoverage(machine: AnyStateMachine) {
  const graph = graphOf(machine);
  return {
    states: [...new Set(graph.states)].sort(),
    transitions: [...new Set(graph.edges.map(keyOf))].sort(),
  };
}

function guardName(guard: unknown): string | null {
  if (!guard) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard && typeof guard.type === 'string') return guard.type;
  return 'guard';
}

/** The parts of a transition definition the recorder reads (XState's `TransitionDefinition`). */
interface TakenTransition {
  eventType: string;
  guard?: unknown;
  source: { key: string; parent?: unknown };
  target?: readonly { key: string }[] | undefined;
}

/** The top-level state of a flat machine's state value. */
const topState = (value: unknown): string => (typeof value === 'string' ? value : (Object.keys(value ?? {})[0] ?? ''));

/**
 * Records the transitions real actors take, from XState's inspection stream (`inspect` on a root
 * actor sees every actor of its system): each `@xstate.microstep` names the transitions it took, so
 * a targetless handler (a heartbeat while connected, the `sameGame` join) is never mistaken for the
 * transition to the same state that `graphOf` draws. Timer events (`STALE_DUE`, `EXPIRY_DUE`) and
 * `RESTORED` are recorded like any other event: they count when they fire.
 */
export class TransitionRecorder {
  /** Per machine id (`connection`, `supervisor`, `shard`): states entered and transitions taken. */
  readonly states = new Map<string, Set<string>>();
  readonly transitions = new Map<string, Set<string>>();
  /** The state each actor was in after its last microstep of the current macrostep. */
  private readonly current = new Map<AnyActorRef | object, string>();

  private add(map: Map<string, Set<string>>, machineId: string, key: string) {
    let set = map.get(machineId);
    if (!set) map.set(machineId, (set = new Set()));
    set.add(key);
  }

  /** Pass as `createActor(logic, { inspect: recorder.inspect })`. */
  readonly inspect: Observer<InspectionEvent> = {
    next: (event: InspectionEvent) => {
      const actor = event.actorRef;
      if (event.type === '@xstate.snapshot') {
        // The macrostep is over: the next one starts from the actor's snapshot again.
        this.current.delete(actor);
        const snapshot = event.snapshot as { machine?: { id: string }; value?: unknown };
        if (snapshot.machine && snapshot.value !== undefined) {
          this.add(this.states, snapshot.machine.id, topState(snapshot.value));
        }
        return;
      }
      if (event.type !== '@xstate.microstep') return;
      const snapshot = event.snapshot as { machine?: { id: string }; value?: unknown };
      if (!snapshot.machine) return;
      const machineId = snapshot.machine.id;
      // Before the first microstep of a macrostep the actor still holds the previous snapshot.
      const before =
        this.current.get(actor) ?? topState((actor.getSnapshot() as { value?: unknown } | undefined)?.value);
      for (const transition of event._transitions as TakenTransition[]) {
        // A transition declared on the root applies in whichever state the actor was in.
        const from = transition.source.parent === undefined ? before : transition.source.key;
        for (const target of transition.target ?? []) {
          this.add(
            this.transitions,
            machineId,
            keyOf({
              from,
              // Eventless (`always`) transitions have the empty event type; graphOf names them `always`.
              event: transition.eventType === '' ? 'always' : transition.eventType,
              to: target.key,
              guard: guardName(transition.guard),
            }),
          );
        }
      }
      const after = topState(snapshot.value);
      this.current.set(actor, after);
      this.add(this.states, machineId, after);
    },
  };

  /** What `machine` has that was not observed. */
  missing(machine: AnyStateMachine) {
    const expected = expectedCoverage(machine);
    const states = this.states.get(machine.id) ?? new Set<string>();
    const transitions = this.transitions.get(machine.id) ?? new Set<string>();
    return {
      states: expected.states.filter((state) => !states.has(state)),
      transitions: expected.transitions.filter((transition) => !transitions.has(transition)),
      /** Observed but not in the graph: the recorder and graphOf disagree on a name. */
      unknown: [...transitions].filter((transition) => !expected.transitions.includes(transition)),
    };
  }
}

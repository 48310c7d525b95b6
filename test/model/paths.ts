import type { EventObject, Snapshot } from 'xstate';

/** The events of a path, without the initial `xstate.init` step. */
export function eventsOf(path: { steps: { event: { type: string } }[] }): string[] {
  return path.steps.map((step) => step.event.type).filter((type) => type !== 'xstate.init');
}

/** A test name: the events in order. */
export function describePath(path: { steps: { event: { type: string } }[] }): string {
  const events = eventsOf(path);
  return events.length > 0 ? events.join(' → ') : '(initial)';
}

/** At most `limit` items, evenly spread over `items`, in order. */
export function spread<T>(items: T[], limit: number): T[] {
  if (items.length <= limit) return items;
  const out: T[] = [];
  for (let i = 0; i < limit; i++) {
    const item = items[Math.floor((i * items.length) / limit)];
    if (item !== undefined) out.push(item);
  }
  return out;
}

type ModelSnapshot = Snapshot<unknown> & { value: unknown; context: unknown };

/** A snapshot as a graph vertex: its state and context. */
export const bySnapshot = (state: ModelSnapshot) => JSON.stringify({ value: state.value, context: state.context });

/**
 * A vertex per (snapshot, the event that led there, the state it came from): shortest paths to every
 * vertex then end with every transition of the model, self-loops included (a heartbeat while
 * connected, a join of the game it is in, a connection refused while starting).
 */
export const byTransition = (state: ModelSnapshot, event: EventObject | undefined, previous?: ModelSnapshot) =>
  bySnapshot(state) + (event && previous ? ` via ${event.type} from ${JSON.stringify(previous.value)}` : '');

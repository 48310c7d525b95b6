import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { connectionMachine } from '../../machines/connection.js';
import { shardMachine } from '../../machines/shard.js';
import { supervisorMachine } from '../../machines/supervisor.js';

/** Every machine presenced runs, by name. */
export const machines = {
  connection: connectionMachine,
  supervisor: supervisorMachine,
  shard: shardMachine,
} as const satisfies Record<string, AnyStateMachine>;

export type MachineName = keyof typeof machines;

export interface Edge {
  from: string;
  to: string;
  event: string;
  guard: string | null;
}

function guardName(guard: unknown): string | null {
  if (!guard) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard && typeof guard.type === 'string') return guard.type;
  return 'guard';
}

function edgesOf(
  node: AnyStateNode,
  from: string,
  inherited: Map<string, AnyStateNode['transitions'] extends Map<string, infer T> ? T : never>,
): Edge[] {
  const edges: Edge[] = [];
  // A parent's transitions apply to each child state that does not handle the event itself.
  const transitions = new Map(inherited);
  for (const [event, list] of node.transitions) transitions.set(event, list);
  for (const [event, list] of transitions) {
    for (const transition of list) {
      for (const target of transition.target ?? []) {
        edges.push({ from, to: target.key, event, guard: guardName(transition.guard) });
      }
    }
  }
  for (const transition of node.always ?? []) {
    for (const target of transition.target ?? []) {
      edges.push({ from, to: target.key, event: 'always', guard: guardName(transition.guard) });
    }
  }
  return edges;
}

/** The states and transitions between them (root-level transitions drawn from every non-final state). */
export function graphOf(machine: AnyStateMachine): {
  initial: string;
  states: string[];
  finals: string[];
  edges: Edge[];
} {
  const root = machine.root;
  const states = Object.keys(root.states);
  const edges: Edge[] = [];
  for (const [key, node] of Object.entries(root.states)) {
    if (node.type === 'final') continue;
    edges.push(...edgesOf(node, key, root.transitions));
  }
  return {
    initial: root.initial.target[0]?.key ?? states[0] ?? '',
    states,
    finals: states.filter((key) => root.states[key]?.type === 'final'),
    edges,
  };
}

/** A Mermaid `stateDiagram-v2`. Self-transitions without a change of state are left out. */
export function toMermaid(machine: AnyStateMachine): string {
  const graph = graphOf(machine);
  const lines = ['stateDiagram-v2', `  [*] --> ${graph.initial}`];
  const seen = new Set<string>();
  for (const edge of graph.edges) {
    if (edge.from === edge.to) continue;
    const label = edge.guard ? `${edge.event} [${edge.guard}]` : edge.event;
    const line = `  ${edge.from} --> ${edge.to} : ${label}`;
    if (seen.has(line)) continue;
    seen.add(line);
    lines.push(line);
  }
  for (const final of graph.finals) lines.push(`  ${final} --> [*]`);
  return lines.join('\n');
}

export function exportMachines(format: 'json' | 'mermaid'): string {
  if (format === 'json') {
    return JSON.stringify(Object.fromEntries(Object.entries(machines).map(([name, m]) => [name, m.toJSON()])), null, 2);
  }
  return Object.entries(machines)
    .map(([name, machine]) => `%% ${name}\n${toMermaid(machine)}`)
    .join('\n\n');
}

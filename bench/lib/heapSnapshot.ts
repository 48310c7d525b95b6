import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * What a set of new objects retains, from two V8 heap snapshots of one process (before and after
 * opening connections): every object of the second that the first did not have (object ids are
 * stable within a process) is charged, by its self size, to the nearest of its dominators that says
 * what it belongs to — a named constructor or closure, or else the container (a Map, Set or object
 * of the first snapshot) it was added to, named by the property that holds that container.
 */

/** Where bench/lib/heapSnapshotOnSignal.ts writes a child's n-th snapshot. */
export const heapSnapshotPath = (pid: number, n: number) => join(tmpdir(), `presenced-bench-${pid}-${n}.heapsnapshot`);

interface Snapshot {
  names: string[];
  types: string[];
  ids: Int32Array | Float64Array;
  selfSizes: Float64Array;
  /** Forward edges in CSR form: edges of node n are firstEdge[n] … firstEdge[n + 1] − 1. */
  firstEdge: Int32Array;
  edgeTo: Int32Array;
  edgeName: string[];
  edgeWeak: Uint8Array;
}

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; edge_fields: string[]; node_types: [string[]]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

function load(file: string): Snapshot {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as RawSnapshot;
  const {
    node_fields: nodeFields,
    edge_fields: edgeFields,
    node_types: nodeTypes,
    edge_types: edgeTypes,
  } = raw.snapshot.meta;
  const nf = nodeFields.length;
  const ef = edgeFields.length;
  const count = raw.nodes.length / nf;
  const at = (fields: string[], name: string) => fields.indexOf(name);
  const [iType, iName, iId, iSelf, iEdges] = ['type', 'name', 'id', 'self_size', 'edge_count'].map((f) =>
    at(nodeFields, f),
  );
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map((f) => at(edgeFields, f));
  const names: string[] = new Array<string>(count);
  const types: string[] = new Array<string>(count);
  const ids = new Float64Array(count);
  const selfSizes = new Float64Array(count);
  const firstEdge = new Int32Array(count + 1);
  for (let n = 0; n < count; n++) {
    const base = n * nf;
    types[n] = nodeTypes[0][raw.nodes[base + (iType ?? 0)] ?? 0] ?? '?';
    names[n] = raw.strings[raw.nodes[base + (iName ?? 0)] ?? 0] ?? '';
    ids[n] = raw.nodes[base + (iId ?? 0)] ?? 0;
    selfSizes[n] = raw.nodes[base + (iSelf ?? 0)] ?? 0;
    firstEdge[n + 1] = (firstEdge[n] ?? 0) + (raw.nodes[base + (iEdges ?? 0)] ?? 0);
  }
  const edgeCount = raw.edges.length / ef;
  const edgeTo = new Int32Array(edgeCount);
  const edgeName: string[] = new Array<string>(edgeCount);
  const edgeWeak = new Uint8Array(edgeCount);
  for (let e = 0; e < edgeCount; e++) {
    const base = e * ef;
    const type = edgeTypes[0][raw.edges[base + (eType ?? 0)] ?? 0] ?? '';
    const nameOrIndex = raw.edges[base + (eName ?? 0)] ?? 0;
    edgeTo[e] = (raw.edges[base + (eTo ?? 0)] ?? 0) / nf;
    edgeName[e] = type === 'element' || type === 'hidden' ? `[${nameOrIndex}]` : (raw.strings[nameOrIndex] ?? '');
    edgeWeak[e] = type === 'weak' || type === 'shortcut' ? 1 : 0;
  }
  return { names, types, ids, selfSizes, firstEdge, edgeTo, edgeName, edgeWeak };
}

/** Immediate dominators from node 0 (Cooper, Harvey and Kennedy's iterative algorithm). */
function dominators(s: Snapshot): { idom: Int32Array; parentEdge: Int32Array } {
  const count = s.names.length;
  const order = new Int32Array(count).fill(-1);
  const postorder: number[] = [];
  const parentEdge = new Int32Array(count).fill(-1);
  const stack: number[] = [0];
  const next = new Int32Array(count);
  order[0] = 0;
  next[0] = s.firstEdge[0] ?? 0;
  while (stack.length) {
    const n = stack[stack.length - 1] ?? 0;
    const e = next[n] ?? 0;
    if (e < (s.firstEdge[n + 1] ?? 0)) {
      next[n] = e + 1;
      const to = s.edgeTo[e] ?? 0;
      if (s.edgeWeak[e] || order[to] !== -1) continue;
      order[to] = 0;
      parentEdge[to] = e;
      next[to] = s.firstEdge[to] ?? 0;
      stack.push(to);
    } else {
      stack.pop();
      order[n] = postorder.length;
      postorder.push(n);
    }
  }
  const preds: number[][] = Array.from({ length: count }, () => []);
  for (let n = 0; n < count; n++) {
    if (order[n] === -1) continue;
    for (let e = s.firstEdge[n] ?? 0; e < (s.firstEdge[n + 1] ?? 0); e++) {
      const to = s.edgeTo[e] ?? 0;
      if (!s.edgeWeak[e] && order[to] !== -1) preds[to]?.push(n);
    }
  }
  const idom = new Int32Array(count).fill(-1);
  idom[0] = 0;
  const intersect = (a: number, b: number) => {
    while (a !== b) {
      while ((order[a] ?? 0) < (order[b] ?? 0)) a = idom[a] ?? 0;
      while ((order[b] ?? 0) < (order[a] ?? 0)) b = idom[b] ?? 0;
    }
    return a;
  };
  for (let changed = true; changed;) {
    changed = false;
    for (let i = postorder.length - 1; i >= 0; i--) {
      const n = postorder[i] ?? 0;
      if (n === 0) continue;
      let dom = -1;
      for (const p of preds[n] ?? []) {
        if (idom[p] === -1) continue;
        dom = dom === -1 ? p : intersect(p, dom);
      }
      if (dom !== -1 && idom[n] !== dom) {
        idom[n] = dom;
        changed = true;
      }
    }
  }
  return { idom, parentEdge };
}

const CONTAINERS = new Set(['Map', 'Set', 'Object', 'Array', 'WeakMap', 'system / Context']);

/**
 * Bytes per new object (divided by `perUnit`, e.g. connections), by owner: `name` for objects
 * dominated by an instance of a named constructor or closure, `container .property` for those
 * dominated by a container that existed before, and `(shared)` for what only the roots dominate.
 */
export function heapGrowthByOwner(beforeFile: string, afterFile: string, perUnit: number): Map<string, number> {
  const before = load(beforeFile);
  const known = new Set<number>(before.ids);
  const after = load(afterFile);
  const { idom, parentEdge } = dominators(after);
  const ownerCache = new Map<number, string>();
  const edgesOf = (n: number) => {
    const out: number[] = [];
    for (let e = after.firstEdge[n] ?? 0; e < (after.firstEdge[n + 1] ?? 0); e++) out.push(e);
    return out;
  };
  /** The variables a closure scope holds (its named edges, V8's internal ones left out). */
  const variables = (n: number) =>
    edgesOf(n)
      .map((e) => after.edgeName[e] ?? '')
      .filter(
        (name) => name && !name.startsWith('[') && !['map', 'scope_info', 'previous', 'extension'].includes(name),
      );
  const edgeTarget = (n: number, name: string) => {
    const e = edgesOf(n).find((edge) => after.edgeName[edge] === name);
    return e === undefined ? undefined : after.edgeTo[e];
  };
  /** Where a closure's code comes from: a package, a file of presenced, or Node. */
  const originOf = (closure: number) => {
    const shared = edgeTarget(closure, 'shared');
    const script = shared === undefined ? undefined : edgeTarget(shared, 'script_or_debug_info');
    const url = script === undefined ? '' : (after.names[script] ?? '');
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
    if (pkg) return pkg;
    const own = /\/((?:src|machines|bench)\/.+)$/.exec(url)?.[1];
    return own ?? (url.startsWith('node:') ? url : 'node');
  };
  const label = (n: number): string | undefined => {
    const type = after.types[n];
    const name = after.names[n] ?? '';
    const isNew = !known.has(after.ids[n] ?? -1);
    if (type === 'closure' && isNew) return `closure ${name || '(anonymous)'} [${originOf(n)}]`;
    if (isNew && name === 'system / Context') return `scope of ${variables(n).slice(0, 3).join(', ')}`;
    if (isNew && type === 'object' && name === 'Timeout') {
      const callback = edgeTarget(n, '_onTimeout');
      return `Timeout [${callback === undefined ? '?' : originOf(callback)}]`;
    }
    if (type === 'object' && isNew && !CONTAINERS.has(name) && !name.startsWith('system /')) return name;
    if (!isNew && type === 'object') {
      const via = parentEdge[n] ?? -1;
      return `${CONTAINERS.has(name) ? name : name || '(object)'} .${via >= 0 ? after.edgeName[via] : '?'}`;
    }
    return undefined;
  };
  const ownerOf = (n: number): string => {
    const path: number[] = [];
    let owner: string | undefined;
    for (let cur = idom[n] ?? 0; ; cur = idom[cur] ?? 0) {
      const cached = ownerCache.get(cur);
      if (cached !== undefined) {
        owner = cached;
        break;
      }
      path.push(cur);
      if (cur === 0) {
        owner = '(shared)';
        break;
      }
      owner = label(cur);
      if (owner !== undefined) break;
    }
    for (const p of path) ownerCache.set(p, owner);
    return owner;
  };
  const totals = new Map<string, number>();
  for (let n = 1; n < after.names.length; n++) {
    if (known.has(after.ids[n] ?? -1) || idom[n] === -1) continue;
    const own = label(n);
    const owner = own && after.types[n] === 'object' ? own : ownerOf(n);
    totals.set(owner, (totals.get(owner) ?? 0) + (after.selfSizes[n] ?? 0) / perUnit);
  }
  return totals;
}

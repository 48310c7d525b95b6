import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * What a set of new objects retains, from two V8 heap snapshots of one process (before and after
 * opening connections; object ids are stable within a process).
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
function dominators(s: Snapshot): { idom: Int32Array } {
  const count = s.names.length;
  const order = new Int32Array(count).fill(-1);
  const postorder: number[] = [];
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
  return { idom };
}

/**
 * The parts of a server an idle connection's heap is charged to, kept in one place: by the source of
 * the owning closure or class (its script's URL, which the snapshot gives), so that moving files
 * inside a folder does not change the grouping; by constructor name where the snapshot has no script
 * (native handles).
 */
export const PARTS: { part: string; url?: RegExp; constructors?: string[] }[] = [
  { part: 'ws: WebSocket, receiver, sender', url: /\/node_modules\/ws\// },
  {
    part: 'net.Socket: streams, libuv handle',
    url: /^node:(net|stream|internal\/streams)/,
    constructors: ['TCP', 'TCPSocketWrap', 'WriteWrap', 'ShutdownWrap'],
  },
  {
    part: 'tRPC / wire: per-socket handler, context, rate limiter',
    url: /\/node_modules\/@trpc\/|\/src\/(wire|router)\//,
  },
  { part: 'connection actor (XState)', url: /\/node_modules\/xstate\/|\/machines\// },
  { part: 'connections: handle and its indexes', url: /\/src\/connections\// },
  { part: 'presence index', url: /\/src\/presence\// },
  { part: 'store', url: /\/src\/store\// },
];
export const SHARED = 'strings and values shared by several parts';
export const OTHER = 'other';

/**
 * Bytes per new object (divided by `perUnit`, e.g. connections), by part: each object of the second
 * snapshot that the first did not have is charged, by its own size, to the nearest dominator (itself
 * included) whose closure or class comes from a part's source; what only the roots dominate is shared.
 */
export function heapGrowthByPart(beforeFile: string, afterFile: string, perUnit: number): Map<string, number> {
  const known = new Set<number>(load(beforeFile).ids);
  const after = load(afterFile);
  const { idom } = dominators(after);
  const edgeTarget = (n: number, name: string) => {
    for (let e = after.firstEdge[n] ?? 0; e < (after.firstEdge[n + 1] ?? 0); e++)
      if (after.edgeName[e] === name) return after.edgeTo[e];
    return undefined;
  };
  const scriptOf = (closure: number | undefined) => {
    const shared = closure === undefined ? undefined : edgeTarget(closure, 'shared');
    const script = shared === undefined ? undefined : edgeTarget(shared, 'script_or_debug_info');
    return script === undefined ? '' : (after.names[script] ?? '');
  };
  const partOfUrl = (url: string) => (url ? PARTS.find((entry) => entry.url?.test(url))?.part : undefined);
  /**
   * A class instance belongs to the part of its most basic class that has one (a subclass of ws's
   * WebSocket is ws); a plain object, to the part of the first method it holds (what a factory
   * returns); a timer, to its callback's.
   */
  const partOf = (n: number): string | undefined => {
    const type = after.types[n];
    const name = after.names[n] ?? '';
    if (type === 'closure') return partOfUrl(scriptOf(n));
    if (type === 'object' && name === 'Timeout') return partOfUrl(scriptOf(edgeTarget(n, '_onTimeout')));
    if (type !== 'object' && type !== 'native') return undefined;
    let part = PARTS.find((entry) => entry.constructors?.includes(name))?.part;
    for (let proto = edgeTarget(n, '__proto__'), depth = 0; proto !== undefined && depth < 8; depth++) {
      part = partOfUrl(scriptOf(edgeTarget(proto, 'constructor'))) ?? part;
      proto = edgeTarget(proto, '__proto__');
    }
    if (part !== undefined || name !== 'Object') return part;
    for (let e = after.firstEdge[n] ?? 0; e < (after.firstEdge[n + 1] ?? 0) && part === undefined; e++) {
      const to = after.edgeTo[e] ?? 0;
      if (after.types[to] === 'closure') part = partOfUrl(scriptOf(to));
    }
    return part;
  };
  const cache = new Map<number, string>();
  const ownerOf = (n: number): string => {
    const path: number[] = [];
    let owner: string | undefined;
    for (let cur = n; owner === undefined; cur = idom[cur] ?? 0) {
      owner = cache.get(cur) ?? (cur === 0 ? SHARED : partOf(cur));
      path.push(cur);
    }
    for (const p of path) cache.set(p, owner);
    return owner;
  };
  const totals = new Map<string, number>();
  for (let n = 1; n < after.names.length; n++) {
    if (known.has(after.ids[n] ?? -1) || idom[n] === -1) continue;
    const owner = ownerOf(n);
    totals.set(owner, (totals.get(owner) ?? 0) + (after.selfSizes[n] ?? 0) / perUnit);
  }
  return totals;
}

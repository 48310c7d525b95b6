import type { CombinedDataTransformer } from '@trpc/server';
import superjson, { type SuperJSONResult } from 'superjson';
import { PresenceError } from './errors.js';

/**
 * The router's transformer: superjson, with inputs read defensively (below). Outputs are plain
 * superjson; the wire may write some of them itself, byte for byte as this would.
 */

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The annotations an input of ours can carry: `undefined` (the typed client's `mutate()` without
 * input) and `number` (NaN and ±Infinity, which the schemas then refuse). Our inputs are flat
 * objects of strings and numbers: no Dates, Maps, Sets, BigInts, RegExps or classes. superjson
 * rebuilds whatever its annotations name before any schema or rate limit sees the call, and some
 * cost far more than the frame: a 1 MB `bigint` about 150 ms of CPU, a 100,000-entry `map` about
 * 200 ms, both before the socket had even authenticated.
 */
const ALLOWED_ANNOTATIONS: ReadonlySet<string> = new Set(['undefined', 'number']);

/** More annotated values than any input of ours has (a few fields): superjson walks each. */
const MAX_ANNOTATION_NODES = 64;

/**
 * Whether `tree` is a superjson annotation tree of allowed types, within `budget.nodes` nodes:
 * `[type]`, or `{ key: tree }`. superjson walks any other value as if it were a tree: a string where
 * a tree belongs (`"meta":{"values":"x"}`) made it recurse on the string's characters until the
 * stack overflowed, about 10 ms of CPU for a 40-byte frame.
 */
function isAnnotationTree(tree: unknown, budget: { nodes: number }): boolean {
  if (--budget.nodes < 0 || typeof tree !== 'object' || tree === null) return false;
  if (!Array.isArray(tree)) {
    // for…in stops at the first bad child: no array of a huge tree's values is ever built.
    for (const key in tree) if (!isAnnotationTree((tree as Record<string, unknown>)[key], budget)) return false;
    return true;
  }
  const [type] = tree as unknown[];
  return tree.length === 1 && typeof type === 'string' && ALLOWED_ANNOTATIONS.has(type);
}

/**
 * Whether superjson can be trusted to walk `envelope.meta`: only `values` (see above) and the
 * version; `referentialEqualities` (which rebuilds shared references, and cycles, along paths the
 * client chooses) has no use for our inputs.
 */
function hasReadableMeta(envelope: object): boolean {
  const meta: unknown = 'meta' in envelope ? envelope.meta : undefined;
  if (meta === undefined) return true;
  if (!isRecord(meta)) return false;
  if (Object.keys(meta).some((key) => key !== 'values' && key !== 'v')) return false;
  return meta['values'] === undefined || isAnnotationTree(meta['values'], { nodes: MAX_ANNOTATION_NODES });
}

/** superjson, except that an input is refused before superjson walks what it should not. */
export const transformer: CombinedDataTransformer = {
  input: {
    serialize: (value: unknown) => superjson.serialize(value),
    deserialize(value: unknown): unknown {
      // A call frame without `params.input` is a call without input, which the procedure's schema
      // accepts or refuses with a clear BAD_REQUEST: superjson would throw a TypeError on it
      // (destructuring `json` of undefined). Anything else that is not an envelope is not a message.
      if (value === undefined) return undefined;
      // What superjson cannot read in an object throws too; the wire answers either with PARSE_ERROR.
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new PresenceError('BAD_REQUEST', 'params.input must be a superjson envelope');
      if (!hasReadableMeta(value))
        throw new PresenceError('BAD_REQUEST', 'params.input.meta is not an annotation an input can carry');
      return superjson.deserialize(value as SuperJSONResult);
    },
  },
  output: {
    serialize: (value: unknown) => superjson.serialize(value),
    deserialize: (value: unknown): unknown => superjson.deserialize(value as SuperJSONResult),
  },
};

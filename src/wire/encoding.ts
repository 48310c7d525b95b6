import type { CombinedDataTransformer } from '@trpc/server';
import { jsonEncoder, type Encoder } from '@trpc/server/adapters/ws';
import superjson, { type SuperJSONResult } from 'superjson';
import { PresenceError } from '../errors.js';

/**
 * One presence event goes to every subscriber of its game as the same object, and tRPC serialised
 * it once per subscriber: with 200 members, superjson walked the same event 200 times per join and
 * JSON.stringify wrote it 200 times (superjson was a quarter of the server's time in the fan-out
 * profile, bench/results/peers-fixes.md). Here an object marked `shareable` is serialised once: the
 * transformer hands every subscriber the same superjson result, and the encoder writes its JSON text
 * once and splices it into each subscriber's frame, which differs only by the subscription id. The
 * bytes are those tRPC's own transformer and encoder write (a test compares them).
 */

const shared = new WeakSet<object>();

/** Marks `value` (immutable from now on) to be serialised once however many subscribers get it. */
export function shareable<T extends object>(value: T): T {
  shared.add(value);
  return value;
}

/**
 * The tracked envelopes serialised last, by the shared object they carry. Every subscriber of a
 * game gets an event within the same turn of the event loop, so a few entries are enough; a replay
 * long after serialises again. Bounded, so nothing is kept for events that are long gone.
 */
const recent = new Map<object, { id: string; result: SuperJSONResult }>();
const RECENT_ENTRIES = 64;
/** The JSON text of each shared result, written once. */
const texts = new WeakMap<object, string>();

/** What tRPC serialises for a `tracked(id, data)` event: `{ id, data }`. */
function sharedEnvelope(value: unknown): { id: string; data: object } | null {
  if (typeof value !== 'object' || value === null) return null;
  const { id, data } = value as { id?: unknown; data?: unknown };
  if (typeof id !== 'string' || typeof data !== 'object' || data === null || !shared.has(data)) return null;
  return Object.keys(value).length === 2 ? { id, data } : null;
}

/** The superjson result of `{ id, data }` for a shareable `data`: computed once per event. */
function serializeShared(id: string, data: object, value: unknown): SuperJSONResult {
  const hit = recent.get(data);
  if (hit?.id === id) return hit.result;
  const result = superjson.serialize(value);
  texts.set(result, JSON.stringify(result));
  recent.delete(data);
  recent.set(data, { id, result });
  if (recent.size > RECENT_ENTRIES) recent.delete(recent.keys().next().value as object);
  return result;
}

/**
 * The subscription request a raw input came with, for a subscription that writes its later events
 * itself (`subscriptionFrame`): tRPC tells a procedure its input, not the request's id. The encoder
 * notes it on the input of every single `subscription` message it decodes; the input transformer
 * carries the note over to what superjson makes of that input, which is what a middleware's
 * `getRawInput()` returns.
 */
export interface SubscriptionRequest {
  id: number | string;
  jsonrpc: '2.0' | undefined;
}
const requests = new WeakMap<object, SubscriptionRequest>();

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The request of a subscription whose raw input this is, if the encoder saw it come in. */
export function requestOf(rawInput: unknown): SubscriptionRequest | undefined {
  return isRecord(rawInput) ? requests.get(rawInput) : undefined;
}

function noteSubscription(message: unknown) {
  if (!isRecord(message) || message['method'] !== 'subscription') return;
  const { id, jsonrpc, params } = message;
  if (typeof id !== 'string' && (typeof id !== 'number' || Number.isNaN(id))) return;
  if (jsonrpc !== undefined && jsonrpc !== '2.0') return;
  if (isRecord(params) && isRecord(params['input'])) requests.set(params['input'], { id, jsonrpc });
}

/**
 * The frame tRPC's loop would send for `tracked(id, data)` of subscription `request`, written
 * directly (`data` must be shareable): `{ id, jsonrpc?, result: { type: 'data', data, id } }`.
 */
export function subscriptionFrame(request: SubscriptionRequest, id: string, data: object): string {
  const text = texts.get(serializeShared(id, data, { id, data })) ?? '';
  const jsonrpc = request.jsonrpc === undefined ? '' : ',"jsonrpc":"2.0"';
  return `{"id":${JSON.stringify(request.id)}${jsonrpc},"result":{"type":"data","data":${text},"id":${JSON.stringify(id)}}}`;
}

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

/** superjson, except that a tracked envelope of a shareable object is serialised once. */
export const sharingTransformer: CombinedDataTransformer = {
  input: {
    serialize: (value: unknown) => superjson.serialize(value),
    deserialize(value: unknown): unknown {
      // A call frame without `params.input` is a call without input, which the procedure's schema
      // accepts or refuses with a clear BAD_REQUEST: superjson would throw a TypeError on it
      // (destructuring `json` of undefined). Anything else that is not an envelope is not a message.
      if (value === undefined) return undefined;
      // What superjson cannot read in an object throws too; tRPC answers either with PARSE_ERROR.
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new PresenceError('BAD_REQUEST', 'params.input must be a superjson envelope');
      if (!hasReadableMeta(value))
        throw new PresenceError('BAD_REQUEST', 'params.input.meta is not an annotation an input can carry');
      const result: unknown = superjson.deserialize(value as SuperJSONResult);
      const request = requestOf(value);
      if (request && isRecord(result)) requests.set(result, request);
      return result;
    },
  },
  output: {
    serialize(value: unknown) {
      const envelope = sharedEnvelope(value);
      return envelope ? serializeShared(envelope.id, envelope.data, value) : superjson.serialize(value);
    },
    deserialize: (value: unknown): unknown => superjson.deserialize(value as SuperJSONResult),
  },
};

/** Stands in for the shared text while the rest of the frame is written; it cannot occur in JSON text we write. */
const PLACEHOLDER = '\u0000presenced:shared\u0000';
const QUOTED_PLACEHOLDER = JSON.stringify(PLACEHOLDER);

interface DataMessage {
  result: { data: unknown };
}

const hasData = (message: unknown): message is DataMessage =>
  typeof message === 'object' &&
  message !== null &&
  typeof (message as { result?: unknown }).result === 'object' &&
  (message as { result: object | null }).result !== null;

/** tRPC's JSON encoder, except that a shared result's text is written once and spliced in. */
export const sharingEncoder: Encoder = {
  encode(message: unknown) {
    const data = hasData(message) ? message.result.data : undefined;
    const text = typeof data === 'object' && data !== null ? texts.get(data) : undefined;
    if (!hasData(message) || text === undefined) return jsonEncoder.encode(message);
    const frame = JSON.stringify({ ...message, result: { ...message.result, data: PLACEHOLDER } });
    // The last occurrence: only the subscription id (written before `result`) comes from the client.
    const at = frame.lastIndexOf(QUOTED_PLACEHOLDER);
    return frame.slice(0, at) + text + frame.slice(at + QUOTED_PLACEHOLDER.length);
  },
  decode(data) {
    const message = jsonEncoder.decode(data);
    noteSubscription(message);
    return message;
  },
};

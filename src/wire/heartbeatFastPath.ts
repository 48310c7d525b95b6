import { WebSocket } from 'ws';
import { input, type HeartbeatResult } from '../protocol.js';
import { heartbeatResult, type Context } from '../services.js';
import { transformer } from '../transformer.js';

/**
 * `session.heartbeat` without tRPC's per-call machinery.
 *
 * Profiled under 200 closed-loop clients, a heartbeat through tRPC cost about 7× a bare `ws` echo in
 * server CPU: a context spread per middleware, an `AbortController` per call, superjson both ways,
 * promise hops (bench/results/peers-fixes.md). Heartbeats are nearly all of a presence server's
 * traffic, so with fast paths on the wire answers them here when, and only when, the procedure would
 * answer them with a result: a well-formed call whose input passes the same schema, from an
 * authenticated socket whose session is live, within the rate limit. Everything else (malformed frames, batches, refused or
 * ended sessions, a spent rate limit) goes on to the procedure, so every error is the procedure's own.
 * The reply is the bytes tRPC would send (a test compares them).
 */

const PATH = 'session.heartbeat';
const PATH_BYTES = Buffer.from(`"${PATH}"`);
/** A heartbeat frame is about 100 bytes; anything much longer is left to the procedure. */
const MAX_FRAME_BYTES = 512;
/** superjson's `meta` for a `HeartbeatResult`: its two Dates, in the order superjson walks them. */
const RESULT_META = JSON.stringify({ values: { serverTime: ['Date'], staleAt: ['Date'] }, v: 1 });

/** The part of a socket the fast path writes to. */
export interface HeartbeatSocket {
  readonly readyState: number;
  send(data: string): void;
}

/** The parts of a heartbeat call that its reply repeats. */
export interface HeartbeatCall {
  id: number | string;
  jsonrpc: '2.0' | undefined;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * The exact texts of a heartbeat call that the typed client (`params.input` first; `mutate()` sends
 * superjson's `undefined`) and plain JSON clients (`params.path` first) write, with an integer id and
 * no `jsonrpc`. Groups: the id, the `clientTime` of either order, and superjson's `undefined`.
 */
const NUMBER = '-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][+-]?\\d+)?';
const JSON_INPUT = `\\{"json":(?:\\{\\}|\\{"clientTime":(${NUMBER})\\})\\}`;
const UNDEFINED_INPUT = '(\\{"json":null,"meta":\\{"values":\\["undefined"\\],"v":1\\}\\})';
const CANONICAL_CALL = new RegExp(
  `^\\{"id":(0|[1-9]\\d{0,14}),"method":"mutation","params":\\{` +
    `(?:"path":"session\\.heartbeat","input":${JSON_INPUT}|"input":(?:${JSON_INPUT}|${UNDEFINED_INPUT}),"path":"session\\.heartbeat")` +
    `\\}\\}$`,
);

/** What JSON.parse, superjson and the schema make of a canonical call; the number grammar is JSON's. */
function canonicalCall([, id, pathFirstTime, inputFirstTime, undefinedInput]: RegExpExecArray): HeartbeatCall | null {
  const time = pathFirstTime ?? inputFirstTime;
  const value = time !== undefined ? { clientTime: Number(time) } : undefinedInput !== undefined ? undefined : {};
  return input.heartbeat.safeParse(value).success ? { id: Number(id), jsonrpc: undefined } : null;
}

/**
 * The call, if `frame` is a single `session.heartbeat` mutation that tRPC would accept and whose input
 * passes `input.heartbeat`; `null` for anything else. It may decline frames tRPC would accept (they
 * take the detour through tRPC and get the same answer) but never accepts one that tRPC, superjson
 * or zod would refuse.
 */
export function parseHeartbeatCall(frame: Buffer): HeartbeatCall | null {
  if (frame.length > MAX_FRAME_BYTES) return null;
  // Nearly every heartbeat is one of the few exact texts clients write: recognising those costs a
  // sixth of JSON.parse, which was the fast path's largest cost in the heartbeat profile. Latin-1,
  // because the pattern is ASCII: any other byte fails it and takes the general way below.
  const canonical = CANONICAL_CALL.exec(frame.toString('latin1'));
  if (canonical) return canonicalCall(canonical);
  if (!frame.includes(PATH_BYTES)) return null;
  let message: unknown;
  try {
    message = JSON.parse(frame.toString('utf8'));
  } catch {
    return null;
  }
  if (!isRecord(message) || message['method'] !== 'mutation') return null;
  const { id, jsonrpc, params } = message;
  if (typeof id !== 'string' && (typeof id !== 'number' || Number.isNaN(id))) return null;
  if (jsonrpc !== undefined && jsonrpc !== '2.0') return null;
  if (!isRecord(params) || params['path'] !== PATH || params['lastEventId'] !== undefined) return null;
  const raw = params['input'];
  if (!isRecord(raw)) return null;
  let value: unknown;
  if (raw['meta'] === undefined) {
    // What superjson.deserialize returns for an envelope without meta (less the copy).
    value = raw['json'];
  } else {
    // The typed client's `mutate()` sends `{ json: null, meta: { values: ['undefined'] } }`. Read
    // through the server's input transformer, as tRPC reads it: it refuses a `meta` that is not an
    // annotation tree before superjson walks it (`{"values":"x"}` made superjson recurse until the
    // stack overflowed, about 7 ms of CPU per 100-byte frame).
    try {
      value = transformer.input.deserialize(raw);
    } catch {
      return null;
    }
  }
  if (!input.heartbeat.safeParse(value).success) return null;
  return { id, jsonrpc };
}

/**
 * `toISOString()` of the last two times asked for. Under load, heartbeats answered in the same
 * millisecond share both their `serverTime` and their `staleAt` (now + staleMs), and formatting a
 * Date was a tenth of the fast path's time.
 */
const isoCache: [number, string][] = [
  [Number.NaN, ''],
  [Number.NaN, ''],
];
function isoOf(date: Date): string {
  const ms = date.getTime();
  for (const entry of isoCache) if (entry[0] === ms) return entry[1];
  const iso = date.toISOString();
  isoCache.pop();
  isoCache.unshift([ms, iso]);
  return iso;
}

/**
 * The reply tRPC sends for `result`: `JSON.stringify({ id, jsonrpc, result: { type: 'data', data } })`
 * where `data` is superjson's `{ json, meta }`, written out directly. Only `id` can need escaping;
 * the state is one of three words and ISO dates are plain ASCII.
 */
export function heartbeatReply(call: HeartbeatCall, result: HeartbeatResult): string {
  const jsonrpc = call.jsonrpc === undefined ? '' : ',"jsonrpc":"2.0"';
  return (
    `{"id":${JSON.stringify(call.id)}${jsonrpc},"result":{"type":"data","data":{"json":` +
    `{"serverTime":"${isoOf(result.serverTime)}","state":"${result.state}","staleAt":"${isoOf(result.staleAt)}"},` +
    `"meta":${RESULT_META}}}}`
  );
}

/**
 * Answers `frame` if it is a heartbeat this path may answer (see above): the call is counted against
 * the rate limit, sent to the connection's actor as activity, and answered. Returns whether it did;
 * `false` means nothing happened and the frame goes on to the procedure.
 */
export function answerHeartbeat(socket: HeartbeatSocket, context: Context | undefined, frame: Buffer): boolean {
  const session = context?.session;
  if (!context || !session || session.ended || socket.readyState !== WebSocket.OPEN) return false;
  const call = parseHeartbeatCall(frame);
  // A refused take() spends no token, so the procedure's own take() refuses the call the same way.
  if (!call || !context.limiter.take()) return false;
  context.services.connections.touch(session);
  socket.send(heartbeatReply(call, heartbeatResult(context.services, session)));
  return true;
}

import {
  callTRPCProcedure,
  getErrorShape,
  getTRPCErrorFromUnknown,
  isTrackedEnvelope,
  transformTRPCResponse,
  TRPCError,
} from '@trpc/server';
import {
  parseTRPCMessage,
  TRPC_ERROR_CODES_BY_KEY,
  type TRPCClientOutgoingMessage,
  type TRPCErrorShape,
  type TRPCResponseMessage,
  type TRPCResultMessage,
} from '@trpc/server/rpc';
import type { ConnectionParams } from './auth.js';
import type { AppRouter } from '../router/index.js';
import type { Context } from '../services.js';
import { isDirectStream } from '../streams.js';

/**
 * tRPC's WebSocket protocol, read and written here and nowhere else in presenced.
 *
 * Why not tRPC's own adapter (`getWSConnectionHandler`):
 * - Memory. Its handler keeps, per socket, a closure scope (the upgrade request, the client, its
 *   subscription map and a dozen functions) and an AbortController with its EventTarget: about 2 KB of
 *   every idle connection's heap (heap breakdown, bench/results/peers.md). Here a socket is one object
 *   (`ProtocolSocket`) with its state in fields; the behaviour is in the shared `TrpcProtocol`. An
 *   AbortController exists per open subscription only, and the subscription map from the first one.
 * - Fast paths. A heartbeat answered before any procedure call, and a subscription's events written
 *   straight to its socket, serialised once for all its subscribers, need to sit inside the protocol
 *   (the request id, the order against `started` and `stopped`), not in front of a closed listener.
 * - One place for the format: frames are parsed, dispatched and written here (the heartbeat's exact
 *   reply text, next door in heartbeatFastPath.ts, is checked against `transformTRPCResponse`).
 *
 * What it reproduces of tRPC 11's adapter, observably: the `connectionParams` first message when the
 * URL carries `?connectionParams=1` (otherwise the context is created at once with `null`), the
 * context created once per socket, batches (arrays), `subscription.stop`, `started` / data (with a
 * tracked event's id) / `stopped` replies, `lastEventId` merged into the input, errors shaped by
 * `getErrorShape` with the router's formatter and transformer, `{ id: null, error }` PARSE_ERROR for
 * a frame that is not a tRPC message, `Duplicate id` for a subscription id in use, text `PING` →
 * `PONG`, every subscription of a socket aborted when it closes. tRPC does nothing of its own on
 * server shutdown (its `reconnect` notification is an explicit call, which presenced never made: a
 * drain closes sockets with 1012 instead). Observable subscriptions are not served (no procedure
 * returns one); they are refused as tRPC refuses any other non-iterable.
 */

const WS_OPEN = 1;

/** The socket the protocol writes to: ws' WebSocket, or anything with its `send` and `readyState`. */
export interface ProtocolWebSocket {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

type RequestId = number | string;
type ProcedureType = 'query' | 'mutation' | 'subscription';

/** What the client gets when its error cannot be formatted: nothing an errorFormatter would hide. */
const fallbackErrorShape: TRPCErrorShape = {
  code: TRPC_ERROR_CODES_BY_KEY.INTERNAL_SERVER_ERROR,
  message: 'Internal server error',
  data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 },
};

/** `ready` of every socket whose context was created. */
const CREATED: Promise<null> = Promise.resolve(null);

const PING = Buffer.from('PING');
const PONG = Buffer.from('PONG');

/** One open subscription: its abort, and the wake-up of the `next()` its loop waits for. */
class Subscription {
  readonly controller = new AbortController();
  /** Resolves the loop's pending wait with `'abort'`, so a stop never waits for the next value. */
  wake: ((value: 'abort') => void) | null = null;

  abort() {
    if (!this.controller.signal.aborted) this.controller.abort();
    this.wake?.('abort');
  }
}

/**
 * A socket's protocol state: one object per socket, its methods on the shared protocol. A subclass
 * may add the transport's own per-socket fields, so that a socket costs one object in all.
 */
export class ProtocolSocket<W extends ProtocolWebSocket = ProtocolWebSocket> {
  /** tRPC's `ctx`: set once the context is created. */
  ctx: Context | undefined = undefined;
  /** Settles once the context is created: `null`, or why it could not be. `null` until the first frame when the client announced connectionParams. */
  ready: Promise<TRPCError | null> | null = null;
  /** Open subscriptions by request id, from the first one on. */
  subscriptions: Map<RequestId, Subscription> | null = null;

  constructor(readonly ws: W) {}
}

/** A subscription's event as tRPC writes it, with the JSON of a shared event written once. */
interface EventText {
  id: string;
  text: string;
}

/** Events kept serialised: every subscriber of an event writes it within the same turn, so a few are enough. */
const EVENT_TEXTS = 64;

export interface TrpcProtocolOptions<S extends ProtocolSocket> {
  router: AppRouter;
  /** Creates the socket's context from its connectionParams; a throw closes the socket. */
  createContext(socket: S, params: ConnectionParams): Promise<Context>;
  /** Every error tRPC would report to its `onError`, with the procedure's path if there is one. */
  onError(error: TRPCError, path: string | undefined): void;
  /**
   * Whether redirectable subscription streams (src/streams.ts) of single-call frames have their events
   * written directly, each serialised once for all subscribers. Off: every event goes through the
   * iteration loop and the transformer, once per subscriber, as in tRPC. The bytes are the same.
   */
  directEvents: boolean;
}

/** Whether `value` can be iterated as a subscription's events. */
function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** connectionParams as tRPC accepts them: `null`, or an object of strings. */
function connectionParamsOf(text: string): ConnectionParams {
  let message: unknown;
  try {
    message = JSON.parse(text);
    if (typeof message !== 'object' || message === null) throw new Error('Message was not an object');
  } catch (cause) {
    throw new TRPCError({ code: 'PARSE_ERROR', message: 'Malformed TRPCConnectionParamsMessage', cause });
  }
  const data = (message as { data?: unknown }).data;
  if (data === null) return null;
  if (typeof data !== 'object' || data === undefined || Array.isArray(data)) {
    throw new TRPCError({ code: 'PARSE_ERROR', message: 'Invalid connection params shape' });
  }
  for (const value of Object.values(data)) {
    if (typeof value !== 'string')
      throw new TRPCError({ code: 'PARSE_ERROR', message: 'Invalid connection params shape' });
  }
  return data;
}

/** The protocol for every socket of one server. */
export class TrpcProtocol<S extends ProtocolSocket> {
  private readonly router: AppRouter;
  private readonly config: AppRouter['_def']['_config'];
  private readonly options: TrpcProtocolOptions<S>;
  /** The JSON text of the events written last, by event object: one serialisation for all subscribers. */
  private readonly eventTexts = new Map<object, EventText>();

  constructor(options: TrpcProtocolOptions<S>) {
    this.options = options;
    this.router = options.router;
    this.config = options.router._def._config;
  }

  /** A new socket: its context is created now, or from its first frame if it announced connectionParams. */
  connect(socket: S, expectsConnectionParams: boolean) {
    if (!expectsConnectionParams) socket.ready = this.createContext(socket, () => null);
  }

  /** A frame from the socket. */
  message(socket: S, data: Buffer, isBinary: boolean) {
    if (!isBinary && data.length === 4) {
      if (data.equals(PONG)) return;
      if (data.equals(PING)) {
        socket.ws.send('PONG');
        return;
      }
    }
    // JSON is text: a binary frame is not a message (tRPC's JSON encoder refuses it the same way).
    const text = isBinary ? null : data.toString('utf8');
    if (socket.ready === null) {
      socket.ready = this.createContext(socket, () => {
        if (text === null)
          throw new TRPCError({ code: 'PARSE_ERROR', message: 'Malformed TRPCConnectionParamsMessage' });
        return connectionParamsOf(text);
      });
      return;
    }
    let messages: TRPCClientOutgoingMessage[];
    let single = false;
    try {
      if (text === null) throw new Error('binary frame: JSON uses text frames');
      const json: unknown = JSON.parse(text);
      single = !Array.isArray(json);
      messages = Array.isArray(json)
        ? json.map((raw) => parseTRPCMessage(raw, this.config.transformer))
        : [parseTRPCMessage(json, this.config.transformer)];
    } catch (cause) {
      const error = new TRPCError({ code: 'PARSE_ERROR', cause });
      this.respondOrReport(socket, () => ({
        id: null,
        error: this.errorShape(socket, error, 'unknown', undefined, undefined),
      }));
      return;
    }
    for (const [index, message] of messages.entries()) {
      this.handle(socket, message, index, single).catch((cause: unknown) => this.report(cause, undefined));
    }
  }

  /** The socket closed: every subscription of it is aborted. */
  closed(socket: S) {
    const subscriptions = socket.subscriptions;
    if (!subscriptions) return;
    socket.subscriptions = null;
    for (const subscription of subscriptions.values()) subscription.abort();
  }

  /** An error event of the socket, reported as tRPC reports it. */
  socketError(cause: unknown) {
    this.report(cause, undefined);
  }

  private report(cause: unknown, path: string | undefined): TRPCError {
    const error = getTRPCErrorFromUnknown(cause);
    try {
      this.options.onError(error, path);
    } catch {
      // onError runs in listeners and in promises nothing awaits: it must not crash the process.
    }
    return error;
  }

  private async createContext(socket: S, params: () => ConnectionParams): Promise<TRPCError | null> {
    try {
      socket.ctx = await this.options.createContext(socket, params());
      // The promise is not kept for the socket's lifetime: every idle socket would hold one.
      socket.ready = CREATED;
      return null;
    } catch (cause) {
      const error = this.report(cause, undefined);
      this.respondOrReport(socket, () => ({
        id: null,
        error: this.errorShape(socket, error, 'unknown', undefined, undefined),
      }));
      // As tRPC: the socket closes once the error is on its way.
      setImmediate(() => socket.ws.close());
      return error;
    }
  }

  /** The error shape the client gets, or a minimal one if the errorFormatter throws. */
  private errorShape(
    socket: S,
    error: TRPCError,
    type: ProcedureType | 'unknown',
    path: string | undefined,
    input: unknown,
  ): TRPCErrorShape {
    try {
      return getErrorShape({ config: this.config, ctx: socket.ctx, error, type, path, input });
    } catch (cause) {
      this.report(cause, path);
      return fallbackErrorShape;
    }
  }

  /** Writes `message` through the router's transformer, unless the socket is closing. */
  private respond(socket: S, message: TRPCResponseMessage) {
    if (socket.ws.readyState !== WS_OPEN) return;
    socket.ws.send(JSON.stringify(transformTRPCResponse(this.config, message)));
  }

  /** Writes a reply; one that cannot be built or sent is reported, and replaced by the fallback error. */
  private respondOrReport(socket: S, build: () => TRPCResponseMessage) {
    let message: TRPCResponseMessage | null = null;
    try {
      message = build();
      this.respond(socket, message);
    } catch (cause) {
      this.report(cause, undefined);
      if (message === null) return;
      try {
        this.respond(socket, { id: message.id, jsonrpc: message.jsonrpc, error: fallbackErrorShape });
      } catch {
        // the same failure, reported above
      }
    }
  }

  private async handle(socket: S, message: TRPCClientOutgoingMessage, batchIndex: number, single: boolean) {
    const { id, jsonrpc } = message;
    if (id === null) {
      const error = this.report(new TRPCError({ code: 'PARSE_ERROR', message: '`id` is required' }), undefined);
      this.respond(socket, { id, jsonrpc, error: this.errorShape(socket, error, 'unknown', undefined, undefined) });
      return;
    }
    if (message.method === 'subscription.stop') {
      socket.subscriptions?.get(id)?.abort();
      return;
    }
    const type = message.method;
    const { path, lastEventId } = message.params;
    let { input } = message.params;
    if (lastEventId !== undefined) {
      if (typeof input === 'object' && input !== null && !Array.isArray(input)) input = { ...input, lastEventId };
      else input ??= { lastEventId };
    }
    const respondWithError = (cause: unknown) => {
      const error = this.report(cause, path);
      this.respond(socket, { id, jsonrpc, error: this.errorShape(socket, error, type, path, input) });
    };
    if (type === 'subscription' && socket.subscriptions?.has(id)) {
      respondWithError(new TRPCError({ code: 'BAD_REQUEST', message: `Duplicate id ${id}` }));
      return;
    }
    // Registered before any await, so that a stop or a close while the context or the procedure is
    // pending cancels it; a query or mutation gets a controller of its own, never registered.
    const subscription = new Subscription();
    if (type === 'subscription') (socket.subscriptions ??= new Map()).set(id, subscription);
    try {
      await this.execute(socket, subscription, { id, jsonrpc, type, path, input, batchIndex, single });
    } catch (cause) {
      const error = getTRPCErrorFromUnknown(cause);
      // A procedure that gives up because its subscription was cancelled is not an error.
      const cancelled =
        subscription.controller.signal.aborted &&
        error.code === 'INTERNAL_SERVER_ERROR' &&
        error.cause instanceof Error &&
        error.cause.name === 'AbortError';
      if (!cancelled) {
        try {
          respondWithError(error);
        } catch (failure) {
          this.report(failure, path);
          this.respondOrReport(socket, () => ({ id, jsonrpc, error: fallbackErrorShape }));
        }
        return;
      }
    } finally {
      const subscriptions = socket.subscriptions;
      if (type === 'subscription' && subscriptions?.get(id) === subscription) {
        subscriptions.delete(id);
        // A socket without subscriptions keeps no map (most sockets, most of the time).
        if (subscriptions.size === 0) socket.subscriptions = null;
      }
    }
    if (type === 'subscription') this.respond(socket, { id, jsonrpc, result: { type: 'stopped' } });
  }

  private async execute(socket: S, subscription: Subscription, call: Call) {
    const { id, jsonrpc, type, path, input, batchIndex } = call;
    const error = await socket.ready;
    if (error) throw error;
    const signal = subscription.controller.signal;
    if (signal.aborted || (type === 'subscription' && socket.ws.readyState !== WS_OPEN)) return;
    const result: unknown = await callTRPCProcedure({
      router: this.router,
      path,
      getRawInput: () => Promise.resolve(input),
      ctx: socket.ctx,
      type,
      signal,
      batchIndex,
    });
    if (type !== 'subscription') {
      if (isAsyncIterable(result)) {
        throw new TRPCError({
          code: 'UNSUPPORTED_MEDIA_TYPE',
          message: `Cannot return an async iterable or observable from a ${type} procedure with WebSockets`,
        });
      }
      this.respond(socket, { id, jsonrpc, result: { type: 'data', data: result } });
      return;
    }
    if (!isAsyncIterable(result)) {
      throw new TRPCError({
        code: 'INTERNAL_SERVER_ERROR',
        message: `Subscription ${path} did not return an observable or a AsyncGenerator`,
      });
    }
    const iterator = result[Symbol.asyncIterator]();
    if (signal.aborted || socket.ws.readyState !== WS_OPEN) {
      subscription.abort();
      await this.dispose(iterator, path);
      return;
    }
    this.respond(socket, { id, jsonrpc, result: { type: 'started' } });
    let completed = false;
    // A redirectable stream's first value comes through `next()`, as in tRPC's loop, so that it goes
    // out in the same turn as there (another subscription's `started` can come between); every later
    // one (the rest of a replay first, synchronously) goes straight to the socket as it is pushed,
    // and `next()` resolves only at the end.
    const direct = this.options.directEvents && call.single && isDirectStream(iterator) ? iterator : null;
    try {
      while (true) {
        const next = await this.nextUnlessStopped(subscription, iterator, path);
        if (next === 'abort') break;
        if (next.done) {
          completed = true;
          break;
        }
        this.writeEvent(socket, id, jsonrpc, next.value, direct !== null);
        direct?.redirect((value) => this.writeEvent(socket, id, jsonrpc, value, true));
      }
    } finally {
      if (!completed) subscription.abort();
      await this.dispose(iterator, path);
    }
  }

  /**
   * The iterator's next value, `'abort'` as soon as the subscription is stopped (without waiting for
   * the value), or the iterator's failure thrown. A failure after the stop is reported only.
   */
  private nextUnlessStopped(
    subscription: Subscription,
    iterator: AsyncIterator<unknown>,
    path: string,
  ): Promise<IteratorResult<unknown> | 'abort'> {
    const signal = subscription.controller.signal;
    if (signal.aborted) return Promise.resolve('abort');
    return new Promise<IteratorResult<unknown> | 'abort'>((resolve, reject) => {
      subscription.wake = resolve;
      iterator.next().then(resolve, (cause: unknown) => {
        if (!signal.aborted) {
          reject(getTRPCErrorFromUnknown(cause));
          return;
        }
        const error = getTRPCErrorFromUnknown(cause);
        if (!(error.cause instanceof Error && error.cause.name === 'AbortError')) this.report(error, path);
        resolve('abort');
      });
    }).finally(() => (subscription.wake = null));
  }

  /** Ends the iterator without reading on; a failing cleanup is the server's to know, not the client's. */
  private async dispose(iterator: AsyncIterator<unknown>, path: string) {
    try {
      await iterator.return?.();
    } catch (cause) {
      this.report(cause, path);
    }
  }

  /**
   * A subscription's value, as tRPC writes it. A tracked event of a redirected stream (`shared`: one
   * event object for all subscribers, never changed) is serialised once, for every subscriber.
   */
  private writeEvent(socket: S, id: RequestId, jsonrpc: '2.0' | undefined, value: unknown, shared: boolean) {
    if (!isTrackedEnvelope(value)) {
      this.respond(socket, { id, jsonrpc, result: { type: 'data', data: value } });
      return;
    }
    const [eventId, data] = value;
    if (!shared || typeof data !== 'object' || data === null) {
      const result: TRPCResultMessage<unknown>['result'] = { type: 'data', data: { id: eventId, data }, id: eventId };
      this.respond(socket, { id, jsonrpc, result });
      return;
    }
    if (socket.ws.readyState !== WS_OPEN) return;
    socket.ws.send(this.eventFrame(id, jsonrpc, eventId, data));
  }

  /**
   * `JSON.stringify(transformTRPCResponse(config, { id, jsonrpc, result: { type: 'data', data: { id:
   * eventId, data }, id: eventId } }))`, with the transformed `data` written once per event for every
   * subscriber: only the request id differs between their frames.
   */
  eventFrame(id: RequestId, jsonrpc: '2.0' | undefined, eventId: string, data: object): string {
    let entry = this.eventTexts.get(data);
    if (entry?.id !== eventId) {
      entry = { id: eventId, text: JSON.stringify(this.config.transformer.output.serialize({ id: eventId, data })) };
      this.eventTexts.delete(data);
      this.eventTexts.set(data, entry);
      if (this.eventTexts.size > EVENT_TEXTS) this.eventTexts.delete(this.eventTexts.keys().next().value as object);
    }
    const version = jsonrpc === undefined ? '' : ',"jsonrpc":"2.0"';
    return `{"id":${JSON.stringify(id)}${version},"result":{"type":"data","data":${entry.text},"id":${JSON.stringify(eventId)}}}`;
  }
}

interface Call {
  id: RequestId;
  jsonrpc: '2.0' | undefined;
  type: ProcedureType;
  path: string;
  input: unknown;
  batchIndex: number;
  /** The frame carried this call alone (not in an array). */
  single: boolean;
}

import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TRPCError } from '@trpc/server';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { Admission, type AdmissionCounts } from './admission.js';
import { isBatchLargerThan } from './batchGuard.js';
import type { Authenticate, ConnectionParams } from './auth.js';
import { closeFirmly } from '../closeSocket.js';
import type { ConnectionHandle } from '../connections/registry.js';
import { identifyError, PresenceError } from '../errors.js';
import { answerHeartbeat } from './heartbeatFastPath.js';
import type { PresenceHooks } from '../hooks.js';
import { keepAliveSweepMs, sweepKeepAlive, type Liveness } from './keepAlive.js';
import { LogThrottle } from '../logThrottle.js';
import { CloseCode } from '../protocol.js';
import { RateLimiter } from './rateLimit.js';
import { ProtocolSocket, TrpcProtocol } from './trpcProtocol.js';
import type { AppRouter } from '../router/index.js';
import type { Context, Services } from '../services.js';

export const TRPC_PATH = '/trpc';

/** A refused socket is closed once its first call is answered, or after this long without one. */
const REFUSED_SOCKET_GRACE_MS = 2_000;
/** Frames a socket may send before its context exists: its connectionParams and a full batch. */
const EARLY_FRAMES = 128;

/** ws' errors for frames it refuses carry a `WS_ERR_*` code. */
function isWsFrameError(cause: unknown): cause is Error & { code: string } {
  return (
    cause instanceof Error && 'code' in cause && typeof cause.code === 'string' && cause.code.startsWith('WS_ERR_')
  );
}

/**
 * What tRPC answers for a request refused before any procedure (`{ id: null, error }`, the error
 * shape through the transformer): BAD_REQUEST, JSON-RPC code -32600.
 */
function refusalFrame(router: AppRouter, message: string): string {
  const shape = { message, code: -32600, data: { code: 'BAD_REQUEST', httpStatus: 400 } };
  const error: unknown = router._def._config.transformer.output.serialize(shape);
  return JSON.stringify({ id: null, error });
}

/** An error on a raw socket (a reset peer, mostly): the socket is dropped, the error never left unhandled. */
function onRawSocketError(this: Duplex) {
  this.destroy();
}

const refusalCloseCode = {
  UNAUTHORIZED: CloseCode.unauthorized,
  TOO_MANY_REQUESTS: CloseCode.tooManyConnections,
  UNAVAILABLE: CloseCode.atCapacity,
} as const;

export interface TransportOptions {
  server: Server;
  /** The router the composition root serves; the transport calls its procedures, never imports them. */
  router: AppRouter;
  services: Services;
  authenticate: Authenticate;
  logger: Logger;
  hooks: PresenceHooks;
}

/**
 * tRPC has no backpressure: a client that stops reading grows `bufferedAmount` without bound
 * (measured: 258 MB in 3 s). Every send checks it and cuts the socket off past the limit. The
 * socket is terminated, not closed: a client that does not read would never read a close frame.
 * A subclass (ws' `WebSocket` option) rather than a wrapped `send` per socket: no closures per socket.
 */
function guardedWebSocket(limit: number, onCut: (ws: WebSocket) => void) {
  return class GuardedWebSocket extends WebSocket {
    override send(data: SendData, options?: SendOptions | SendCallback, cb?: SendCallback): void {
      if (typeof options === 'function') super.send(data, options);
      else if (options === undefined) super.send(data, cb);
      else super.send(data, options, cb);
      if (this.bufferedAmount > limit && this.readyState === WebSocket.OPEN) {
        onCut(this);
        this.terminate();
      }
    }
  };
}

type SendData = Parameters<WebSocket['send']>[0];
type SendCallback = (error?: Error) => void;
type SendOptions = Exclude<Parameters<WebSocket['send']>[1], SendCallback | undefined>;

/**
 * Per socket, one object: its protocol state (its tRPC context once created, its subscriptions), its
 * keep-alive, its peer, and the connection it opened.
 */
class SocketState extends ProtocolSocket<WebSocket> implements Liveness {
  heard = false;
  quietSince = performance.now();
  pingedAt: number | null = null;
  /** Frames received before the context was there (the protocol holds each until then). */
  earlyFrames = 0;
  earlyBytes = 0;
  /** The connection it opened, from then on (before its context is ready): closing the socket ends it. */
  opened: ConnectionHandle | null = null;

  constructor(
    ws: WebSocket,
    readonly ip: string | null,
    readonly userAgent: string | null,
  ) {
    super(ws);
  }
}

/**
 * Whether the client announced a `connectionParams` message (`?connectionParams=1`), read once: the
 * upgrade request itself is not kept (the whole IncomingMessage, headers and stream state, was about
 * 1 KB of every idle connection's heap when tRPC's handler held it, bench/results/peers-fixes.md).
 */
function announcesConnectionParams(req: IncomingMessage): boolean {
  const url = req.url ?? '/';
  const query = url.indexOf('?');
  return query !== -1 && new URLSearchParams(url.slice(query + 1)).get('connectionParams') === '1';
}

/** A socket's tRPC context. Its methods are shared: an accepted socket's context keeps no closures. */
class SocketContext implements Context {
  session: ConnectionHandle | null = null;
  refusal: PresenceError | null = null;
  readonly subscriptions = { open: 0 };
  private refusedAnswered = false;

  constructor(
    readonly services: Services,
    readonly limiter: RateLimiter,
    private readonly socket: WebSocket,
  ) {}

  onRefused() {
    if (this.refusedAnswered) return;
    this.refusedAnswered = true;
    setImmediate(() => this.closeRefused());
  }

  /** Closes a refused socket with the close code of its refusal. */
  closeRefused() {
    const code = this.refusal ? refusalCloseCode[this.refusal.code as keyof typeof refusalCloseCode] : undefined;
    closeFirmly(this.socket, code ?? CloseCode.unauthorized, this.refusal?.message ?? 'unauthorized');
  }
}

export function attachTransport(options: TransportOptions) {
  const { server, router, services, authenticate, logger, hooks } = options;
  const { config, connections, clock } = services;
  // Closed until the restore is done (`startAccepting`): a socket accepted while restoring could only
  // refuse every call, and a reconnecting client's re-sent subscriptions would end with that error
  // instead of resuming. Refused upgrades make clients retry until the node is ready.
  let accepting = false;
  const throttled = new LogThrottle(logger, () => clock.now());
  const wss: WebSocketServer = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxPayloadBytes,
    WebSocket: guardedWebSocket(config.maxBufferedBytes, (ws) =>
      throttled.warn('slow consumer cut off', { bufferedAmount: ws.bufferedAmount }),
    ),
  });
  const sockets = new Map<WebSocket, SocketState>();
  const admission = new Admission<WebSocket>(config, clock);
  const maxBatchSize = config.rateLimit * 2;
  const batchRefusal = refusalFrame(router, `a batch may carry at most ${maxBatchSize} calls`);
  /** Frames past either bound before authentication close the socket (1008). */
  const tooEarly = (state: SocketState, data: Buffer) => {
    state.earlyFrames++;
    state.earlyBytes += data.length;
    return state.earlyFrames > EARLY_FRAMES || state.earlyBytes > 2 * config.maxPayloadBytes;
  };
  const keepAliveTiming = { pingMs: config.pingMs, pongWaitMs: config.pongWaitMs };
  const keepAlive = setInterval(
    () => sweepKeepAlive(sockets, performance.now(), keepAliveTiming),
    keepAliveSweepMs(keepAliveTiming),
  );
  keepAlive.unref();

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node's HTTP server stops handling errors of a socket it hands to 'upgrade'. Without this, a
    // peer that resets the connection while it is answered (404 and 503 below, or ws' own handshake
    // errors) raised an unhandled 'error' event (write ECONNRESET) and killed the process.
    socket.on('error', onRawSocketError);
    const path = (req.url ?? '/').split('?')[0];
    if (path !== TRPC_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    if (!accepting) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
  server.on('upgrade', onUpgrade);

  async function createContext(state: SocketState, params: ConnectionParams): Promise<Context> {
    const ws = state.ws;
    const context = new SocketContext(services, new RateLimiter(config.rateLimit, config.rateLimit * 2, clock), ws);
    try {
      const identity = await authenticate(params);
      if (ws.readyState !== WebSocket.OPEN)
        throw new PresenceError('UNAVAILABLE', 'socket closed during authentication');
      // The node can have filled up while this socket authenticated.
      if (!admission.hasRoom())
        throw new PresenceError('UNAVAILABLE', `at capacity (${config.maxConnections} connections)`);
      state.opened = connections.open({
        ...identity,
        ip: state.ip,
        userAgent: state.userAgent,
        resume: params?.['resume'],
        socket: ws,
      });
      admission.admit(ws);
      // Under the `replace` policy the user's old connections end first: the new session answers
      // nothing until their ends are stored (an end is stored before anything announces it).
      await state.opened.replacing;
      context.session = state.opened;
    } catch (error) {
      if (!(error instanceof PresenceError)) throw error;
      throttled.info('connection refused', { code: error.code, reason: error.message });
      context.refusal = error;
      setTimeout(() => context.closeRefused(), REFUSED_SOCKET_GRACE_MS).unref();
    }
    return context;
  }

  function onError(error: TRPCError, path: string | undefined) {
    // A frame ws refused (over maxPayload, invalid UTF-8, a bad opcode): ws closes that socket
    // (1009, 1007, 1002) and emits 'error', reported (as tRPC does) as an internal error. It is the
    // client's doing: as with the socket's own error listener, a debug line, no error log and no
    // onError, or any client could raise error alarms at will.
    if (isWsFrameError(error.cause)) {
      logger.debug({ code: error.cause.code }, 'frame refused by ws');
      return;
    }
    if (error.code === 'INTERNAL_SERVER_ERROR') {
      // The client's reply is formatted after this, from the same error: it carries this id there.
      logger.error({ err: error, path, errorId: identifyError(error) }, 'procedure failed');
      hooks.onError?.(error, `procedure ${path ?? '(none)'}`);
    }
  }

  const protocol = new TrpcProtocol<SocketState>({
    router,
    createContext,
    onError,
    // A batch is never redirected: sending `F` and then `[F]` compares a fast path with tRPC's way.
    directEvents: config.fastPaths,
  });

  /**
   * Every frame of every socket, `this` being the socket: no listener closures per socket. A
   * heartbeat the fast path can answer (fast paths on) is answered before any procedure call;
   * exceptions in the fast path must not escape a socket listener (that would crash the process):
   * the frame then goes on to the protocol, which answers it or reports the error.
   */
  function onMessage(this: WebSocket, data: RawData, isBinary: boolean) {
    const state = sockets.get(this);
    // ws hands frames over as Buffers (its default binaryType, which presenced never changes).
    if (state === undefined || !Buffer.isBuffer(data)) return;
    state.heard = true;
    // Until the socket's context exists, the protocol holds every call until it is: bounded here, as
    // the rate limit bounds them afterwards. A client sends its connectionParams and a batch or two.
    if (state.ctx === undefined && tooEarly(state, data)) {
      throttled.info('socket turned away', { why: 'too many frames before authentication' });
      closeFirmly(this, CloseCode.policyViolation, 'too many frames before authentication');
      return;
    }
    if (!isBinary) {
      if (isBatchLargerThan(data, maxBatchSize)) {
        this.send(batchRefusal);
        return;
      }
      if (config.fastPaths) {
        try {
          if (answerHeartbeat(this, state.ctx, data)) return;
        } catch (error) {
          logger.error({ err: error }, 'heartbeat fast path failed');
          hooks.onError?.(error, 'heartbeat fast path');
        }
      }
    }
    protocol.message(state, data, isBinary);
  }

  function onClose(this: WebSocket) {
    admission.leave(this);
    const state = sockets.get(this);
    if (state === undefined) return;
    sockets.delete(this);
    protocol.closed(state);
    if (state.opened) connections.socketClosed(state.opened, this);
  }

  function onSocketError(error: Error) {
    // A frame over maxPayload makes ws close with 1009 and emit 'error'; nothing else to do.
    logger.debug({ err: error }, 'socket error');
    protocol.socketError(error);
  }

  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    ws.on('error', onSocketError);
    const arrival = admission.arrive(ws, () => {
      throttled.info('authentication timed out', { authTimeoutMs: config.authTimeoutMs });
      closeFirmly(ws, CloseCode.unauthorized, 'authentication timed out');
    });
    if (arrival !== 'waiting') {
      throttled.info('socket turned away', { why: arrival, ...admission.counts() });
      closeFirmly(
        ws,
        CloseCode.atCapacity,
        arrival === 'atCapacity' ? 'at capacity' : 'too many sockets authenticating',
      );
      return;
    }
    const userAgent = req.headers['user-agent'];
    const state = new SocketState(
      ws,
      req.socket.remoteAddress ?? null,
      typeof userAgent === 'string' ? userAgent.slice(0, 512) : null,
    );
    sockets.set(ws, state);
    ws.once('close', onClose);
    ws.on('message', onMessage);
    protocol.connect(state, announcesConnectionParams(req));
  });

  return {
    wss,
    /** The restore is done: accept sockets. */
    startAccepting() {
      accepting = true;
    },
    /** Stop accepting new sockets (SIGTERM). */
    stopAccepting() {
      accepting = false;
    },
    /** Sockets that hold a slot, and sockets still waiting to authenticate (or refused, closing). */
    counts(): AdmissionCounts {
      return admission.counts();
    },
    async close() {
      accepting = false;
      clearInterval(keepAlive);
      server.off('upgrade', onUpgrade);
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

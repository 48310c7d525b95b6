import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { getWSConnectionHandler } from '@trpc/server/adapters/ws';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { Admission, type AdmissionCounts } from './admission.js';
import { isBatchLargerThan } from './batchGuard.js';
import type { Authenticate, ConnectionParams } from './auth.js';
import { closeFirmly } from './closeSocket.js';
import type { ConnectionHandle } from '../connections/registry.js';
import { identifyError, PresenceError } from '../errors.js';
import { answerHeartbeat } from './heartbeatFastPath.js';
import type { PresenceHooks } from '../hooks.js';
import { keepAliveSweepMs, sweepKeepAlive, type Liveness } from './keepAlive.js';
import { LogThrottle } from './logThrottle.js';
import { CloseCode } from '../protocol.js';
import { RateLimiter } from './rateLimit.js';
import { sharingEncoder, sharingTransformer } from './encoding.js';
import type { AppRouter } from '../router/index.js';
import type { Context, Services } from '../router/trpc.js';

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
function refusalFrame(message: string): string {
  const shape = { message, code: -32600, data: { code: 'BAD_REQUEST', httpStatus: 400 } };
  const error: unknown = sharingTransformer.output.serialize(shape);
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

/** Per socket: its keep-alive, its peer and, once `createContext` is done, its tRPC context. */
interface SocketState extends Liveness {
  ip: string | null;
  userAgent: string | null;
  context: Context | undefined;
  /** Frames and bytes received before `context` was there (tRPC holds each until then). */
  early: { frames: number; bytes: number };
}

/**
 * What tRPC gets of the upgrade request. It reads the URL and the host once, when the socket
 * connects, but its per-socket closures keep whatever it was given for the socket's lifetime: the
 * whole IncomingMessage, with its headers, raw headers and stream state, was about 1 KB of every
 * idle connection's heap (a heap-snapshot diff, bench/results/peers-fixes.md). The transport reads
 * the peer's address and user agent itself (`SocketState`). HTTP only: presenced serves no TLS.
 */
function upgradeSummary(req: IncomingMessage): IncomingMessage {
  const host = req.headers.host;
  return { url: req.url, headers: host === undefined ? {} : { host } } as IncomingMessage;
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
    readonly socket: WebSocket,
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
  const batchRefusal = refusalFrame(`a batch may carry at most ${maxBatchSize} calls`);
  /** Frames past either bound before authentication close the socket (1008). */
  const tooEarly = (state: SocketState, data: unknown) => {
    state.early.frames++;
    state.early.bytes += Buffer.isBuffer(data) ? data.length : 0;
    return state.early.frames > EARLY_FRAMES || state.early.bytes > 2 * config.maxPayloadBytes;
  };
  let unexpectedListeners = false;
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

  async function createContext(ws: WebSocket, params: ConnectionParams): Promise<Context> {
    const state = sockets.get(ws);
    const context = new SocketContext(services, new RateLimiter(config.rateLimit, config.rateLimit * 2, clock), ws);
    try {
      const identity = await authenticate(params);
      if (ws.readyState !== WebSocket.OPEN)
        throw new PresenceError('UNAVAILABLE', 'socket closed during authentication');
      // The node can have filled up while this socket authenticated.
      if (!admission.hasRoom())
        throw new PresenceError('UNAVAILABLE', `at capacity (${config.maxConnections} connections)`);
      const handle = connections.open({
        ...identity,
        ip: state?.ip ?? null,
        userAgent: state?.userAgent ?? null,
        resume: params?.['resume'],
        socket: ws,
      });
      ws.once('close', () => connections.socketClosed(handle, ws));
      admission.admit(ws);
      // Under the `replace` policy the user's old connections end first: the new session answers
      // nothing until their ends are stored (an end is stored before anything announces it).
      await handle.replacing;
      context.session = handle;
    } catch (error) {
      if (!(error instanceof PresenceError)) throw error;
      throttled.info('connection refused', { code: error.code, reason: error.message });
      context.refusal = error;
      setTimeout(() => context.closeRefused(), REFUSED_SOCKET_GRACE_MS).unref();
    }
    if (state) state.context = context;
    return context;
  }

  const handle = getWSConnectionHandler<AppRouter>({
    wss,
    router,
    createContext: (opts) => createContext(opts.res, opts.info.connectionParams),
    // Ours (src/wire/keepAlive.ts), on one sweep instead of two timers per socket.
    keepAlive: { enabled: false },
    // A batch larger than the burst would only be refused call by call (`route` answers it once).
    maxBatchSize,
    // JSON, with presence events written once for all their subscribers (src/wire/encoding.ts).
    experimental_encoder: sharingEncoder,
    onError({ error, path }) {
      // A frame ws refused (over maxPayload, invalid UTF-8, a bad opcode): ws closes that socket
      // (1009, 1007, 1002) and emits 'error', which tRPC reports as an internal error. It is the
      // client's doing: as with the socket's own error listener, a debug line, no error log and no
      // onError, or any client could raise error alarms at will.
      if (isWsFrameError(error.cause)) {
        logger.debug({ code: error.cause.code }, 'frame refused by ws');
        return;
      }
      if (error.code === 'INTERNAL_SERVER_ERROR') {
        // tRPC formats the client's reply after this, from the same error: it carries this id there.
        logger.error({ err: error, path, errorId: identifyError(error) }, 'procedure failed');
        hooks.onError?.(error, `procedure ${path ?? '(none)'}`);
      }
    },
  });

  /**
   * A heartbeat the fast path can answer never reaches tRPC; every other frame goes to tRPC's own
   * listener, unchanged. Exceptions in the fast path must not escape a socket listener (that would
   * crash the process): the frame then goes to tRPC, which answers it or reports the error.
   */
  function route(ws: WebSocket, state: SocketState, trpcListener: (data: unknown, isBinary: boolean) => void) {
    return (data: unknown, isBinary: boolean) => {
      state.heard = true;
      // Until the socket's context exists, tRPC parses every frame and holds it: bounded here, as the
      // rate limit bounds them afterwards. A client sends its connectionParams and a batch or two.
      if (state.context === undefined && tooEarly(state, data)) {
        throttled.info('socket turned away', { why: 'too many frames before authentication' });
        closeFirmly(ws, CloseCode.policyViolation, 'too many frames before authentication');
        return;
      }
      if (!isBinary && Buffer.isBuffer(data)) {
        if (isBatchLargerThan(data, maxBatchSize)) {
          ws.send(batchRefusal);
          return;
        }
        try {
          if (answerHeartbeat(ws, state.context, data)) return;
        } catch (error) {
          logger.error({ err: error }, 'heartbeat fast path failed');
          hooks.onError?.(error, 'heartbeat fast path');
        }
      }
      trpcListener(data, isBinary);
    };
  }

  wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
    // A frame over maxPayload makes ws close with 1009 and emit 'error'; nothing else to do.
    ws.on('error', (error) => logger.debug({ err: error }, 'socket error'));
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
    ws.once('close', () => admission.leave(ws));
    const userAgent = req.headers['user-agent'];
    const state: SocketState = {
      heard: false,
      quietSince: performance.now(),
      pingedAt: null,
      ip: req.socket.remoteAddress ?? null,
      userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 512) : null,
      context: undefined,
      early: { frames: 0, bytes: 0 },
    };
    sockets.set(ws, state);
    ws.once('close', () => sockets.delete(ws));
    handle(ws, upgradeSummary(req));
    // tRPC listens for messages with exactly one listener: the fast path goes in front of it. Should
    // a tRPC version add more, every frame goes to tRPC as it is (slower, never wrong).
    const [trpcListener, ...others] = ws.listeners('message') as ((data: unknown, isBinary: boolean) => void)[];
    if (!trpcListener || others.length > 0) {
      if (!unexpectedListeners) logger.error('tRPC added more than one message listener: heartbeats go through tRPC');
      unexpectedListeners = true;
      ws.on('message', () => (state.heard = true));
      return;
    }
    ws.off('message', trpcListener);
    ws.on('message', route(ws, state, trpcListener));
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

/**
 * `presenced/client`: a typed client for browsers and Node. It heartbeats at the server's pace,
 * reconnects with backoff and jitter, resumes its session with its token, and lets tRPC re-subscribe
 * with `lastEventId` so presence streams continue where they stopped.
 */
import { createTRPCClient, createWSClient, wsLink, type TRPCClient } from '@trpc/client';
import superjson from 'superjson';
import { terminalCloseCodes, type SessionEvent, type SessionInfo } from '../protocol.js';
import type { AppRouter } from '../router/index.js';

export { CloseCode, terminalCloseCodes } from '../protocol.js';
export type * from '../protocol.js';
export type { AppRouter } from '../router/index.js';

/** The WebSocket constructor to use: the global one in browsers, `ws`'s class on Node 20. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

export interface PresenceClientOptions {
  /** `ws://host:port/trpc` */
  url: string;
  /** A JWT (`jwt` auth). */
  token?: string;
  /** The user id (`dev` auth). */
  userId?: string;
  /** `admin` for the admin procedures (`dev` auth). */
  role?: string;
  /** @default globalThis.WebSocket */
  WebSocket?: WebSocketConstructor;
  /** Send `session.heartbeat` every `heartbeatMs` the server announces. @default true */
  heartbeat?: boolean;
  /** First reconnect delay; doubles per attempt, with ±50% jitter. @default 250 */
  retryBaseMs?: number;
  /** Longest reconnect delay. @default 10000 */
  retryMaxMs?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** No reconnect follows: the session ended or the server refused it. */
  terminal: boolean;
}

export interface PresenceClientEvents {
  /** After every (re)connection, with the session as the server sees it. */
  session: SessionInfo;
  /** `session.events`: warning, replaced, expired, state. */
  event: SessionEvent;
  close: CloseInfo;
}

export interface PresenceClient {
  api: TRPCClient<AppRouter>;
  /** The session once connected; rejects if the server refuses the connection. */
  ready: Promise<SessionInfo>;
  session(): SessionInfo | undefined;
  on<TEvent extends keyof PresenceClientEvents>(
    event: TEvent,
    handler: (value: PresenceClientEvents[TEvent]) => void,
  ): () => void;
  close(): Promise<void>;
}

/** Exponential backoff with ±50% jitter, so a restarted server is not hit by every client at once. */
export function retryDelay(attempt: number, baseMs = 250, maxMs = 10_000, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(ceiling * (0.5 + random() * 0.5));
}

export function createPresenceClient(options: PresenceClientOptions): PresenceClient {
  const handlers: { [K in keyof PresenceClientEvents]: Set<(value: PresenceClientEvents[K]) => void> } = {
    session: new Set(),
    event: new Set(),
    close: new Set(),
  };
  const emit = <K extends keyof PresenceClientEvents>(event: K, value: PresenceClientEvents[K]) => {
    for (const handler of handlers[event]) handler(value);
  };

  let current: SessionInfo | undefined;
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  let settleReady: { resolve(info: SessionInfo): void; reject(error: unknown): void } | undefined;
  const ready = new Promise<SessionInfo>((resolve, reject) => (settleReady = { resolve, reject }));
  // A refused client may never await `ready`; that must not become an unhandled rejection.
  ready.catch(() => undefined);

  const wsClient = createWSClient({
    url: options.url,
    ...(options.WebSocket ? { WebSocket: options.WebSocket as unknown as typeof WebSocket } : {}),
    connectionParams: () => {
      const params: Record<string, string> = {};
      if (options.token !== undefined) params['token'] = options.token;
      if (options.userId !== undefined) params['userId'] = options.userId;
      if (options.role !== undefined) params['role'] = options.role;
      if (current) params['resume'] = current.resumeToken;
      return params;
    },
    retryDelayMs: (attempt) => retryDelay(attempt, options.retryBaseMs, options.retryMaxMs),
    onOpen: () => void refresh(),
    onClose: (event) => {
      const code = event?.code ?? 1006;
      const terminal = terminalCloseCodes.has(code);
      if (terminal) void stop();
      emit('close', { code, reason: (event as { reason?: string } | undefined)?.reason ?? '', terminal });
      if (terminal && !current) settleReady?.reject(new Error(`connection refused (close code ${code})`));
    },
  });

  const api = createTRPCClient<AppRouter>({ links: [wsLink({ client: wsClient, transformer: superjson })] });
  let events: { unsubscribe(): void } | undefined;

  async function refresh() {
    try {
      const info = await api.session.info.query();
      current = info;
      emit('session', info);
      settleReady?.resolve(info);
      if (options.heartbeat !== false && heartbeat === undefined) {
        heartbeat = setInterval(() => {
          api.session.heartbeat.mutate().catch(() => undefined);
        }, info.heartbeatMs);
      }
      // tRPC re-subscribes by itself after a reconnect; subscribe once.
      events ??= api.session.events.subscribe(undefined, { onData: (event) => emit('event', event) });
    } catch (error) {
      if (!current) settleReady?.reject(error);
    }
  }

  async function stop() {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    events?.unsubscribe();
    await wsClient.close();
  }

  return {
    api,
    ready,
    session: () => current,
    on(event, handler) {
      handlers[event].add(handler);
      return () => handlers[event].delete(handler);
    },
    close: stop,
  };
}

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { createAuthenticator } from './auth.js';
import { systemClock, type Clock } from './clock.js';
import { configFromOptions, type PresenceOptions, type ResolvedConfig } from './config.js';
import { createConnections } from './connections.js';
import type { PresenceHooks } from './hooks.js';
import { createHttpHandler } from './http.js';
import { PresenceIndex } from './presence.js';
import { appRouter } from './router/index.js';
import type { Services } from './router/trpc.js';
import { createMemoryStore } from './store/memory.js';
import type { PresenceStore } from './store/types.js';
import { attachTransport, TRPC_PATH } from './transport.js';

export interface PresenceServerOptions extends PresenceOptions {
  /** Time for deadlines and timers. @default the system clock */
  clock?: Clock;
  /** @default pino at `logLevel` on stdout */
  logger?: Logger;
  hooks?: PresenceHooks;
  /** @default the embedded memory store */
  store?: PresenceStore;
  /** How often the write-behind queue is flushed. @default 1000 */
  flushIntervalMs?: number;
  /** Connections per supervisor shard. @default 64 */
  shardCapacity?: number;
}

export interface Listening {
  host: string;
  port: number;
  /** `http://host:port` */
  url: string;
  /** `ws://host:port/trpc` */
  wsUrl: string;
}

export interface PresenceServer extends AsyncDisposable {
  readonly config: ResolvedConfig;
  readonly nodeId: string;
  readonly services: Services;
  listen(): Promise<Listening>;
  /** SIGTERM: stop accepting, tell clients to reconnect (1012), flush every snapshot. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** The composition root: everything presenced runs is wired here and only here. */
export function createPresenceServer(options: PresenceServerOptions = {}): PresenceServer {
  const {
    clock = systemClock,
    hooks = {},
    store: givenStore,
    flushIntervalMs = 1000,
    shardCapacity,
    logger: givenLogger,
    ...rest
  } = options;
  const config = configFromOptions(rest);
  const logger = givenLogger ?? pino({ level: config.logLevel, base: { nodeId: config.nodeId } });
  const store = givenStore ?? createMemoryStore({ nodeId: config.nodeId });
  const presence = new PresenceIndex();
  const connections = createConnections({ config, store, presence, clock, logger, hooks, shardCapacity });
  const services: Services = { config, connections, presence, store, clock };
  let state: 'starting' | 'serving' | 'draining' | 'closed' = 'starting';

  const http = createServer(createHttpHandler({ services, ready: () => state === 'serving' }));
  const transport = attachTransport({
    server: http,
    router: appRouter,
    services,
    authenticate: createAuthenticator(config),
    logger,
    hooks,
  });

  const flush = () =>
    store.flush().catch((error: unknown) => {
      logger.error({ err: error }, 'store flush failed');
      hooks.onError?.(error, 'store flush');
    });
  let flusher: NodeJS.Timeout | undefined;

  const server: PresenceServer = {
    config,
    nodeId: config.nodeId,
    services,

    async listen() {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(config.port, config.host, () => {
          http.off('error', reject);
          resolve();
        });
      });
      if (config.auth === 'dev') {
        logger.warn('dev auth: connectionParams.userId is trusted as is; set PRESENCED_JWT_SECRET for jwt auth');
      }
      flusher = setInterval(() => void flush(), flushIntervalMs);
      flusher.unref();
      connections.ready();
      state = 'serving';
      const { port } = http.address() as AddressInfo;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      return { host: config.host, port, url: `http://${host}:${port}`, wsUrl: `ws://${host}:${port}${TRPC_PATH}` };
    },

    async drain() {
      if (state === 'draining' || state === 'closed') return;
      state = 'draining';
      transport.stopAccepting();
      connections.drain();
      await flush();
    },

    async close() {
      if (state === 'closed') return;
      state = 'closed';
      clearInterval(flusher);
      await transport.close();
      connections.stop();
      await flush();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await store.close();
    },

    [Symbol.asyncDispose]() {
      return server.close();
    },
  };
  return server;
}

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { createAuthenticator } from './wire/auth.js';
import { systemClock, type Clock } from './clock.js';
import { configFromOptions, redactUrl, type PresenceOptions, type ResolvedConfig } from './config.js';
import { createConnections, type RestorableRecord } from './connections/registry.js';
import type { PresenceHooks } from './hooks.js';
import { createHttpHandler } from './wire/http.js';
import { createInspection } from './tools/inspect.js';
import { Feeds, Topics } from './presence/feeds.js';
import { PresenceIndex } from './presence/presenceIndex.js';
import { LocalBus } from './presence/topic.js';
import { appRouter } from './router/index.js';
import type { Services } from './services.js';
import { createMemoryStore } from './store/memory.js';
import { createRedisStore } from './store/redis.js';
import type { LoadResult, PresenceStore } from './store/types.js';
import { attachTransport, TRPC_PATH } from './wire/transport.js';

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
  /** How long SIGTERM waits for the store to take the last writes. @default 5000 */
  drainTimeoutMs?: number;
  /** Connections per supervisor shard (connections that run as actors). @default 64 */
  shardCapacity?: number;
  /**
   * Every connection runs as an XState actor in the supervisor's shards, as with inspection on;
   * otherwise a connection steps its own snapshot through the machine. @default whether inspecting
   */
  liveActors?: boolean;
}

export interface Listening {
  host: string;
  port: number;
  /** `http://host:port` */
  url: string;
  /** `ws://host:port/trpc` */
  wsUrl: string;
}

/** What the store had not taken when `drain` gave up (all zero: everything was stored). */
export interface DrainResult {
  /** Connections whose snapshot or removal was not written. */
  connections: number;
  /** Ended connections whose history record was not written. */
  history: number;
}

export interface PresenceServer extends AsyncDisposable {
  readonly config: ResolvedConfig;
  readonly nodeId: string;
  readonly services: Services;
  listen(): Promise<Listening>;
  /**
   * SIGTERM: stop accepting, tell clients to reconnect (1012), flush every snapshot; waits up to
   * `drainTimeoutMs` for the store and says what it did not take.
   */
  drain(): Promise<DrainResult>;
  close(): Promise<void>;
}

/** The composition root: everything presenced runs is wired here and only here. */
export function createPresenceServer(options: PresenceServerOptions = {}): PresenceServer {
  const {
    clock = systemClock,
    hooks = {},
    store: givenStore,
    flushIntervalMs = 1000,
    drainTimeoutMs = 5000,
    shardCapacity,
    liveActors,
    logger: givenLogger,
    ...rest
  } = options;
  const config = configFromOptions(rest);
  const logger = givenLogger ?? pino({ level: config.logLevel, base: { nodeId: config.nodeId } });
  const store =
    givenStore ??
    (config.redisUrl
      ? createRedisStore({ url: config.redisUrl, prefix: config.redisPrefix, nodeId: config.nodeId, logger, clock })
      : createMemoryStore({ nodeId: config.nodeId, clock }));
  const topics = new Topics(new LocalBus(clock.now()));
  const presence = new PresenceIndex({ topics });
  const feeds = new Feeds({
    topics,
    presence,
    clock,
    stats: () => ({ nodeId: config.nodeId, ...presence.stats(), nodes: [config.nodeId] }),
  });
  const inspection = config.inspect ? createInspection(config.inspect) : null;
  if (inspection)
    if (inspection && config.inspect) {
      logger.info({ relay: redactUrl(config.inspect) }, 'sending actor events to a Stately inspector relay');
    }
  const connections = createConnections({
    config,
    store,
    presence,
    feeds,
    clock,
    logger,
    hooks,
    shardCapacity,
    inspect: inspection?.observer,
    ...(liveActors === undefined ? {} : { liveActors }),
  });
  const services: Services = { config, connections, presence, feeds, store, clock };
  let state: 'starting' | 'serving' | 'draining' | 'closed' = 'starting';
  // A function, so TypeScript does not narrow `state` across the awaits where close() can change it.
  const closed = () => state === 'closed';

  const http = createServer(
    createHttpHandler({ services, ready: () => state === 'serving', sockets: () => transport.counts() }),
  );
  const transport = attachTransport({
    server: http,
    router: appRouter,
    services,
    authenticate: createAuthenticator(config),
    logger,
    hooks,
  });

  /** Opens the store, retrying while it is unreachable, then brings back this node's connections. */
  async function restore() {
    let loaded: LoadResult;
    // How long the restore took, for its log line: a measurement of this process's work, so on the
    // monotonic timer, not the injected clock (which a test may hold still or move by hours).
    let started = performance.now();
    for (let attempt = 0; ; attempt++) {
      if (state === 'closed') return;
      try {
        // Reading can fail too (Redis went away between open and load): retry both, never give up.
        await store.open();
        started = performance.now();
        loaded = await store.loadNode(config.nodeId);
        break;
      } catch (error) {
        logger.warn({ err: error, attempt }, 'store unreachable at start; retrying before restoring');
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 2_000)));
      }
    }
    // Closed while reading: start nothing on a closed server.
    if (closed()) return;
    const { records, skipped, lastAlive } = loaded;
    const readMs = Math.round(performance.now() - started);
    for (const { key, reason } of skipped) logger.warn({ key, reason }, 'skipped a stored connection');
    const restored = connections.start(records as RestorableRecord[], lastAlive ?? clock.now());
    logger.info(
      { restored, skipped: skipped.length, ms: Math.round(performance.now() - started), readMs, store: store.kind },
      restored > 0 ? 'restored connections' : 'nothing to restore',
    );
  }

  const unstored = (): DrainResult => ({ connections: store.pending(), history: store.pendingHistory() });

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
      await restore();
      if (closed()) throw new Error('presenced was closed while it was starting');
      // Only after the restore: a flush writes this node's `:alive` time, and one landing before the
      // restore read it would move the moment a crashed process was last alive forward, extending the
      // grace period of every connection that was live at the crash.
      flusher = setInterval(() => void flush(), flushIntervalMs);
      flusher.unref();
      if (state === 'starting') {
        state = 'serving';
        transport.startAccepting();
      }
      const { port } = http.address() as AddressInfo;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      return { host: config.host, port, url: `http://${host}:${port}`, wsUrl: `ws://${host}:${port}${TRPC_PATH}` };
    },

    async drain() {
      if (state === 'draining' || state === 'closed') return unstored();
      state = 'draining';
      // Real time, not the injected clock: this bounds how long a SIGTERM takes to exit, which a
      // clock held still (tests) or moved must not stretch or cut.
      const deadline = performance.now() + drainTimeoutMs;
      transport.stopAccepting();
      connections.drain();
      // Ends under way first (each waits for the store a bounded time), so none is left half-done.
      await connections.settled();
      // Every snapshot, as of now (sockets closed, so `stale` since now), until the store took them all.
      connections.persistAll();
      do {
        await flush();
        const left = unstored();
        if (left.connections === 0 && left.history === 0) return left;
        await new Promise((resolve) => setTimeout(resolve, 100));
      } while (performance.now() < deadline);
      const left = unstored();
      logger.error(left, 'drain: the store did not take everything in time');
      return left;
    },

    async close() {
      if (state === 'closed') return;
      state = 'closed';
      clearInterval(flusher);
      await transport.close();
      await connections.settled();
      // Flush while the actors still run: a stopped actor's snapshot is not a live connection's.
      await flush();
      connections.stop();
      feeds.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      await store.close();
      inspection?.stop();
    },

    [Symbol.asyncDispose]() {
      return server.close();
    },
  };
  return server;
}

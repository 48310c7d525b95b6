import { pino } from 'pino';
import { WebSocket } from 'ws';
import { createPresenceClient, type PresenceClient, type PresenceClientOptions } from '../../src/client/index.js';
import { createPresenceServer, type PresenceServer, type PresenceServerOptions } from '../../src/server.js';

export interface TestServer extends AsyncDisposable {
  server: PresenceServer;
  url: string;
  wsUrl: string;
  /** A typed client for `userId` (dev auth), closed when the server fixture is disposed. */
  client(userId: string, options?: Partial<PresenceClientOptions>): PresenceClient;
}

/**
 * `PRESENCED_FAST_PATHS` of the test run (the `integration-slow-paths` project sets `false`): the
 * default of every server a test starts or spawns, so the same tests run against both settings.
 */
export const testFastPaths = process.env['PRESENCED_FAST_PATHS'] !== 'false';

/** A server on port 0 with short timeouts unless overridden; dispose with `await using`. */
export async function startServer(options: PresenceServerOptions = {}): Promise<TestServer> {
  const server = createPresenceServer({
    port: 0,
    logger: pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' }),
    fastPaths: testFastPaths,
    ...options,
  });
  const { url, wsUrl } = await server.listen();
  const clients: PresenceClient[] = [];
  return {
    server,
    url,
    wsUrl,
    client(userId, clientOptions = {}) {
      const client = createPresenceClient({
        url: wsUrl,
        userId,
        WebSocket: WebSocket as unknown as PresenceClientOptions['WebSocket'],
        retryBaseMs: 20,
        retryMaxMs: 200,
        ...clientOptions,
      });
      clients.push(client);
      return client;
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(clients.map((client) => client.close()));
      await server.close();
    },
  };
}

/** Collects what an async source yields, for assertions with `vi.waitFor`. */
export function collect<T>(subscribe: (push: (value: T) => void) => { unsubscribe(): void }) {
  const values: T[] = [];
  const subscription = subscribe((value) => values.push(value));
  return { values, unsubscribe: () => subscription.unsubscribe() };
}

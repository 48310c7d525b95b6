/**
 * presenced itself (`node --import tsx src/tools/cli.ts serve`, memory store or `REDIS_URL`).
 * Clients speak tRPC's WebSocket protocol by hand (raw frames, superjson-encoded inputs) rather than
 * through `presenced/client`: with hundreds of clients in the benchmark process the typed client's
 * own cost (links, observables, superjson on both sides) would load the two cores the servers run
 * on. Server-side work is identical: the same procedures, frames and transformer.
 */
import { WebSocket } from 'ws';
import type { Peer, PeerClient } from '../lib/harness.js';
import { startPresenced, type ServerProcess } from '../lib/proc.js';

interface Frame {
  id?: number | string;
  error?: unknown;
  result?: { type?: string; data?: { json?: unknown } };
}

interface PresenceEvent {
  type: string;
  member?: { userId: string };
}

/** A raw tRPC client of the presenced at `wsUrl` (`ws://…/trpc`), ready once `session.info` answered. */
export function connectPresenced(wsUrl: string, userId: string): Promise<PeerClient> {
  const ws = new WebSocket(`${wsUrl}?connectionParams=1`);
  const pending = new Map<number, { resolve(data: unknown): void; reject(error: Error): void }>();
  const subscriptions = new Map<number, (event: PresenceEvent) => void>();
  let nextId = 1;

  function send(method: string, path: string, input?: unknown): { id: number; reply: Promise<unknown> } {
    const id = nextId++;
    const reply = new Promise<unknown>((resolve, reject) => pending.set(id, { resolve, reject }));
    ws.send(JSON.stringify({ id, method, params: { path, input: { json: input } } }));
    return { id, reply };
  }
  const call = (method: 'query' | 'mutation', path: string, input?: unknown) => send(method, path, input).reply;

  const client: PeerClient = {
    heartbeat: () => call('mutation', 'session.heartbeat', { clientTime: Date.now() }).then(() => undefined),
    join: (gameId) => call('mutation', 'game.join', { gameId }).then(() => undefined),
    leave: () => call('mutation', 'game.leave').then(() => undefined),
    members: (gameId) => call('query', 'presence.members', { gameId }).then((rows) => (rows as unknown[]).length),
    watch(gameId, handler) {
      const { id, reply } = send('subscription', 'presence.game', { gameId });
      // Resolved by the first event (the `sync`): from then on every join reaches this client.
      subscriptions.set(id, (event) => {
        pending.get(id)?.resolve(undefined);
        pending.delete(id);
        if (event.type === 'join' && event.member) handler(event.member.userId);
      });
      return reply.then(() => undefined);
    },
    close: () =>
      new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      }),
  };

  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.send(JSON.stringify({ method: 'connectionParams', data: { userId } }));
      call('query', 'session.info').then(() => resolve(client), reject);
    });
    ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      if (text === 'PING') return ws.send('PONG');
      const frame = JSON.parse(text) as Frame;
      if (typeof frame.id !== 'number') return;
      const subscription = subscriptions.get(frame.id);
      if (subscription) {
        // tracked() events arrive as `{ id, data }` inside superjson's `json`.
        const tracked = frame.result?.data?.json as { data?: PresenceEvent } | undefined;
        if (frame.result?.type === 'data' && tracked?.data) subscription(tracked.data);
        return;
      }
      const waiter = pending.get(frame.id);
      if (!waiter) return;
      pending.delete(frame.id);
      if (frame.error !== undefined) waiter.reject(new Error(`tRPC error: ${text.slice(0, 200)}`));
      else waiter.resolve(frame.result?.data?.json);
    });
    ws.once('error', reject);
  });
}

function peer(label: string, store: 'memory' | 'redis'): Peer {
  return {
    label,
    usesRedis: store === 'redis',
    start({ redis, env, nodeArgs }) {
      if (store === 'redis' && !redis) throw new Error('presenced + Redis needs a Redis');
      return startPresenced(
        {
          ...env,
          // Closed-loop clients call far above a real client's rate: the limiter must not refuse them.
          PRESENCED_RATE_LIMIT: '1000000',
          PRESENCED_MAX_CONNECTIONS_PER_USER: '100',
          ...(store === 'redis' && redis ? { REDIS_URL: redis.url } : {}),
        },
        nodeArgs,
      );
    },
    connect: (server: ServerProcess, userId: string) => connectPresenced(server.wsUrl, userId),
  };
}

export const presencedMemory = peer('presenced (memory store)', 'memory');
export const presencedRedis = peer('presenced + Redis', 'redis');

import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createPresenceClient, type PresenceClient, type PresenceClientOptions } from '../../src/client/index.js';
import { createPresenceServer } from '../../src/server.js';
import { parseConnectionRecord } from '../../src/store/record.js';
import { redisKeys } from '../../src/store/redis.js';
import type { PresenceStore } from '../../src/store/types.js';
import { freePort, startRedis } from '../support/redis.js';
import { outcome, RawSocket } from '../support/rawSocket.js';
import { startServer, type TestServer } from '../support/server.js';

/** `GET /health`. */
interface Health {
  status: 'ok' | 'degraded';
  nodeId: string;
  store: 'memory' | 'redis';
  redis?: 'up' | 'down';
  connections: number;
}

async function health(url: string): Promise<Health> {
  return (await (await fetch(`${url}/health`)).json()) as Health;
}

/** The node hash's proof-of-life field: not a connection. */
const ALIVE_FIELD = ':alive';

/** Unhandled rejections anywhere in this process while the test runs (the server is in process). */
function watchRejections() {
  const reasons: unknown[] = [];
  const onRejection = (reason: unknown) => reasons.push(reason);
  process.on('unhandledRejection', onRejection);
  return {
    reasons,
    [Symbol.dispose]() {
      process.off('unhandledRejection', onRejection);
    },
  };
}

/**
 * Heartbeats from every client in `clients`, one round per tick (a round waits for every reply
 * before the next starts), for at most `maxMs`. Counts the heartbeats sent while the store was down
 * and answered, and samples the write-behind queue while it is down.
 */
function startHeartbeats(clients: Set<PresenceClient>, store: PresenceStore, everyMs = 100, maxMs = 30_000) {
  const stats = { answered: 0, answeredWhileDown: 0, failures: [] as string[], maxPendingWhileDown: 0 };
  const sample = () => {
    if (store.status() === 'down') stats.maxPendingWhileDown = Math.max(stats.maxPendingWhileDown, store.pending());
  };
  let round: Promise<void> | null = null;
  const until = Date.now() + maxMs;
  const timer = setInterval(() => {
    sample();
    if (Date.now() > until) return clearInterval(timer);
    if (round) return;
    round = Promise.all(
      [...clients].map(async (client) => {
        const down = store.status() === 'down';
        try {
          await client.api.session.heartbeat.mutate();
          stats.answered++;
          if (down) stats.answeredWhileDown++;
        } catch (error) {
          stats.failures.push(String(error));
        }
        sample();
      }),
    ).then(() => {
      round = null;
    });
  }, everyMs);
  return {
    stats,
    async stop() {
      clearInterval(timer);
      await round;
    },
  };
}

async function scanKeys(client: Redis, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const chunk of client.scanStream({ match: pattern, count: 1000 }) as AsyncIterable<string[]>) {
    keys.push(...chunk);
  }
  return keys;
}

const sorted = (values: Iterable<string>) => [...values].sort();

/**
 * The stored state is the live one: the node hash holds exactly the live connections with their
 * state and game, every user and game set holds exactly what presence holds, and nothing else of
 * this prefix is left (no set of a user or game without live connections).
 */
async function expectStoredEqualsLive(t: TestServer, client: Redis, prefix: string) {
  const { connections, presence } = t.server.services;
  const keys = redisKeys(prefix);
  const live = connections.list({ limit: 10_000 });
  const { [ALIVE_FIELD]: alive, ...fields } = await client.hgetall(keys.node(t.server.nodeId));
  expect(alive).toMatch(/^\d+$/);
  expect(sorted(Object.keys(fields))).toEqual(sorted(live.map((c) => c.connectionId)));
  for (const conn of live) {
    const parsed = parseConnectionRecord(fields[conn.connectionId] ?? '');
    expect(parsed).toMatchObject({
      ok: true,
      value: { connectionId: conn.connectionId, userId: conn.userId, state: conn.state, gameId: conn.gameId },
    });
  }

  const users = [...new Set(live.map((c) => c.userId))];
  const games = [...new Set(live.flatMap((c) => (c.gameId ? [c.gameId] : [])))];
  const pipeline = client.pipeline();
  for (const userId of users) pipeline.smembers(keys.user(userId));
  for (const gameId of games) pipeline.smembers(keys.game(gameId));
  const replies = (await pipeline.exec()) ?? [];
  const members = replies.map(([error, value]) => {
    expect(error).toBeNull();
    return sorted(value as string[]);
  });
  expect(members).toEqual([
    ...users.map((userId) => sorted(presence.connectionsOfUser(userId).map((view) => view.connectionId))),
    ...games.map((gameId) => sorted(presence.members(gameId).map((member) => member.connectionId))),
  ]);

  const stored = (await scanKeys(client, `${prefix}:*`)).filter((key) => key !== keys.history);
  expect(sorted(stored)).toEqual(
    sorted([keys.node(t.server.nodeId), ...users.map(keys.user), ...games.map(keys.game)]),
  );
}

/** Every connection id in any set or in the node hash of this prefix. */
async function storedIds(client: Redis, prefix: string, nodeId: string): Promise<Set<string>> {
  const keys = redisKeys(prefix);
  const ids = new Set(await client.hkeys(keys.node(nodeId)));
  for (const key of await scanKeys(client, `${prefix}:*`)) {
    if (key === keys.node(nodeId) || key === keys.history) continue;
    for (const id of await client.smembers(key)) ids.add(id);
  }
  return ids;
}

const ids = (clients: PresenceClient[]) => clients.map((client) => client.session()?.connectionId ?? '');

describe('Redis outage: the node keeps serving from memory and the stored state catches up', () => {
  it('Redis killed under 200 heartbeating clients, then restarted empty', async () => {
    using rejections = watchRejections();
    await using redis = await startRedis();
    const prefix = redis.prefix();
    await using t = await startServer({
      redisUrl: redis.url,
      redisPrefix: prefix,
      flushIntervalMs: 100,
      // Heartbeats every 100 ms move `staleAt` by half of staleMs every 500 ms: each connection is
      // marked for the store again and again during the outage.
      staleMs: 1_000,
      expireMs: 60_000,
    });
    const { store, connections } = t.server.services;
    const clients = Array.from({ length: 200 }, (_, i) => t.client(`user-${i}`, { heartbeat: false }));
    await Promise.all(clients.map((client) => client.ready));
    await Promise.all(clients.slice(0, 100).map((client, i) => client.api.game.join.mutate({ gameId: `g${i % 10}` })));
    const assertions = redis.client();
    await vi.waitFor(() => expectStoredEqualsLive(t, assertions, prefix), { timeout: 10_000, interval: 100 });

    const beating = new Set(clients);
    const load = startHeartbeats(beating, store);
    await vi.waitFor(() => expect(load.stats.answered).toBeGreaterThanOrEqual(400), { timeout: 10_000 });

    await redis.kill();
    await vi.waitFor(() => expect(store.status()).toBe('down'), { timeout: 5_000, interval: 10 });
    await vi.waitFor(async () =>
      expect(await health(t.url)).toEqual({
        status: 'degraded',
        nodeId: t.server.nodeId,
        store: 'redis',
        redis: 'down',
        connections: 200,
        sockets: { authenticated: 200, pending: 0 },
      }),
    );

    // Ten connections end during the outage (they were in games g0…g9).
    const leavers = clients.slice(90, 100);
    for (const client of leavers) beating.delete(client);
    const leaverIds = ids(leavers);
    expect(new Set(leaverIds.map((id) => connections.get(id)?.context.gameId))).toEqual(
      new Set(Array.from({ length: 10 }, (_, i) => `g${i}`)),
    );
    expect(await Promise.all(leavers.map((client) => client.api.session.leave.mutate()))).toEqual(
      leavers.map(() => ({ ok: true })),
    );
    await vi.waitFor(() => expect(connections.size).toBe(190));

    // Twenty join games, five move to another, five new connections open and join.
    const joiners = clients.slice(100, 120);
    const joined = await Promise.all(
      joiners.map((client, i) => client.api.game.join.mutate({ gameId: `late-${i % 2}` })),
    );
    joined.forEach((reply, i) => {
      expect(reply.gameId).toBe(`late-${i % 2}`);
      expect(reply.members.map((m) => m.connectionId)).toContain(joiners[i]?.session()?.connectionId);
    });
    const movers = clients.slice(0, 5);
    await Promise.all(movers.map((client) => client.api.game.join.mutate({ gameId: 'late-0' })));
    const newcomers = Array.from({ length: 5 }, (_, i) => t.client(`new-${i}`, { heartbeat: false }));
    await Promise.all(newcomers.map((client) => client.ready));
    await Promise.all(newcomers.map((client) => client.api.game.join.mutate({ gameId: 'late-1' })));
    for (const client of newcomers) beating.add(client);

    const [first] = clients;
    if (!first) throw new Error('no clients');
    expect(await first.api.session.heartbeat.mutate()).toMatchObject({ state: 'inGame' });
    const late0 = await first.api.presence.members.query({ gameId: 'late-0' });
    expect(sorted(late0.map((m) => m.connectionId))).toEqual(
      sorted([...ids(joiners.filter((_, i) => i % 2 === 0)), ...ids(movers)]),
    );

    // However many heartbeats the outage sees, the queue holds at most one entry per connection.
    await vi.waitFor(() => expect(load.stats.answeredWhileDown).toBeGreaterThanOrEqual(2_000), { timeout: 15_000 });
    expect(store.status()).toBe('down');
    expect(store.pending()).toBeGreaterThan(0);
    expect(load.stats.maxPendingWhileDown).toBeLessThanOrEqual(205);
    expect(load.stats.failures).toEqual([]);
    expect(await health(t.url)).toMatchObject({ status: 'degraded', redis: 'down', connections: 195 });

    await redis.start();
    await vi.waitFor(async () => expect(await health(t.url)).toMatchObject({ status: 'ok', redis: 'up' }), {
      timeout: 5_000,
      interval: 20,
    });
    const restored = redis.client();
    await vi.waitFor(() => expectStoredEqualsLive(t, restored, prefix), { timeout: 10_000, interval: 50 });

    const stored = await storedIds(restored, prefix, t.server.nodeId);
    for (const id of leaverIds) expect(stored.has(id)).toBe(false);
    expect(sorted(await restored.smembers(redisKeys(prefix).game('late-1')))).toEqual(
      sorted([...ids(joiners.filter((_, i) => i % 2 === 1)), ...ids(newcomers)]),
    );

    await load.stop();
    expect(load.stats.failures).toEqual([]);
    expect(rejections.reasons).toEqual([]);
  });

  it('a connection whose flush failed after Redis applied part of it, and that ended before any flush succeeded, leaves no record behind', async () => {
    await using redis = await startRedis();
    const prefix = redis.prefix();
    await using t = await startServer({ redisUrl: redis.url, redisPrefix: prefix, flushIntervalMs: 50 });
    const { store } = t.server.services;
    const assertions = redis.client();
    const keys = redisKeys(prefix);
    // The user's index key holds a string: the flush's HSET of the record succeeds, its SADD fails
    // (WRONGTYPE), so the flush as a whole failed although Redis holds the record, as after a
    // command timeout whose command Redis did run.
    await assertions.set(keys.user('ghost'), 'not a set');
    const ghost = t.client('ghost', { heartbeat: false });
    const { connectionId } = await ghost.ready;
    await vi.waitFor(async () => expect(await assertions.hexists(keys.node(t.server.nodeId), connectionId)).toBe(1));
    // Its end fails the same way (SREM on the string): the removal must wait in the queue.
    await ghost.api.session.leave.mutate();
    await vi.waitFor(() => expect(t.server.services.connections.get(connectionId)).toBeUndefined());
    expect(store.pending()).toBeGreaterThanOrEqual(1);

    await assertions.del(keys.user('ghost'));
    // The queued removal goes out with the next flush: nothing a later restart could bring back.
    await vi.waitFor(() => expectStoredEqualsLive(t, assertions, prefix), { timeout: 5_000, interval: 50 });
    expect(await assertions.hexists(keys.node(t.server.nodeId), connectionId)).toBe(0);
    expect(await storedIds(assertions, prefix, t.server.nodeId)).not.toContain(connectionId);
  });

  it('half-open Redis (SIGSTOP): degraded within seconds, calls keep working, SIGCONT catches up', async () => {
    using rejections = watchRejections();
    await using redis = await startRedis();
    const prefix = redis.prefix();
    await using t = await startServer({
      redisUrl: redis.url,
      redisPrefix: prefix,
      flushIntervalMs: 100,
      staleMs: 1_000,
      expireMs: 60_000,
    });
    const { store, connections } = t.server.services;
    const clients = Array.from({ length: 20 }, (_, i) => t.client(`user-${i}`, { heartbeat: false }));
    await Promise.all(clients.map((client) => client.ready));
    await Promise.all(clients.slice(0, 10).map((client) => client.api.game.join.mutate({ gameId: 'g-a' })));
    const assertions = redis.client();
    await vi.waitFor(() => expectStoredEqualsLive(t, assertions, prefix), { timeout: 10_000, interval: 100 });
    const beating = new Set(clients);
    const load = startHeartbeats(beating, store);

    redis.pause();
    await vi.waitFor(async () => expect(await health(t.url)).toMatchObject({ status: 'degraded', redis: 'down' }), {
      timeout: 5_000,
      interval: 20,
    });

    // While nothing answers: two connections end, five join another game, and calls answer.
    const leavers = clients.slice(0, 2);
    for (const client of leavers) beating.delete(client);
    const leaverIds = ids(leavers);
    await Promise.all(leavers.map((client) => client.api.session.leave.mutate()));
    await vi.waitFor(() => expect(connections.size).toBe(18));
    const joiners = clients.slice(10, 15);
    await Promise.all(joiners.map((client) => client.api.game.join.mutate({ gameId: 'g-b' })));
    const [, , third] = clients;
    if (!third) throw new Error('no clients');
    expect(await third.api.session.heartbeat.mutate()).toMatchObject({ state: 'inGame' });
    expect(sorted((await third.api.presence.members.query({ gameId: 'g-b' })).map((m) => m.connectionId))).toEqual(
      sorted(ids(joiners)),
    );
    await vi.waitFor(() => expect(load.stats.answeredWhileDown).toBeGreaterThanOrEqual(200), { timeout: 10_000 });
    expect(store.status()).toBe('down');
    expect(load.stats.maxPendingWhileDown).toBeLessThanOrEqual(20);

    redis.resume();
    await vi.waitFor(async () => expect(await health(t.url)).toMatchObject({ status: 'ok', redis: 'up' }), {
      timeout: 5_000,
      interval: 20,
    });
    await vi.waitFor(() => expectStoredEqualsLive(t, assertions, prefix), { timeout: 10_000, interval: 50 });
    const stored = await storedIds(assertions, prefix, t.server.nodeId);
    for (const id of leaverIds) expect(stored.has(id)).toBe(false);
    // Regression: history of connections that ended during the outage was dropped, not written later.
    await vi.waitFor(async () => {
      const history = await store.history({ limit: 100 });
      expect(sorted(history.filter((h) => h.reason === 'left').map((h) => h.connectionId))).toEqual(sorted(leaverIds));
    });

    await load.stop();
    expect(load.stats.failures).toEqual([]);
    expect(rejections.reasons).toEqual([]);
  });
});

describe('Redis outage: the write-behind queue is bounded by connections, not by churn', () => {
  it('regression: every connection that ended during the outage left a queue entry until a flush succeeded', async () => {
    using rejections = watchRejections();
    await using redis = await startRedis();
    const prefix = redis.prefix();
    await using t = await startServer({ redisUrl: redis.url, redisPrefix: prefix, flushIntervalMs: 100 });
    const { store, connections } = t.server.services;
    const held = Array.from({ length: 20 }, (_, i) => t.client(`held-${i}`, { heartbeat: false }));
    await Promise.all(held.map((client) => client.ready));
    await Promise.all(held.map((client) => client.api.game.join.mutate({ gameId: 'g1' })));
    const assertions = redis.client();
    await vi.waitFor(() => expectStoredEqualsLive(t, assertions, prefix), { timeout: 10_000, interval: 100 });

    await redis.kill();
    await vi.waitFor(() => expect(store.status()).toBe('down'), { timeout: 5_000, interval: 10 });
    // Five of the connections Redis holds end: their removals must wait for Redis.
    const leavers = held.slice(0, 5);
    await Promise.all(leavers.map((client) => client.api.session.leave.mutate()));

    // 400 connect + join + leave cycles, 20 at a time, sampling the queue all along.
    let maxPending = 0;
    const sample = setInterval(() => (maxPending = Math.max(maxPending, store.pending())), 5);
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          await using socket = await RawSocket.open(t.wsUrl, { userId: `churn-${round}-${i}` });
          await socket.request('mutation', 'game.join', { gameId: 'g1' });
          maxPending = Math.max(maxPending, store.pending());
          expect(outcome(await socket.request('mutation', 'session.leave'))).toBe('OK');
        }),
      );
    }
    clearInterval(sample);
    expect(store.status()).toBe('down');
    // The bound: live connections (15 held + at most 20 churning at once) plus the 5 held ones that
    // ended. Before, it grew with every ended connection (400 here).
    expect(maxPending).toBeLessThanOrEqual(15 + 20 + 5);
    expect(connections.size).toBe(15);
    expect(store.pending()).toBeLessThanOrEqual(15 + 5);

    await redis.start();
    const restored = redis.client();
    await vi.waitFor(() => expectStoredEqualsLive(t, restored, prefix), { timeout: 10_000, interval: 50 });
    expect(store.pending()).toBe(0);
    // Every end is in history once Redis is back, the 400 that Redis never held included.
    await vi.waitFor(async () => expect(await store.history({ limit: 1_000 })).toHaveLength(405), { timeout: 5_000 });
    expect(rejections.reasons).toEqual([]);
  });
});

describe('Redis unreachable at start', () => {
  for (const how of ['not started yet', 'paused (SIGSTOP)'] as const) {
    it(`Redis ${how}: /health/ready is 503 while the node waits, 200 once Redis answers`, async () => {
      using rejections = watchRejections();
      await using redis = await startRedis();
      if (how === 'not started yet') await redis.kill();
      else redis.pause();
      const port = await freePort();
      await using server = createPresenceServer({
        port,
        redisUrl: redis.url,
        redisPrefix: redis.prefix(),
        flushIntervalMs: 100,
        logger: pino({ level: 'silent' }),
      });
      const listening = server.listen();
      const outcome = { settled: 'pending', error: '' };
      listening.then(
        () => (outcome.settled = 'listening'),
        (error: unknown) => Object.assign(outcome, { settled: 'rejected', error: String(error) }),
      );
      const url = `http://127.0.0.1:${port}`;

      // The HTTP server answers before the store is reachable: not ready, and degraded.
      const started = performance.now();
      const statuses: number[] = [];
      await vi.waitFor(
        async () => {
          statuses.push((await fetch(`${url}/health/ready`)).status);
          expect(performance.now() - started).toBeGreaterThan(1_500);
        },
        { timeout: 5_000, interval: 100 },
      );
      expect(statuses.length).toBeGreaterThan(3);
      expect(new Set(statuses)).toEqual(new Set([503]));
      expect(await health(url)).toMatchObject({ status: 'degraded', store: 'redis', redis: 'down' });
      // Still waiting for the store: listen() neither gave up nor claimed to serve.
      expect(outcome).toEqual({ settled: 'pending', error: '' });

      if (how === 'not started yet') await redis.start();
      else redis.resume();
      await vi.waitFor(async () => expect((await fetch(`${url}/health/ready`)).status).toBe(200), {
        timeout: 10_000,
        interval: 20,
      });
      await expect(listening).resolves.toMatchObject({ port });
      expect(await health(url)).toMatchObject({ status: 'ok', redis: 'up' });

      // And it serves.
      const client = createPresenceClient({
        url: `ws://127.0.0.1:${port}/trpc`,
        userId: 'alice',
        WebSocket: WebSocket as unknown as PresenceClientOptions['WebSocket'],
      });
      await using _client = { [Symbol.asyncDispose]: () => client.close() };
      await client.ready;
      expect((await client.api.game.join.mutate({ gameId: 'g1' })).members).toHaveLength(1);
      expect(rejections.reasons).toEqual([]);
    });
  }
});

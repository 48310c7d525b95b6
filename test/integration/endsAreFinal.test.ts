import { describe, expect, it, vi } from 'vitest';
import type { PresenceEvent, SessionEvent, SessionInfo } from '../../src/protocol.js';
import { redisKeys } from '../../src/store/redis.js';
import { RawSocket, type RawReply } from '../support/rawSocket.js';
import { startRedis } from '../support/redis.js';
import { startServer } from '../support/server.js';
import { spawnServer } from '../support/serverProcess.js';

function dataOf<T>(reply: RawReply): T {
  if (reply.error) throw new Error(`${reply.error.data.code}: ${reply.error.message}`);
  return reply.result?.data as T;
}

/** Every presence event a raw `presence.game` subscription received so far. */
function eventsOf(socket: RawSocket, subscription: number): PresenceEvent[] {
  return socket.replies
    .filter((reply) => reply.id === subscription && reply.result?.type === 'data')
    .map((reply) => (reply.result?.data as { data: PresenceEvent }).data);
}

const leavesOf = (events: PresenceEvent[]) =>
  events.flatMap((event) => (event.type === 'leave' ? [event.member.connectionId] : []));

// Real server processes (tsx start-up included) and a grace period to wait out.
describe('an end is final: kill -9 right after it is acknowledged', { timeout: 60_000 }, () => {
  for (const how of ['admin.kick', 'session.leave'] as const) {
    it(`regression: after a ${how} reply and kill -9, the session came back at restart and was announced again`, async () => {
      await using redis = await startRedis();
      const prefix = redis.prefix();
      const keys = redisKeys(prefix);
      const env = {
        REDIS_URL: redis.url,
        PRESENCED_REDIS_PREFIX: prefix,
        PRESENCED_NODE_ID: 'node-ends',
        PRESENCED_STALE_MS: '60000',
        // Long enough for the restart (tsx start-up) to come before bob's restored deadline.
        PRESENCED_EXPIRE_MS: '4000',
        PRESENCED_WARN_MS: '0',
      };
      const first = await spawnServer(env);
      const alice = await RawSocket.open(first.wsUrl, { userId: 'alice' });
      const bob = await RawSocket.open(first.wsUrl, { userId: 'bob' });
      const admin = await RawSocket.open(first.wsUrl, { userId: 'root', role: 'admin' });
      const before = dataOf<SessionInfo>(await alice.request('query', 'session.info'));
      const bobBefore = dataOf<SessionInfo>(await bob.request('query', 'session.info'));
      dataOf(await alice.request('mutation', 'game.join', { gameId: 'g1' }));
      dataOf(await bob.request('mutation', 'game.join', { gameId: 'g1' }));
      // Both are in Redis with their game (the write-behind flushes every second).
      const assertions = redis.client();
      await vi.waitFor(async () => expect(await assertions.scard(keys.game('g1'))).toBe(2), { timeout: 5_000 });

      if (how === 'admin.kick') {
        const reply = await admin.request('mutation', 'admin.kick', { connectionId: before.connectionId });
        expect(dataOf(reply)).toEqual({ kicked: true });
      } else {
        expect(dataOf(await alice.request('mutation', 'session.leave'))).toEqual({ ok: true });
      }
      await first.stop('SIGKILL');
      await Promise.all([alice.close(), bob.close(), admin.close()]);

      await using second = await spawnServer(env);
      await using watcher = await RawSocket.open(second.wsUrl, { userId: 'root', role: 'admin' });
      const subscription = watcher.call('subscription', 'presence.game', { gameId: 'g1' });
      const rows = dataOf<{ connectionId: string; userId: string; state: string }[]>(
        await watcher.request('query', 'admin.connections', {}),
      );
      expect(rows.filter((row) => row.userId !== 'root').map((row) => [row.connectionId, row.state])).toEqual([
        [bobBefore.connectionId, 'stale'],
      ]);
      const members = dataOf<{ connectionId: string }[]>(
        await watcher.request('query', 'presence.members', { gameId: 'g1' }),
      );
      expect(members.map((m) => m.connectionId)).toEqual([bobBefore.connectionId]);

      // The old resume token gives a fresh session.
      await using again = await RawSocket.open(second.wsUrl, { userId: 'alice', resume: before.resumeToken });
      const after = dataOf<SessionInfo>(await again.request('query', 'session.info'));
      expect(after.resumed).toBe(false);
      expect(after.connectionId).not.toBe(before.connectionId);

      // Bob, restored stale, expires 4 s after the crash: the subscription sees his leave, and none
      // for alice (restored, she would have expired on the same deadline).
      await watcher.until(
        'bob leaving',
        () => (leavesOf(eventsOf(watcher, subscription)).length > 0 ? true : undefined),
        10_000,
      );
      expect(leavesOf(eventsOf(watcher, subscription))).toEqual([bobBefore.connectionId]);
      const history = dataOf<{ connectionId: string; reason: string }[]>(
        await watcher.request('query', 'admin.history', { userId: 'alice' }),
      );
      expect(history.map((h) => [h.connectionId, h.reason])).toEqual([
        [before.connectionId, how === 'admin.kick' ? 'kicked' : 'left'],
      ]);
    });
  }
});

describe('an end is stored before it is announced', () => {
  for (const how of ['expiry', 'admin.kick', 'session.leave', 'replace'] as const) {
    it(`${how}: when a member sees the leave, Redis no longer has the connection`, async () => {
      await using redis = await startRedis();
      const prefix = redis.prefix();
      const keys = redisKeys(prefix);
      await using t = await startServer({
        redisUrl: redis.url,
        redisPrefix: prefix,
        // No timed flush during the test: only the direct end can remove the record.
        flushIntervalMs: 600_000,
        staleMs: 60_000,
        expireMs: 300,
        warnMs: 0,
        userPolicy: how === 'replace' ? 'replace' : 'multi',
      });
      const { store, nodeId } = { store: t.server.services.store, nodeId: t.server.nodeId };
      const assertions = redis.client();
      const bob = t.client('bob');
      await bob.ready;
      await bob.api.game.join.mutate({ gameId: 'g1' });
      await using alice = await RawSocket.open(t.wsUrl, { userId: 'alice' });
      const { connectionId } = dataOf<SessionInfo>(await alice.request('query', 'session.info'));
      const sessionEvents = alice.call('subscription', 'session.events');
      dataOf(await alice.request('mutation', 'game.join', { gameId: 'g1' }));
      await store.flush();
      expect(await assertions.hexists(keys.node(nodeId), connectionId)).toBe(1);

      // What Redis holds at the moment each announcement arrives.
      const inRedis = () =>
        Promise.all([
          assertions.hexists(keys.node(nodeId), connectionId),
          assertions.sismember(keys.game('g1'), connectionId),
          assertions.sismember(keys.user('alice'), connectionId),
        ]);
      const seenAtLeave: Promise<number[]>[] = [];
      let synced = false;
      const subscription = bob.api.presence.game.subscribe(
        { gameId: 'g1' },
        {
          onData: ({ data }) => {
            if (data.type === 'sync') synced = true;
            if (data.type === 'leave' && data.member.connectionId === connectionId) seenAtLeave.push(inRedis());
          },
        },
      );
      await using _subscription = { [Symbol.asyncDispose]: () => Promise.resolve(subscription.unsubscribe()) };

      await vi.waitFor(() => expect(synced).toBe(true));
      let replacement: RawSocket | null = null;
      if (how === 'expiry') await alice.close();
      if (how === 'admin.kick') {
        await using admin = await RawSocket.open(t.wsUrl, { userId: 'root', role: 'admin' });
        expect(dataOf(await admin.request('mutation', 'admin.kick', { connectionId }))).toEqual({ kicked: true });
      }
      if (how === 'session.leave')
        expect(dataOf(await alice.request('mutation', 'session.leave'))).toEqual({ ok: true });
      if (how === 'replace') {
        replacement = await RawSocket.open(t.wsUrl, { userId: 'alice' });
        dataOf(await replacement.request('query', 'session.info'));
      }
      await vi.waitFor(() => expect(seenAtLeave).toHaveLength(1), { timeout: 5_000 });
      expect(await seenAtLeave[0]).toEqual([0, 0, 0]);

      if (how === 'replace') {
        // The `replaced` session event went out after the store took the end, and before `expired`.
        const events = await alice.until('the end events', () => {
          const seen = alice.replies
            .filter((reply) => reply.id === sessionEvents && reply.result?.type === 'data')
            .map((reply) => reply.result?.data as SessionEvent);
          return seen.some((event) => event.type === 'expired') ? seen : undefined;
        });
        expect(events.filter((e) => e.type !== 'state').map((e) => e.type)).toEqual(['replaced', 'expired']);
        expect((await alice.closed).code).toBe(4001);
        await replacement?.close();
      }
      const history = await store.history({ userId: 'alice', limit: 10 });
      expect(history.map((h) => h.connectionId)).toEqual([connectionId]);
    });
  }
});

describe('history lists the most recent games only', () => {
  it('regression: 4,000 joins on one connection made a 524 KB history record; it lists the 32 most recent, last joined last', async () => {
    await using t = await startServer({ rateLimit: 100_000 });
    const alice = t.client('alice', { heartbeat: false });
    const { connectionId } = await alice.ready;
    for (let i = 0; i < 4_000; i++) await alice.api.game.join.mutate({ gameId: `g${i}` });
    // Joining an older game again makes it the most recent one.
    await alice.api.game.join.mutate({ gameId: 'g3970' });
    expect(t.server.services.connections.get(connectionId)?.games?.size).toBe(32);
    await alice.api.session.leave.mutate();
    const [record] = await t.server.services.store.history({ userId: 'alice', limit: 1 });
    const expected = Array.from({ length: 32 }, (_, i) => `g${3_968 + i}`).filter((g) => g !== 'g3970');
    expect(record?.games).toEqual([...expected, 'g3970']);
    expect(JSON.stringify(record).length).toBeLessThan(2_000);
  });
});

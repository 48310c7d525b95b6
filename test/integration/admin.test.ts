import { WebSocket } from 'ws';
import { describe, expect, it, vi } from 'vitest';
import type { PresenceClient, PresenceClientOptions } from '../../src/client/index.js';
import { CloseCode, type AdminStats, type PresenceEvent } from '../../src/protocol.js';
import { collect, startServer } from '../support/server.js';

const USER_AGENT = 'presenced-admin-test/1.0';

/** `ws` with a User-Agent header, so `admin.connections` has one to report. */
class UserAgentWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, { headers: { 'user-agent': USER_AGENT } });
  }
}
const withUserAgent: Partial<PresenceClientOptions> = {
  WebSocket: UserAgentWebSocket as unknown as PresenceClientOptions['WebSocket'],
};

function closeCodes(client: PresenceClient): number[] {
  const codes: number[] = [];
  client.on('close', (close) => codes.push(close.code));
  return codes;
}

function watchGame(client: PresenceClient, gameId: string) {
  return collect<PresenceEvent>((push) =>
    client.api.presence.game.subscribe({ gameId }, { onData: (value) => push(value.data) }),
  );
}

describe('admin access', () => {
  it('every admin procedure is FORBIDDEN without the admin role', async () => {
    await using t = await startServer();
    const admin = t.client('root', { role: 'admin' });
    const alice = t.client('alice');
    const mallory = t.client('mallory', { role: 'user' });
    const [, aliceInfo] = await Promise.all([admin.ready, alice.ready, mallory.ready]);
    const aliceCloses = closeCodes(alice);
    const forbidden = { data: { code: 'FORBIDDEN' } };

    for (const client of [alice, mallory]) {
      await expect(client.api.admin.stats.query()).rejects.toMatchObject(forbidden);
      await expect(client.api.admin.connections.query({})).rejects.toMatchObject(forbidden);
      await expect(client.api.admin.connections.query()).rejects.toMatchObject(forbidden);
      await expect(client.api.admin.kick.mutate({ connectionId: aliceInfo.connectionId })).rejects.toMatchObject(
        forbidden,
      );
      await expect(client.api.admin.history.query()).rejects.toMatchObject(forbidden);

      const errors: unknown[] = [];
      const values: AdminStats[] = [];
      const subscription = client.api.admin.watch.subscribe(undefined, {
        onData: (value) => values.push(value),
        onError: (error) => errors.push(error),
      });
      await vi.waitFor(() => expect(errors).toHaveLength(1));
      expect(errors[0]).toMatchObject(forbidden);
      expect(values).toEqual([]);
      subscription.unsubscribe();
    }

    // The refused kick changed nothing.
    await expect(alice.api.session.info.query()).resolves.toMatchObject({ connectionId: aliceInfo.connectionId });
    expect(aliceCloses).toEqual([]);
    // The admin role works on the same server.
    await expect(admin.api.admin.stats.query()).resolves.toMatchObject({ nodeId: t.server.nodeId });
  });
});

describe('admin.stats', () => {
  it('counts every connection, stale ones included', async () => {
    await using t = await startServer({ staleMs: 200, expireMs: 10_000, heartbeatMs: 40 });
    const admin = t.client('root', { role: 'admin' });
    const alice = t.client('alice', { heartbeat: false });
    const bob = t.client('bob');
    const carol = t.client('carol');
    await Promise.all([admin.ready, alice.ready, bob.ready, carol.ready]);
    await alice.api.game.join.mutate({ gameId: 'g1' });
    await bob.api.game.join.mutate({ gameId: 'g1' });

    const active = await admin.api.admin.stats.query();
    expect(active).toMatchObject({
      nodeId: t.server.nodeId,
      connections: 4,
      users: 4,
      games: 1,
      byState: { connected: 2, inGame: 2, stale: 0 },
      perGame: { g1: 2 },
    });

    // alice goes silent and stale; she still counts, in her game too.
    await vi.waitFor(
      async () => {
        const stats = await admin.api.admin.stats.query();
        expect(stats.byState).toEqual({ connected: 2, inGame: 1, stale: 1 });
      },
      { timeout: 3_000 },
    );
    const stats = await admin.api.admin.stats.query();
    expect(stats.connections).toBe(stats.byState.connected + stats.byState.inGame + stats.byState.stale);
    expect(stats).toMatchObject({ nodeId: t.server.nodeId, connections: 4, users: 4, games: 1, perGame: { g1: 2 } });
    expect(stats.nodes).toContain(t.server.nodeId);

    // A second connection of a user counts as a connection, not as a user.
    const carol2 = t.client('carol');
    await carol2.ready;
    await carol2.api.game.join.mutate({ gameId: 'g2' });
    await expect(admin.api.admin.stats.query()).resolves.toMatchObject({
      connections: 5,
      users: 4,
      games: 2,
      perGame: { g1: 2, g2: 1 },
    });
  });
});

describe('admin.connections', () => {
  it('lists connections with ip, userAgent and Dates, filtered by userId, gameId and limit', async () => {
    await using t = await startServer();
    const admin = t.client('root', { ...withUserAgent, role: 'admin' });
    const alice = t.client('alice', withUserAgent);
    const alice2 = t.client('alice', withUserAgent);
    const bob = t.client('bob', withUserAgent);
    const [, aliceInfo, alice2Info, bobInfo] = await Promise.all([admin.ready, alice.ready, alice2.ready, bob.ready]);
    await alice.api.game.join.mutate({ gameId: 'g1' });
    await bob.api.game.join.mutate({ gameId: 'g1' });

    const all = await admin.api.admin.connections.query();
    expect(all).toHaveLength(4);
    for (const connection of all) {
      expect(connection.nodeId).toBe(t.server.nodeId);
      expect(connection.ip).toMatch(/127\.0\.0\.1$/);
      expect(connection.userAgent).toBe(USER_AGENT);
      expect(connection.connectedAt).toBeInstanceOf(Date);
      expect(connection.lastSeen).toBeInstanceOf(Date);
      expect(connection.expiresAt).toBeNull();
    }

    const ofAlice = await admin.api.admin.connections.query({ userId: 'alice' });
    expect(ofAlice.map((c) => c.connectionId).sort()).toEqual([aliceInfo.connectionId, alice2Info.connectionId].sort());
    expect(ofAlice.every((c) => c.userId === 'alice')).toBe(true);

    const inGame = await admin.api.admin.connections.query({ gameId: 'g1' });
    expect(inGame.map((c) => c.connectionId).sort()).toEqual([aliceInfo.connectionId, bobInfo.connectionId].sort());
    for (const connection of inGame) expect(connection).toMatchObject({ gameId: 'g1', state: 'inGame' });

    const both = await admin.api.admin.connections.query({ userId: 'alice', gameId: 'g1' });
    expect(both.map((c) => c.connectionId)).toEqual([aliceInfo.connectionId]);

    await expect(admin.api.admin.connections.query({ limit: 1 })).resolves.toHaveLength(1);
    await expect(admin.api.admin.connections.query({ limit: 3 })).resolves.toHaveLength(3);
    const oneOfAlice = await admin.api.admin.connections.query({ userId: 'alice', limit: 1 });
    expect(oneOfAlice).toHaveLength(1);
    expect(oneOfAlice[0]?.userId).toBe('alice');
    await expect(admin.api.admin.connections.query({ userId: 'nobody' })).resolves.toEqual([]);
  });
});

describe('admin.kick', () => {
  it('ends the connection: kicked, closed with 4002, members see leave kicked', async () => {
    await using t = await startServer();
    const admin = t.client('root', { role: 'admin' });
    const alice = t.client('alice');
    const [, aliceInfo] = await Promise.all([admin.ready, alice.ready]);
    const aliceCloses = closeCodes(alice);
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const seen = watchGame(admin, 'g1');
    await vi.waitFor(() => expect(seen.values.map((e) => e.type)).toEqual(['sync']));

    await expect(admin.api.admin.kick.mutate({ connectionId: aliceInfo.connectionId })).resolves.toEqual({
      kicked: true,
    });
    await vi.waitFor(() => expect(aliceCloses).toEqual([CloseCode.kicked]));
    await vi.waitFor(() => expect(seen.values.map((e) => e.type)).toEqual(['sync', 'leave']));
    expect(seen.values[1]).toMatchObject({
      type: 'leave',
      gameId: 'g1',
      member: { userId: 'alice', connectionId: aliceInfo.connectionId },
      reason: 'kicked',
    });
    await expect(admin.api.admin.connections.query({ userId: 'alice' })).resolves.toEqual([]);
    await expect(admin.api.admin.history.query({ userId: 'alice' })).resolves.toMatchObject([
      { connectionId: aliceInfo.connectionId, reason: 'kicked', games: ['g1'] },
    ]);

    // Already gone, or never there: nothing to kick.
    await expect(admin.api.admin.kick.mutate({ connectionId: aliceInfo.connectionId })).resolves.toEqual({
      kicked: false,
    });
    await expect(admin.api.admin.kick.mutate({ connectionId: 'no-such-connection' })).resolves.toEqual({
      kicked: false,
    });
    seen.unsubscribe();
  });
});

describe('admin.history', () => {
  it('lists ended connections newest first, filtered by userId, limited', async () => {
    await using t = await startServer();
    const admin = t.client('root', { role: 'admin' });
    await admin.ready;
    await expect(admin.api.admin.history.query()).resolves.toEqual([]);

    const ended: string[] = [];
    const users = ['alice', 'bob', 'alice', 'carol'];
    for (const [i, userId] of users.entries()) {
      const client = t.client(userId, withUserAgent);
      const closes = closeCodes(client);
      const info = await client.ready;
      if (i === 0) await client.api.game.join.mutate({ gameId: 'g1' });
      await client.api.session.leave.mutate();
      await vi.waitFor(() => expect(closes).toEqual([CloseCode.left]));
      ended.push(info.connectionId);
    }
    const newestFirst = [...ended].reverse();

    const all = await admin.api.admin.history.query();
    expect(all.map((h) => h.connectionId)).toEqual(newestFirst);
    expect(all.map((h) => h.userId)).toEqual(['carol', 'alice', 'bob', 'alice']);
    for (let i = 1; i < all.length; i++) {
      expect(all[i - 1]?.endedAt.getTime()).toBeGreaterThanOrEqual(all[i]?.endedAt.getTime() ?? Infinity);
    }
    for (const entry of all) {
      expect(entry).toMatchObject({ nodeId: t.server.nodeId, reason: 'left', userAgent: USER_AGENT });
      expect(entry.ip).toMatch(/127\.0\.0\.1$/);
      expect(entry.connectedAt).toBeInstanceOf(Date);
      expect(entry.endedAt).toBeInstanceOf(Date);
      expect(entry.endedAt.getTime()).toBeGreaterThanOrEqual(entry.connectedAt.getTime());
    }
    expect(all.at(-1)?.games).toEqual(['g1']);
    expect(all[0]?.games).toEqual([]);

    const ofAlice = await admin.api.admin.history.query({ userId: 'alice' });
    expect(ofAlice.map((h) => h.connectionId)).toEqual([ended[2], ended[0]]);
    await expect(admin.api.admin.history.query({ userId: 'alice', limit: 1 })).resolves.toMatchObject([
      { connectionId: ended[2] },
    ]);
    const two = await admin.api.admin.history.query({ limit: 2 });
    expect(two.map((h) => h.connectionId)).toEqual(newestFirst.slice(0, 2));
    await expect(admin.api.admin.history.query({ userId: 'nobody' })).resolves.toEqual([]);
  });
});

describe('admin.watch', () => {
  it('sends the current stats, then a new value after a change', async () => {
    await using t = await startServer();
    const admin = t.client('root', { role: 'admin' });
    const alice = t.client('alice');
    await Promise.all([admin.ready, alice.ready]);
    const current = await admin.api.admin.stats.query();

    const watched = collect<AdminStats>((push) => admin.api.admin.watch.subscribe(undefined, { onData: push }));
    await vi.waitFor(() => expect(watched.values).toHaveLength(1));
    expect(watched.values[0]).toEqual(current);

    await alice.api.game.join.mutate({ gameId: 'g1' });
    await vi.waitFor(() => expect(watched.values.at(-1)?.perGame).toEqual({ g1: 1 }));
    expect(watched.values.length).toBeGreaterThanOrEqual(2);
    expect(watched.values.at(-1)).toEqual(await admin.api.admin.stats.query());
    watched.unsubscribe();
  });

  it('sends at most 10 values per second during a burst of joins and leaves', async () => {
    await using t = await startServer();
    const admin = t.client('root', { role: 'admin' });
    const alice = t.client('alice');
    await Promise.all([admin.ready, alice.ready]);

    const arrivals: number[] = [];
    const watched = collect<AdminStats>((push) =>
      admin.api.admin.watch.subscribe(undefined, {
        onData: (value) => {
          arrivals.push(performance.now());
          push(value);
        },
      }),
    );
    await vi.waitFor(() => expect(watched.values).toHaveLength(1));

    const start = performance.now();
    const before = watched.values.length;
    for (let i = 0; i < 50; i++) {
      if (i % 2 === 0) await alice.api.game.join.mutate({ gameId: `burst-${i}` });
      else await alice.api.game.leave.mutate();
    }
    await alice.api.game.join.mutate({ gameId: 'final' });
    // The burst is over once the final state has been sent.
    await vi.waitFor(() => expect(watched.values.at(-1)?.perGame).toEqual({ final: 1 }), { timeout: 3_000 });
    const end = performance.now();

    const inBurst = watched.values.length - before;
    const burstArrivals = arrivals.slice(before);
    expect(inBurst).toBeGreaterThanOrEqual(1);
    // 51 changes; throttled to 10 a second, plus one for a window that straddles a second boundary.
    expect(inBurst).toBeLessThanOrEqual(Math.ceil(((end - start) / 1000) * 10) + 1);
    // No sliding one-second window holds more than 10 values.
    for (let i = 10; i < burstArrivals.length; i++) {
      expect((burstArrivals[i] ?? 0) - (burstArrivals[i - 10] ?? 0)).toBeGreaterThanOrEqual(1000);
    }
    watched.unsubscribe();
  });
});

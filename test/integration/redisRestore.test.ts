import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { PresenceClient } from '../../src/client/index.js';
import type { Member, PresenceEvent, SessionInfo } from '../../src/protocol.js';
import { createMemoryStore } from '../../src/store/memory.js';
import { redisKeys } from '../../src/store/redis.js';
import type { ConnectionRecord } from '../../src/store/types.js';
import { freePort, startRedis, type TestRedis } from '../support/redis.js';
import { collect, startServer } from '../support/server.js';

/** One pino line as JSON. */
interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A logger whose lines are collected for assertions. */
function capturingLogger() {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { lines, logger };
}

/**
 * Runs a server of `prefix`/`nodeId` with one client of `userId` in `gameId`, closes it (close flushes)
 * and returns the connection id and the record it stored: a real one, made by the server itself.
 */
async function storeOneConnection(redis: TestRedis, prefix: string, nodeId: string, userId: string, gameId: string) {
  const connectionId = await (async () => {
    await using t = await startServer({ redisUrl: redis.url, redisPrefix: prefix, nodeId, flushIntervalMs: 100 });
    const client = t.client(userId);
    const info = await client.ready;
    await client.api.game.join.mutate({ gameId });
    await t.server.close();
    return info.connectionId;
  })();
  const text = await redis.client().hget(redisKeys(prefix).node(nodeId), connectionId);
  if (text === null) throw new Error(`${connectionId} was not stored`);
  return { connectionId, text, record: JSON.parse(text) as ConnectionRecord };
}

/** Every key of a prefix with its serialized value and time to live. */
async function dumpPrefix(client: Redis, prefix: string) {
  const keys: string[] = [];
  for await (const chunk of client.scanStream({ match: `${prefix}:*`, count: 1000 }) as AsyncIterable<string[]>) {
    keys.push(...chunk);
  }
  keys.sort();
  const entries = await Promise.all(
    keys.map(async (key) => ({ key, value: await client.dumpBuffer(key), ttlMs: await client.pttl(key) })),
  );
  return entries;
}

/** A record of `connectionId` built from a real one, with `change` applied to a deep copy. */
function variant(base: ConnectionRecord, connectionId: string, change: (record: Record<string, unknown>) => void) {
  const record = structuredClone(base) as unknown as Record<string, unknown> & {
    snapshot: { context: { connectionId: string } };
  };
  record['connectionId'] = connectionId;
  record.snapshot.context.connectionId = connectionId;
  change(record);
  return JSON.stringify(record);
}

describe('restore from Redis', () => {
  it('restores only the valid record, skips each corrupt field with a logged reason, never touches another prefix', async () => {
    await using redis = await startRedis();
    const prefix = redis.prefix();
    const otherPrefix = redis.prefix();
    const nodeId = 'n1';
    const client = redis.client();
    const valid = await storeOneConnection(redis, prefix, nodeId, 'alice', 'g1');
    // Another prefix holds a full, valid hash of the same node id.
    await storeOneConnection(redis, otherPrefix, nodeId, 'bob', 'g2');
    const otherBefore = await dumpPrefix(client, otherPrefix);
    expect(otherBefore.map((entry) => entry.key)).toContain(redisKeys(otherPrefix).node(nodeId));

    const corrupt = {
      notJson: randomUUID(),
      wrongVersion: randomUUID(),
      otherConnection: randomUUID(),
      flying: randomUUID(),
    };
    await client.hset(
      redisKeys(prefix).node(nodeId),
      corrupt.notJson,
      '{"v":1,"connectionId":',
      corrupt.wrongVersion,
      variant(valid.record, corrupt.wrongVersion, (record) => (record['v'] = 2)),
      corrupt.otherConnection,
      // The record names this field, but its snapshot is the valid connection's.
      JSON.stringify({ ...valid.record, connectionId: corrupt.otherConnection }),
      corrupt.flying,
      variant(valid.record, corrupt.flying, (record) => {
        (record['snapshot'] as Record<string, unknown>)['value'] = 'flying';
      }),
    );

    const { lines, logger } = capturingLogger();
    await using t = await startServer({
      redisUrl: redis.url,
      redisPrefix: prefix,
      nodeId,
      flushIntervalMs: 100,
      logger,
    });

    // Exactly the valid connection, stale (its socket is gone), in its game.
    expect(t.server.services.connections.list({ limit: 100 })).toEqual([
      expect.objectContaining({ connectionId: valid.connectionId, userId: 'alice', state: 'stale', gameId: 'g1' }),
    ]);

    // One warning per corrupt field, naming it and saying why.
    const warnings = lines
      .filter((line) => line.level === 40 && typeof line['key'] === 'string')
      .map((line) => ({ key: line['key'], reason: line['reason'] }));
    expect(warnings).toHaveLength(4);
    expect(warnings).toEqual(
      expect.arrayContaining([
        { key: corrupt.notJson, reason: 'not JSON' },
        { key: corrupt.wrongVersion, reason: expect.stringMatching(/^v: /) as string },
        { key: corrupt.otherConnection, reason: expect.stringMatching(/another connection/) as string },
        { key: corrupt.flying, reason: expect.stringMatching(/^snapshot\.value: /) as string },
      ]),
    );
    expect(lines).toContainEqual(expect.objectContaining({ level: 30, restored: 1, skipped: 4 }));

    // It serves: a new client joins the restored connection's game and sees it there, stale.
    const bob = t.client('bob');
    await bob.ready;
    const { members } = await bob.api.game.join.mutate({ gameId: 'g1' });
    expect(members.map((m) => [m.userId, m.state])).toEqual([
      ['alice', 'stale'],
      ['bob', 'active'],
    ]);
    expect(await (await fetch(`${t.url}/health`)).json()).toMatchObject({ status: 'ok', redis: 'up' });
    await vi.waitFor(async () =>
      expect(await client.sismember(redisKeys(prefix).game('g1'), bob.session()?.connectionId ?? '')).toBe(1),
    );

    // The other prefix is exactly as it was: same keys, same values, no TTL refreshed.
    const otherAfter = await dumpPrefix(client, otherPrefix);
    expect(otherAfter.map(({ key, value }) => ({ key, value }))).toEqual(
      otherBefore.map(({ key, value }) => ({ key, value })),
    );
    otherAfter.forEach((entry, i) => expect(entry.ttlMs).toBeLessThanOrEqual(otherBefore[i]?.ttlMs ?? -1));
  });

  it('graceful restart on the same port: connections come back stale on their deadlines and clients resume with no leave', async () => {
    await using redis = await startRedis();
    const options = {
      redisUrl: redis.url,
      redisPrefix: redis.prefix(),
      nodeId: 'n1',
      port: await freePort(),
      flushIntervalMs: 100,
      staleMs: 30_000,
      expireMs: 30_000,
    };
    await using a = await startServer(options);
    const players = [a.client('alice'), a.client('bob')];
    const carol = a.client('carol');
    const clients: PresenceClient[] = [...players, carol];
    const first = await Promise.all(clients.map((client) => client.ready));
    await Promise.all(players.map((client) => client.api.game.join.mutate({ gameId: 'g1' })));
    const sessions = clients.map((client) => {
      const seen: SessionInfo[] = [];
      client.on('session', (info) => seen.push(info));
      return seen;
    });
    const events = collect<PresenceEvent>((push) =>
      carol.api.presence.game.subscribe({ gameId: 'g1' }, { onData: (value) => push(value.data) }),
    );
    await vi.waitFor(() => expect(events.values[0]).toMatchObject({ type: 'sync', members: [{}, {}] }));

    await a.server.drain();
    const atDrain = a.server.services.connections.list({ limit: 100 });
    expect(atDrain).toHaveLength(3);
    for (const conn of atDrain) expect(conn.state).toBe('stale');
    await a.server.close();

    await using b = await startServer(options);
    // Checked before any client can resume: from the end of the restore to here only microtasks
    // ran, so no socket of B has been read yet.
    const restored = b.server.services.connections.list({ limit: 100 });
    expect(restored.map((c) => c.connectionId).sort()).toEqual(first.map((info) => info.connectionId).sort());
    // None has an actor yet: each gets one when something happens to it (here: its client resumes).
    expect(b.server.services.connections.asleep).toBe(3);
    for (const conn of restored)
      expect(b.server.services.connections.supervisor?.system.get(conn.connectionId)).toBe(undefined);
    for (const conn of restored) {
      const before = atDrain.find((c) => c.connectionId === conn.connectionId);
      expect(conn.state).toBe('stale');
      expect(conn.gameId).toBe(before?.gameId);
      expect(conn.expiresAt).toBeInstanceOf(Date);
      expect(
        Math.abs((conn.expiresAt?.getTime() ?? 0) - (before?.expiresAt?.getTime() ?? Infinity)),
      ).toBeLessThanOrEqual(50);
    }

    // Every client resumes onto B: same connection, same game.
    await vi.waitFor(() => sessions.forEach((seen) => expect(seen.at(-1)?.resumed).toBe(true)), { timeout: 10_000 });
    sessions.forEach((seen, i) =>
      expect(seen.at(-1)).toMatchObject({
        connectionId: first[i]?.connectionId,
        gameId: i < players.length ? 'g1' : null,
        nodeId: 'n1',
        resumed: true,
      }),
    );
    expect(b.server.services.connections.size).toBe(3);
    expect(b.server.services.connections.asleep).toBe(0);
    first.forEach((info, i) =>
      expect(b.server.services.connections.get(info.connectionId)?.state).toBe(
        i < players.length ? 'inGame' : 'connected',
      ),
    );

    // The subscriber followed onto B and sees both players active again, and never a leave.
    await vi.waitFor(() => {
      const members = new Map<string, Member>();
      for (const event of events.values) {
        if (event.type === 'sync') {
          members.clear();
          for (const member of event.members) members.set(member.userId, member);
        } else if (event.type === 'leave') members.delete(event.member.userId);
        else members.set(event.member.userId, event.member);
      }
      expect([...members.values()].map((m) => [m.userId, m.state]).sort()).toEqual([
        ['alice', 'active'],
        ['bob', 'active'],
      ]);
    });
    expect(events.values.filter((event) => event.type === 'leave')).toEqual([]);
    events.unsubscribe();
  });

  it('a restored connection nobody resumes gets its actor at its deadline and expires through it; a kick wakes one too', async () => {
    await using redis = await startRedis();
    const options = {
      redisUrl: redis.url,
      redisPrefix: redis.prefix(),
      nodeId: 'n1',
      flushIntervalMs: 100,
      staleMs: 30_000,
      expireMs: 1_500,
      inGameExpireMs: 2_500,
      warnMs: 0,
    };
    const deadlines = await (async () => {
      await using a = await startServer(options);
      const clients = [a.client('dave'), a.client('erin'), a.client('frank')];
      await Promise.all(clients.map((client) => client.ready));
      await clients[2]?.api.game.join.mutate({ gameId: 'g1' });
      await a.server.drain();
      const rows = a.server.services.connections.list({ limit: 10 });
      await Promise.all(clients.map((client) => client.close()));
      await a.server.close();
      return new Map(
        rows.map((row) => [row.userId, { id: row.connectionId, expiresAt: row.expiresAt?.getTime() ?? 0 }]),
      );
    })();

    const lifecycle: { type: string; connectionId: string; reason?: string; at: number }[] = [];
    await using b = await startServer({
      ...options,
      hooks: {
        onLifecycle: (event) =>
          lifecycle.push({
            type: event.type,
            connectionId: event.connectionId,
            at: event.at.getTime(),
            ...('reason' in event ? { reason: event.reason } : {}),
          }),
      },
    });
    const connections = b.server.services.connections;
    const dave = deadlines.get('dave');
    const erin = deadlines.get('erin');
    const frank = deadlines.get('frank');
    expect(connections.asleep).toBe(3);

    // A kick needs the actor: it is woken, then ended by its machine.
    expect(connections.kick(erin?.id ?? '')).toBe(true);
    expect(connections.asleep).toBe(2);
    // An end is announced once the store took it.
    await connections.whenEnded(erin?.id ?? '');
    expect(lifecycle).toContainEqual(
      expect.objectContaining({ type: 'connection.expired', connectionId: erin?.id, reason: 'kicked' }),
    );

    // Nobody resumes dave or frank: each is woken at his own deadline (frank's is a second later: he
    // was in a game) and his machine expires him then.
    expect(connections.supervisor?.system.get(dave?.id ?? '')).toBe(undefined);
    expect((frank?.expiresAt ?? 0) - (dave?.expiresAt ?? 0)).toBeGreaterThanOrEqual(900);
    for (const subject of [dave, frank]) {
      // The end is announced once Redis took it: a moment after the connection left the registry.
      await vi.waitFor(
        () => {
          expect(connections.get(subject?.id ?? '')).toBe(undefined);
          expect(lifecycle.map((event) => [event.connectionId, event.type])).toContainEqual([
            subject?.id,
            'connection.expired',
          ]);
        },
        { timeout: 5_000, interval: 20 },
      );
      const expired = lifecycle.find(
        (event) => event.connectionId === subject?.id && event.type === 'connection.expired',
      );
      expect(expired?.reason).toBe('expired');
      expect(expired?.at).toBeGreaterThanOrEqual(subject?.expiresAt ?? Infinity);
      expect(expired?.at).toBeLessThanOrEqual((subject?.expiresAt ?? 0) + 500);
    }
    expect(connections.asleep).toBe(0);
    const history = await b.server.services.store.history({ limit: 10 });
    expect(history.map((entry) => [entry.connectionId, entry.reason]).sort()).toEqual(
      [
        [dave?.id, 'expired'],
        [erin?.id, 'kicked'],
        [frank?.id, 'expired'],
      ].sort(),
    );
    // Both are gone from the store as well.
    await b.server.services.store.flush();
    expect(await redis.client().hlen(redisKeys(options.redisPrefix).node('n1'))).toBe(1);
  });
});

describe('restored connections due at once', () => {
  it('are woken and expired a batch per turn of the event loop, not all in one', async () => {
    const store = createMemoryStore({ nodeId: 'n1' });
    const options = { store, nodeId: 'n1', staleMs: 30_000, expireMs: 1_000, warnMs: 0, logLevel: 'silent' as const };
    const n = 1_000;
    await (async () => {
      await using a = await startServer(options);
      const socket = { close: () => undefined, terminate: () => undefined };
      for (let i = 0; i < n; i++) {
        a.server.services.connections.open({ userId: `u${i}`, role: 'user', ip: null, userAgent: null, socket });
      }
      // Every connection stale at the same moment: they all come due together after the restart.
      await a.server.drain();
      await a.server.close();
    })();

    await using b = await startServer(options);
    const connections = b.server.services.connections;
    expect(connections.asleep).toBe(n);
    // What each turn of the event loop sees, until all are gone.
    const seen: number[] = [];
    await new Promise<void>((resolve) => {
      const look = () => {
        seen.push(connections.asleep);
        if (connections.size === 0) resolve();
        else setImmediate(look);
      };
      look();
    });
    // Batches of 256: at least three turns saw some expired and some still asleep, and never more
    // than a batch went in one turn.
    const between = new Set(seen.filter((count) => count > 0 && count < n));
    expect(between.size).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < seen.length; i++) expect((seen[i - 1] ?? 0) - (seen[i] ?? 0)).toBeLessThanOrEqual(256);
    const history = await store.history({ limit: n });
    expect(history.filter((entry) => entry.reason === 'expired')).toHaveLength(n);
  });
});

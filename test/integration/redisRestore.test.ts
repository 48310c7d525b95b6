import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import type { PresenceClient } from '../../src/client/index.js';
import type { Member, PresenceEvent, SessionInfo } from '../../src/protocol.js';
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
});

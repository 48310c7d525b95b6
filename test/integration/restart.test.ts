import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createPresenceClient, type PresenceClient, type PresenceClientOptions } from '../../src/client/index.js';
import type { PresenceEvent, SessionInfo } from '../../src/protocol.js';
import { redisKeys } from '../../src/store/redis.js';
import { freePort, startRedis } from '../support/redis.js';
import { RawSocket } from '../support/rawSocket.js';
import { spawnServer } from '../support/serverProcess.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface ServerProcess {
  child: ChildProcessWithoutNullStreams;
  exited: Promise<number | null>;
  /** When it printed that it listens (and so has restored). */
  readyAt: number;
}

/** `presenced serve` as its own process, as users run it. */
async function serve(env: Record<string, string>): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/tools/cli.ts', 'serve'], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', LOG_LEVEL: 'warn', ...env },
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await vi.waitFor(() => expect(stdout).toContain('listening on'), { timeout: 15_000, interval: 20 });
  return { child, exited, readyAt: Date.now() };
}

function client(url: string, userId: string, options: Partial<PresenceClientOptions> = {}): PresenceClient {
  return createPresenceClient({
    url,
    userId,
    role: 'admin',
    WebSocket: WebSocket as unknown as PresenceClientOptions['WebSocket'],
    retryBaseMs: 50,
    retryMaxMs: 100,
    ...options,
  });
}

// Each test starts real server processes (tsx start-up included) and waits out a grace period.
describe('restart with Redis', { timeout: 45_000 }, () => {
  it('kill -9 mid-game: the member comes back stale, resumes into its game with the same id; one that does not resume expires at its original deadline', async () => {
    await using redis = await startRedis();
    const port = await freePort();
    const prefix = redis.prefix();
    const expireMs = 4_000;
    const env = {
      PORT: String(port),
      REDIS_URL: redis.url,
      PRESENCED_REDIS_PREFIX: prefix,
      PRESENCED_NODE_ID: 'node-crash',
      PRESENCED_STALE_MS: '60000',
      PRESENCED_EXPIRE_MS: String(expireMs),
      PRESENCED_WARN_MS: '0',
    };
    const url = `ws://127.0.0.1:${port}/trpc`;
    const first = await serve(env);
    const alice = client(url, 'alice');
    const bob = client(url, 'bob');
    const aliceBefore = await alice.ready;
    const bobBefore = await bob.ready;
    await alice.api.game.join.mutate({ gameId: 'g1' });
    await bob.api.game.join.mutate({ gameId: 'g1' });
    // Both records reached Redis with their game (the write-behind flushes every second).
    const assertions = redis.client();
    await vi.waitFor(async () => expect(await assertions.scard(redisKeys(prefix).game('g1'))).toBe(2), {
      timeout: 5_000,
    });

    first.child.kill('SIGKILL');
    const killedAt = Date.now();
    expect(await first.exited).toBe(null);
    // Bob's client never comes back.
    await bob.close();

    const sessions: SessionInfo[] = [];
    alice.on('session', (s) => sessions.push(s));
    const second = await serve(env);
    try {
      await vi.waitFor(() => expect(sessions.at(-1)?.resumed).toBe(true), { timeout: 10_000 });
      const resumed = sessions.at(-1);
      expect(resumed?.connectionId).toBe(aliceBefore.connectionId);
      expect(resumed?.gameId).toBe('g1');
      expect(resumed?.state).toBe('inGame');

      const members = await alice.api.presence.members.query({ gameId: 'g1' });
      expect(members.map((m) => [m.userId, m.state]).sort()).toEqual([
        ['alice', 'active'],
        ['bob', 'stale'],
      ]);
      const [bobRow] = await alice.api.admin.connections.query({ userId: 'bob' });
      expect(bobRow?.connectionId).toBe(bobBefore.connectionId);
      expect(bobRow?.state).toBe('stale');
      expect(bobRow?.gameId).toBe('g1');
      // The grace period started when the first process died (its last flush, ≤ 1 s before).
      const deadline = bobRow?.expiresAt?.getTime() ?? 0;
      expect(deadline).toBeGreaterThanOrEqual(killedAt - 1_500 + expireMs);
      expect(deadline).toBeLessThanOrEqual(killedAt + expireMs);
      expect(deadline).toBeLessThan(second.readyAt + expireMs - 200);

      await vi.waitFor(async () => expect(await alice.api.admin.history.query({ userId: 'bob' })).toHaveLength(1), {
        timeout: expireMs + 5_000,
        interval: 50,
      });
      const [ended] = await alice.api.admin.history.query({ userId: 'bob' });
      expect(ended?.reason).toBe('expired');
      expect(ended?.games).toEqual(['g1']);
      expect(Math.abs((ended?.endedAt.getTime() ?? 0) - deadline)).toBeLessThan(500);
      expect((await alice.api.presence.members.query({ gameId: 'g1' })).map((m) => m.userId)).toEqual(['alice']);
    } finally {
      await alice.close();
      second.child.kill('SIGKILL');
      await second.exited;
    }
  });

  it('SIGTERM: clients are told to reconnect, every snapshot is flushed, and typed clients resume on the new process without a leave', async () => {
    await using redis = await startRedis();
    const port = await freePort();
    const env = {
      PORT: String(port),
      REDIS_URL: redis.url,
      PRESENCED_REDIS_PREFIX: redis.prefix(),
      PRESENCED_NODE_ID: 'node-term',
    };
    const url = `ws://127.0.0.1:${port}/trpc`;
    const first = await serve(env);
    const alice = client(url, 'alice');
    const bob = client(url, 'bob');
    const aliceBefore = await alice.ready;
    const bobBefore = await bob.ready;
    await alice.api.game.join.mutate({ gameId: 'g1' });
    await bob.api.game.join.mutate({ gameId: 'g1' });
    const seen: PresenceEvent[] = [];
    const subscription = bob.api.presence.game.subscribe({ gameId: 'g1' }, { onData: (e) => seen.push(e.data) });
    await vi.waitFor(() => expect(seen[0]?.type).toBe('sync'));
    const closes: number[] = [];
    alice.on('close', (c) => closes.push(c.code));

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(closes[0]).toBe(1012);

    const second = await serve(env);
    try {
      await vi.waitFor(
        () => {
          expect(alice.session()?.resumed).toBe(true);
          expect(bob.session()?.resumed).toBe(true);
        },
        { timeout: 10_000 },
      );
      expect(alice.session()?.connectionId).toBe(aliceBefore.connectionId);
      expect(bob.session()?.connectionId).toBe(bobBefore.connectionId);
      expect(alice.session()?.gameId).toBe('g1');
      await vi.waitFor(async () => {
        const members = await bob.api.presence.members.query({ gameId: 'g1' });
        expect(members.map((m) => [m.userId, m.state]).sort()).toEqual([
          ['alice', 'active'],
          ['bob', 'active'],
        ]);
      });
      // The subscription came back by itself (tRPC re-subscribes) and never saw anyone leave.
      await vi.waitFor(() => expect(seen.filter((e) => e.type === 'sync').length).toBeGreaterThanOrEqual(2));
      expect(seen.filter((e) => e.type === 'leave')).toEqual([]);
    } finally {
      subscription.unsubscribe();
      await Promise.all([alice.close(), bob.close()]);
      second.child.kill('SIGKILL');
      await second.exited;
    }
  });

  it('regression: SIGTERM with Redis unreachable gave up after 5 s and still exited 0; now it exits 1 and says what was not stored', async () => {
    await using redis = await startRedis();
    const prefix = redis.prefix();
    const server = await spawnServer({
      REDIS_URL: redis.url,
      PRESENCED_REDIS_PREFIX: prefix,
      PRESENCED_NODE_ID: 'node-lost',
    });
    await using _server = server;
    const sockets = await Promise.all(['alice', 'bob'].map((userId) => RawSocket.open(server.wsUrl, { userId })));
    await Promise.all(sockets.map((socket) => socket.request('mutation', 'game.join', { gameId: 'g1' })));
    const assertions = redis.client();
    await vi.waitFor(async () => expect(await assertions.scard(redisKeys(prefix).game('g1'))).toBe(2), {
      timeout: 5_000,
    });
    await redis.kill();
    const stopped = performance.now();
    const exit = await server.stop('SIGTERM');
    expect(exit).toEqual({ code: 1, signal: null });
    // It waited for Redis (5 s) before it gave up.
    expect(performance.now() - stopped).toBeGreaterThan(4_500);
    expect(server.stderr()).toContain(
      'presenced: the store did not take 2 connection(s) and 0 history record(s); exiting 1',
    );
    await Promise.all(sockets.map((socket) => socket.close()));
  });
});

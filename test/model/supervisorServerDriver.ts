import { randomUUID } from 'node:crypto';
import { get } from 'node:http';
import { pino } from 'pino';
import { expect, vi } from 'vitest';
import type { AnyActorRef } from 'xstate';
import type { PresenceClient } from '../../src/client/index.js';
import { CloseCode, type SessionInfo } from '../../src/protocol.js';
import { createPresenceServer, type Listening, type PresenceServer } from '../../src/server.js';
import { createRedisStore } from '../../src/store/redis.js';
import { RawSocket } from '../support/rawSocket.js';
import { freePort, type TestRedis } from '../support/redis.js';
import { heldStore, presenceClient } from './serverSupport.js';
import { layoutOf, shardsOf } from './supervisorMachineDriver.js';
import {
  SHARD_CAPACITY,
  type SupervisorModelEventType,
  type SupervisorModelPath,
  type SupervisorModelSnapshot,
} from './supervisorModel.js';

const settle = { timeout: 5_000, interval: 10 } as const;

/**
 * The HTTP status of `url` on a fresh TCP connection (fetch would reuse a kept-alive socket of the
 * process that was just closed and fail with "other side closed").
 */
function httpStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
}

interface Client {
  client: PresenceClient;
  userId: string;
  connectionId: string;
  sessions: SessionInfo[];
  closes: number[];
}

/**
 * Runs one path of the abstract supervisor model against real presenced processes (in process, one
 * port, a real redis-server): READY is the end of the restore, CONNECT a typed client (or a refused
 * socket), END a client's `session.leave`, DRAIN and STOP the server's `drain()` and `close()`, RESTART
 * a drain, a close and a new server on the same port and Redis prefix.
 */
export async function runSupervisorOnServer(path: SupervisorModelPath, redis: TestRedis) {
  const port = await freePort();
  const prefix = redis.prefix();
  const nodeId = `model-${randomUUID().slice(0, 8)}`;
  const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const base = `127.0.0.1:${port}`;
  const wsUrl = `ws://${base}/trpc`;

  const servers: { server: PresenceServer; listening: Promise<Listening | { error: unknown }>; release(): void }[] = [];
  const clients: Client[] = [];
  let current!: (typeof servers)[number];
  let ready = false;
  let restarted = false;
  let previous: SupervisorModelSnapshot | undefined;
  let seq = 0;

  function boot() {
    const { store, release } = heldStore(createRedisStore({ url: redis.url, prefix, nodeId, logger }));
    const server = createPresenceServer({
      port,
      nodeId,
      store,
      logger,
      shardCapacity: SHARD_CAPACITY,
      // The shard layout is what this model checks: connections run as actors, as when inspecting.
      liveActors: true,
      flushIntervalMs: 50,
      // No connection goes stale by itself during a path.
      staleMs: 60_000,
      expireMs: 60_000,
      rateLimit: 100_000,
    });
    // `listen()` resolves after the restore, which waits for `release()` (READY).
    const listening = server.listen().catch((error: unknown) => ({ error }));
    current = { server, listening, release };
    ready = false;
    servers.push(current);
  }

  const supervisor = () => current.server.services.connections.supervisor;
  const live = () => clients.filter((c) => current.server.services.connections.get(c.connectionId));
  const readiness = () => httpStatus(`http://${base}/health/ready`);

  const executors: Record<SupervisorModelEventType, () => Promise<void>> = {
    READY: async () => {
      current.release();
      expect(await current.listening).toMatchObject({ port });
      ready = true;
      if (restarted) {
        // Every client whose connection was restored comes back by itself and resumes it.
        await vi.waitFor(() => {
          for (const c of live())
            expect(c.sessions.at(-1)).toMatchObject({ connectionId: c.connectionId, resumed: true });
        }, settle);
      }
    },
    CONNECT: async () => {
      const userId = `user-${seq++}`;
      const before = current.server.services.connections.size;
      if (previous?.value === 'running') {
        const client = presenceClient(wsUrl, userId, { retryBaseMs: 10, retryMaxMs: 40 });
        const entry: Client = { client, userId, connectionId: '', sessions: [], closes: [] };
        client.on('session', (info) => entry.sessions.push(info));
        client.on('close', (close) => entry.closes.push(close.code));
        clients.push(entry);
        const info = await client.ready;
        entry.connectionId = info.connectionId;
        expect(current.server.services.connections.size).toBe(before + 1);
        return;
      }
      if (previous?.value === 'draining') {
        // Draining: the upgrade itself is refused.
        await expect(RawSocket.open(wsUrl, { userId })).rejects.toThrow(/503/);
      } else {
        // Still restoring: no session. Today the socket is accepted, its first call refused and the
        // socket closed with 1013 ("not accepting yet", README); refusing the upgrade as while
        // draining would be as good (and is the fix proposed for the subscriptions it breaks).
        const socket = await RawSocket.open(wsUrl, { userId }).catch((error: unknown) => error);
        if (socket instanceof RawSocket) {
          await using opened = socket;
          const reply = await opened.request('query', 'session.info');
          expect(reply.error?.data.code).toBe('SERVICE_UNAVAILABLE');
          expect((await opened.closed).code).toBe(CloseCode.atCapacity);
        } else expect(String(socket)).toMatch(/503/);
      }
      expect(current.server.services.connections.size).toBe(before);
    },
    END: async () => {
      const root = supervisor();
      const shards = shardsOf((root?.getSnapshot().children ?? {}) as Record<string, AnyActorRef | undefined>);
      const connectionId = shards.find((shard) => shard.connections.length > 0)?.connections[0];
      const entry = clients.find((c) => c.connectionId === connectionId);
      if (!entry) throw new Error(`no client for connection ${String(connectionId)}`);
      expect(await entry.client.api.session.leave.mutate()).toEqual({ ok: true });
      await vi.waitFor(() => expect(entry.closes.at(-1)).toBe(CloseCode.left), settle);
      expect(current.server.services.connections.get(entry.connectionId)).toBeUndefined();
    },
    DRAIN: async () => {
      const attached = ready ? live() : [];
      const closesBefore = attached.map((c) => c.closes.length);
      await current.server.drain();
      // Every client with a socket is told to reconnect elsewhere.
      await vi.waitFor(
        () => attached.forEach((c, i) => expect(c.closes.slice(closesBefore[i])).toContain(CloseCode.serverRestarting)),
        settle,
      );
    },
    STOP: async () => {
      await current.server.close();
    },
    RESTART: async () => {
      if (previous?.value !== 'draining') await current.server.drain();
      await current.server.close();
      boot();
      restarted = true;
    },
  };

  async function checkState(state: SupervisorModelSnapshot) {
    const root = supervisor();
    switch (state.value) {
      case 'starting':
        expect(await readiness()).toBe(503);
        // The server creates its supervisor when the restore is done.
        expect(root).toBeNull();
        break;
      case 'running':
        expect(await readiness()).toBe(200);
        expect(root?.getSnapshot().value).toBe('running');
        break;
      case 'draining':
        expect(await readiness()).toBe(503);
        // Drained before the restore finished: the server has not built its supervisor yet.
        if (ready) expect(root?.getSnapshot().value).toBe('draining');
        else expect(root).toBeNull();
        break;
      case 'stopped':
        await expect(httpStatus(`http://${base}/health`)).rejects.toThrow(/ECONNREFUSED/);
        if (root) expect(root.getSnapshot().status).toBe('done');
        break;
    }
    if (root && state.value !== 'stopped') {
      const shards = shardsOf(root.getSnapshot().children as Record<string, AnyActorRef | undefined>);
      const asleep = current.server.services.connections.asleep;
      expect(layoutOf(shards, asleep)).toEqual(state.context.shards);
      expect(current.server.services.connections.size).toBe(shards.reduce((n, s) => n + s.connections.length, asleep));
    }
    previous = state;
  }

  try {
    boot();
    await path.test({
      events: Object.fromEntries(Object.entries(executors).map(([type, exec]) => [type, () => exec()])),
      states: { '*': checkState },
    });
  } finally {
    await Promise.all(clients.map((c) => c.client.close()));
    for (const running of servers) {
      await running.server.close();
      // A server closed while restoring stops retrying once it may read again.
      running.release();
    }
    // Settled either way: the listen() of a server closed while it restored rejects.
    await Promise.all(servers.map((s) => s.listening));
  }
}

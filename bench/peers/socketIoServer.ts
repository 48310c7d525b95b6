/**
 * The Socket.IO 4 peers as their own process. With REDIS_URL, the hand-rolled pattern:
 * `@socket.io/redis-adapter` (so rooms span nodes) and the Redis connection manager of
 * ./connectionManager.ts. Without, plain Socket.IO: the default in-memory adapter, acks answered at
 * once, members from the room. Prints `listening on http://…` once it accepts connections.
 *
 * Dev dependencies, and why: `socket.io@4` is the server users most often build presence on;
 * `@socket.io/redis-adapter` is what they add to share rooms across nodes through Redis, so its
 * PUBLISH per broadcast is part of the pattern's cost; ioredis (already a dependency) is the client
 * their connection managers use.
 */
import { createAdapter } from '@socket.io/redis-adapter';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { createConnectionManager } from './connectionManager.js';

const redisUrl = process.env['REDIS_URL'];
/** How often the stale sweep runs, and when a connection counts as stale (the usual 60 s). */
const SWEEP_MS = 60_000;

// Three connections, as the adapter's README and the managers do: commands, publish, subscribe.
// RESP2 (ioredis 5's default, what these setups run on) for the adapter's pub/sub.
const clients = redisUrl ? [new Redis(redisUrl), new Redis(redisUrl, { protocol: 2 })] : [];
const [commands, pub] = clients;
if (pub) clients.push(pub.duplicate());
const manager = commands ? createConnectionManager(commands) : createPlainManager();

/** Plain Socket.IO keeps nothing but its rooms: the manager's calls answer at once. */
function createPlainManager(): ReturnType<typeof createConnectionManager> {
  return {
    register: () => Promise.resolve(),
    heartbeat: () => Promise.resolve(true),
    join: () => Promise.resolve(true),
    leave: () => Promise.resolve(null),
    members: (gameId) =>
      Promise.resolve(
        [...(io.of('/').adapter.rooms.get(gameId) ?? [])].map((sid) => ({ sid, userId: sid, lastSeen: Date.now() })),
      ),
    unregister: () => Promise.resolve(),
    sweep: () => Promise.resolve(0),
  };
}

type Ack = (reply: unknown) => void;

const http = createServer();
const io = new Server(http, {
  pingInterval: 25_000,
  pingTimeout: 30_000,
  maxHttpBufferSize: 1_000_000,
  ...(pub && clients[2] ? { adapter: createAdapter(pub, clients[2]) } : {}),
});

io.on('connection', (socket) => {
  const auth = socket.handshake.auth as { userId?: unknown };
  const userId = typeof auth.userId === 'string' ? auth.userId : 'anonymous';
  const sid = socket.id;
  let gameId: string | null = null;

  socket.on('heartbeat', (_payload: unknown, ack: Ack) => {
    void manager.heartbeat(sid).then((ok) => ack({ ok, serverTime: Date.now() }));
  });
  socket.on('join', (payload: { gameId: string }, ack: Ack) => {
    void (async () => {
      await manager.join(sid, payload.gameId);
      if (gameId && gameId !== payload.gameId) await socket.leave(gameId);
      gameId = payload.gameId;
      await socket.join(gameId);
      io.to(gameId).emit('presence:join', { gameId, userId, sid });
      ack({ ok: true });
    })();
  });
  socket.on('leave', (_payload: unknown, ack: Ack) => {
    void (async () => {
      const left = (await manager.leave(sid)) ?? gameId;
      if (left) {
        await socket.leave(left);
        io.to(left).emit('presence:leave', { gameId: left, userId, sid });
      }
      gameId = null;
      ack({ gameId: left });
    })();
  });
  socket.on('members', (payload: { gameId: string }, ack: Ack) => {
    void manager.members(payload.gameId).then((rows) => ack(rows));
  });
  socket.on('disconnect', () => {
    void manager.unregister(sid, userId);
  });
  // The benchmark's hook to measure one sweep's Redis commands (users run it on a timer).
  socket.on('debug:sweep', (_payload: unknown, ack: Ack) => {
    void manager.sweep(SWEEP_MS).then((removed) => ack({ removed }));
  });

  void manager.register(sid, userId).then(() => socket.emit('ready'));
});

if (commands) setInterval(() => void manager.sweep(SWEEP_MS), SWEEP_MS).unref();

http.listen(0, '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`socket.io${redisUrl ? ' + redis' : ''} listening on http://127.0.0.1:${port}\n`);
});

process.on('SIGTERM', () => {
  void io.close(() => {
    for (const client of clients) client.disconnect();
    process.exit(0);
  });
});

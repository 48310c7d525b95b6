/**
 * Two Socket.IO 4 peers, both bench/peers/socketIoServer.ts, driven with `socket.io-client@4` (the
 * client such servers ship to their users) over the WebSocket transport only (no long-polling):
 * the hand-rolled pattern (redis-adapter + a Redis connection manager) and plain Socket.IO (room
 * broadcasts in process, no Redis), so the fan-out verdict does not hinge on one implementation.
 */
import { io, type Socket } from 'socket.io-client';
import type { Peer, PeerClient } from '../lib/harness.js';
import { startChildServer, type ServerProcess } from '../lib/proc.js';

function connect(server: ServerProcess, userId: string): Promise<PeerClient> {
  const socket: Socket = io(server.url, {
    transports: ['websocket'],
    auth: { userId },
    reconnection: false,
    forceNew: true,
    timeout: 20_000,
  });
  const client: PeerClient = {
    heartbeat: () => socket.emitWithAck('heartbeat', { clientTime: Date.now() }).then(() => undefined),
    join: (gameId) => socket.emitWithAck('join', { gameId }).then(() => undefined),
    leave: () => socket.emitWithAck('leave', {}).then(() => undefined),
    members: (gameId) => socket.emitWithAck('members', { gameId }).then((rows: unknown[]) => rows.length),
    watch(gameId, handler) {
      socket.on('presence:join', (event: { gameId: string; userId: string }) => {
        if (event.gameId === gameId) handler(event.userId);
      });
      return Promise.resolve();
    },
    close: () =>
      new Promise((resolve) => {
        if (socket.disconnected) return resolve();
        socket.once('disconnect', () => resolve());
        socket.disconnect();
      }),
  };
  return new Promise((resolve, reject) => {
    socket.once('ready', () => resolve(client));
    socket.once('connect_error', reject);
  });
}

export const handRolled: Peer = {
  label: 'hand-rolled (Socket.IO + Redis manager)',
  usesRedis: true,
  start({ redis, env, nodeArgs }) {
    if (!redis) throw new Error('the hand-rolled pattern needs a Redis');
    return startChildServer('bench/peers/socketIoServer.ts', [], { ...env, REDIS_URL: redis.url }, nodeArgs);
  },
  connect,
};

export const socketIo: Peer = {
  label: 'Socket.IO (rooms, no Redis)',
  usesRedis: false,
  start: ({ env, nodeArgs }) =>
    startChildServer('bench/peers/socketIoServer.ts', [], { ...env, REDIS_URL: '' }, nodeArgs),
  connect,
};

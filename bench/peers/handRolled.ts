/**
 * Peer 1's driver: starts bench/peers/handRolledServer.ts (Socket.IO 4 + redis-adapter + a hand-rolled
 * Redis connection manager) and talks to it with `socket.io-client@4` — dev dependency, the client
 * such servers ship to their users — over the WebSocket transport only (no long-polling upgrade).
 */
import { io, type Socket } from 'socket.io-client';
import type { Peer, PeerClient } from '../lib/peer.js';
import { startChildServer, type ServerProcess } from '../lib/serverProcess.js';

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
  start({ redis, nodeArgs }) {
    if (!redis) throw new Error('the hand-rolled pattern needs a Redis');
    return startChildServer({ script: 'bench/peers/handRolledServer.ts', env: { REDIS_URL: redis.url }, nodeArgs });
  },
  connect,
};

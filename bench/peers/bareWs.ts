/** The bare `ws` peer's driver: starts bench/peers/bareWsServer.ts and speaks its JSON protocol over `ws`. */
import { WebSocket } from 'ws';
import type { Peer, PeerClient } from '../lib/harness.js';
import { startChildServer, type ServerProcess } from '../lib/proc.js';

function connect(server: ServerProcess, userId: string): Promise<PeerClient> {
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/?userId=${encodeURIComponent(userId)}`);
  const pending = new Map<number, (reply: { members?: unknown[] }) => void>();
  const watchers = new Map<string, (userId: string) => void>();
  let nextId = 1;
  const call = (request: object) =>
    new Promise<{ members?: unknown[] }>((resolve) => {
      const id = nextId++;
      pending.set(id, resolve);
      ws.send(JSON.stringify({ id, ...request }));
    });
  const client: PeerClient = {
    heartbeat: () => call({ t: 'hb' }).then(() => undefined),
    join: (gameId) => call({ t: 'join', gameId }).then(() => undefined),
    leave: () => call({ t: 'leave' }).then(() => undefined),
    members: (gameId) => call({ t: 'members', gameId }).then((reply) => reply.members?.length ?? 0),
    watch(gameId, handler) {
      watchers.set(gameId, handler);
      return Promise.resolve();
    },
    close: () =>
      new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      }),
  };
  return new Promise((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString('utf8')) as {
        id?: number;
        t?: string;
        gameId?: string;
        userId?: string;
        members?: unknown[];
      };
      if (message.t === 'ready') return resolve(client);
      if (message.t === 'join') return watchers.get(message.gameId ?? '')?.(message.userId ?? '');
      if (message.id === undefined) return;
      const settle = pending.get(message.id);
      pending.delete(message.id);
      settle?.(message);
    });
    ws.once('error', reject);
  });
}

export const bareWs: Peer = {
  label: 'bare ws (ceiling)',
  usesRedis: false,
  start: ({ env, nodeArgs }) => startChildServer('bench/peers/bareWsServer.ts', [], env, nodeArgs),
  connect,
};

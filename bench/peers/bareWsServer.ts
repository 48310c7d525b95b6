/**
 * The bare `ws` peer (already a dependency): JSON heartbeats acknowledged, joins and leaves broadcast
 * to the game's sockets in process, no auth, no persistence, no keep-alive — the ceiling anything built on
 * `ws` can reach. Its own process; prints `listening on http://…` once it accepts connections.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

interface Client {
  userId: string;
  gameId: string | null;
}

type Request = { id: number } & (
  { t: 'hb' } | { t: 'join'; gameId: string } | { t: 'leave' } | { t: 'members'; gameId: string }
);

const http = createServer();
const wss = new WebSocketServer({ server: http, maxPayload: 1_048_576 });
const games = new Map<string, Set<WebSocket>>();
const clients = new WeakMap<WebSocket, Client>();

/** Leaves the game, broadcasting it to the members left (as the other peers do). */
function leave(ws: WebSocket, client: Client) {
  if (!client.gameId) return;
  const members = games.get(client.gameId);
  members?.delete(ws);
  if (members?.size === 0) games.delete(client.gameId);
  const event = JSON.stringify({ t: 'leave', gameId: client.gameId, userId: client.userId });
  for (const member of members ?? []) member.send(event);
  client.gameId = null;
}

wss.on('connection', (ws, req) => {
  const userId = new URL(req.url ?? '/', 'http://localhost').searchParams.get('userId') ?? 'anonymous';
  const client: Client = { userId, gameId: null };
  clients.set(ws, client);
  ws.on('message', (data: Buffer) => {
    const request = JSON.parse(data.toString('utf8')) as Request;
    switch (request.t) {
      case 'hb':
        return ws.send(JSON.stringify({ id: request.id, serverTime: Date.now() }));
      case 'join': {
        leave(ws, client);
        client.gameId = request.gameId;
        let members = games.get(request.gameId);
        if (!members) games.set(request.gameId, (members = new Set()));
        members.add(ws);
        const event = JSON.stringify({ t: 'join', gameId: request.gameId, userId });
        for (const member of members) member.send(event);
        return ws.send(JSON.stringify({ id: request.id, members: members.size }));
      }
      case 'leave':
        leave(ws, client);
        return ws.send(JSON.stringify({ id: request.id }));
      case 'members':
        return ws.send(
          JSON.stringify({
            id: request.id,
            members: [...(games.get(request.gameId) ?? [])].map((member) => clients.get(member)?.userId),
          }),
        );
    }
  });
  ws.on('close', () => leave(ws, client));
  ws.on('error', () => undefined);
  ws.send(JSON.stringify({ t: 'ready' }));
});

http.listen(0, '127.0.0.1', () => {
  const { port } = http.address() as AddressInfo;
  process.stdout.write(`bare ws listening on http://127.0.0.1:${port}\n`);
});

process.on('SIGTERM', () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close();
  http.close(() => process.exit(0));
});

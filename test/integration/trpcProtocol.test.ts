import type { AddressInfo } from 'node:net';
import { getWSConnectionHandler } from '@trpc/server/adapters/ws';
import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import { WebSocketServer } from 'ws';
import { appRouter } from '../../src/router/index.js';
import type { Context } from '../../src/services.js';
import { frameTexts, RawSocket } from '../support/rawSocket.js';
import { startServer, type TestServer } from '../support/server.js';

/**
 * The wire speaks tRPC's WebSocket protocol itself (src/wire/trpcProtocol.ts). The oracle is tRPC's
 * own adapter (`getWSConnectionHandler`) serving the same router, on the same server's services,
 * with a context like ours: every frame below goes to a socket on each, and the replies must be the
 * same bytes, in the same order.
 */

const call = (id: unknown, method: string, path: string, input?: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ id, method, params: { path, input: superjson.serialize(input) }, ...extra });

/** tRPC's adapter on its own port, serving `appRouter` on `t`'s services; its sockets authenticate as `userId`. */
async function trpcAdapter(t: TestServer) {
  const { services } = t.server;
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const handler = getWSConnectionHandler({
    wss,
    router: appRouter,
    async createContext({ res, info }): Promise<Context> {
      const session = services.connections.open({
        userId: info.connectionParams?.['userId'] ?? 'anonymous',
        role: 'user',
        ip: null,
        userAgent: null,
        socket: res,
      });
      await session.replacing;
      return {
        services,
        session,
        refusal: null,
        limiter: { take: () => true },
        subscriptions: { open: 0 },
        onRefused: () => undefined,
      };
    },
  });
  wss.on('connection', (ws, req) => handler(ws, req));
  const { port } = wss.address() as AddressInfo;
  return {
    wsUrl: `ws://127.0.0.1:${port}/trpc`,
    async [Symbol.asyncDispose]() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** Sends each frame to both sockets and waits for `replies` more on each; returns both transcripts. */
async function exchange(ours: RawSocket, theirs: RawSocket, steps: [frame: string | Buffer, replies: number][]) {
  const oursSeen = frameTexts(ours);
  const theirsSeen = frameTexts(theirs);
  let expected = 0;
  for (const [frame, replies] of steps) {
    expected += replies;
    for (const socket of [ours, theirs]) socket.send(frame, { binary: typeof frame !== 'string' });
    await vi.waitFor(() => expect([oursSeen.length, theirsSeen.length]).toEqual([expected, expected]));
  }
  return { oursSeen, theirsSeen };
}

describe("the wire's tRPC protocol, against tRPC's own adapter", () => {
  it('answers calls, refusals and malformed frames with the same bytes', async () => {
    await using t = await startServer();
    await using adapter = await trpcAdapter(t);
    await using ours = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    await using theirs = await RawSocket.open(adapter.wsUrl, { userId: 'bob' });
    const { oursSeen, theirsSeen } = await exchange(ours, theirs, [
      [call(1, 'query', 'presence.members', { gameId: 'g1' }), 1],
      [call('s"1', 'query', 'presence.isOnline', { userId: 'nobody' }, { jsonrpc: '2.0' }), 1],
      [call(2, 'query', 'no.such.path'), 1],
      [call(3, 'mutation', 'presence.members', { gameId: 'g1' }), 1],
      [call(4, 'query', 'presence.members', { gameId: 5 }), 1],
      [call(5, 'query', 'presence.members'), 1],
      [call(null, 'query', 'presence.members', { gameId: 'g1' }), 1],
      ['{"id":6,"method":"query","params":{"path":"presence.members","input":{"json":{},"meta":{"values":"x"}}}}', 1],
      ['not json', 1],
      ['{"id":7}', 1],
      ['{"id":8,"method":"query","params":{"path":5}}', 1],
      ['[]', 0],
      [`[${call(9, 'query', 'presence.members', { gameId: 'g2' })},${call(10, 'query', 'no.such')}]`, 2],
      [Buffer.from(call(11, 'query', 'presence.members', { gameId: 'g1' })), 1],
      ['PING', 1],
      ['PONG', 0],
      [JSON.stringify({ id: 12, method: 'subscription.stop' }), 0],
    ]);
    expect(oursSeen).toEqual(theirsSeen);
  });

  it('serves subscriptions the same way: started, data with its id, lastEventId, duplicate ids, stop', async () => {
    await using t = await startServer();
    await using adapter = await trpcAdapter(t);
    const carol = t.client('carol');
    await carol.api.game.join.mutate({ gameId: 'g1' });
    await using ours = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    await using theirs = await RawSocket.open(adapter.wsUrl, { userId: 'bob' });
    const game = (id: number, extra: Record<string, unknown> = {}) =>
      call(id, 'subscription', 'presence.game', { gameId: 'g1' }, extra);
    const { oursSeen, theirsSeen } = await exchange(ours, theirs, [
      // Started and the sync; then the same id again, refused while the first is open.
      [game(1), 2],
      [game(1), 1],
      [JSON.stringify({ id: 1, method: 'subscription.stop' }), 1],
      // The id is free again once stopped; lastEventId from params goes into the input (a replay).
      [
        game(1, { params: { path: 'presence.game', input: superjson.serialize({ gameId: 'g1' }), lastEventId: 'x' } }),
        2,
      ],
      [JSON.stringify({ id: 1, method: 'subscription.stop' }), 1],
      // A subscription on a query's path, and a query on a subscription's path.
      [call(2, 'subscription', 'presence.members', { gameId: 'g1' }), 1],
      [call(3, 'query', 'presence.game', { gameId: 'g1' }), 1],
    ]);
    expect(oursSeen).toEqual(theirsSeen);
    expect(oursSeen.map((text) => (JSON.parse(text) as { result?: { type: string } }).result?.type ?? 'error')).toEqual(
      ['started', 'data', 'error', 'stopped', 'started', 'data', 'stopped', 'error', 'error'],
    );
  });
});

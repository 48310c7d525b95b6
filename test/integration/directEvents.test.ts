import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import { frameTexts, RawSocket } from '../support/rawSocket.js';
import { startServer, type TestServer } from '../support/server.js';

/**
 * After the first value, presence.game events are written to the socket directly, serialised once
 * for all subscribers (src/wire/trpcProtocol.ts), for a subscription that came in as a single call.
 * A batch of one goes through the iteration loop all the way, as tRPC's adapter does: two sockets
 * subscribing the same way, one with the frame and one with the frame in a batch, must receive the
 * same bytes. With fast paths off (the integration-slow-paths project), both take the loop.
 */

const subscribe = (id: number | string, gameId: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id,
    method: 'subscription',
    params: { path: 'presence.game', input: superjson.serialize({ gameId }) },
    ...extra,
  });

async function pair(t: TestServer) {
  const direct = await RawSocket.open(t.wsUrl, { userId: 'direct' });
  const viaTrpc = await RawSocket.open(t.wsUrl, { userId: 'via-trpc' });
  for (const socket of [direct, viaTrpc]) await socket.request('query', 'session.info');
  return { direct, viaTrpc, directSeen: frameTexts(direct), trpcSeen: frameTexts(viaTrpc) };
}

describe('presence events written directly', () => {
  it('are the bytes tRPC sends: started, sync, joins, updates, leaves, stopped', async () => {
    await using t = await startServer();
    const { direct, viaTrpc, directSeen, trpcSeen } = await pair(t);
    await using _direct = direct;
    await using _viaTrpc = viaTrpc;
    for (const [id, extra] of [
      [7, {}],
      ['s"8', { jsonrpc: '2.0' }],
    ] as const) {
      direct.send(subscribe(id, 'g1', extra));
      viaTrpc.send(`[${subscribe(id, 'g1', extra)}]`);
    }
    await vi.waitFor(() => expect([directSeen.length, trpcSeen.length]).toEqual([4, 4]));

    const alice = t.client('alice');
    await alice.ready;
    await alice.api.game.join.mutate({ gameId: 'g1' });
    await alice.api.game.leave.mutate();
    await alice.api.game.join.mutate({ gameId: 'g1' });
    await vi.waitFor(() => expect([directSeen.length, trpcSeen.length]).toEqual([10, 10]));
    for (const id of [7, 's"8']) {
      direct.send(JSON.stringify({ id, method: 'subscription.stop' }));
      viaTrpc.send(JSON.stringify({ id, method: 'subscription.stop' }));
    }
    await vi.waitFor(() => expect([directSeen.length, trpcSeen.length]).toEqual([12, 12]));
    // Stopped means stopped: nothing more arrives.
    await alice.api.game.leave.mutate();
    await alice.api.session.info.query();

    expect(directSeen).toEqual(trpcSeen);
    const types = directSeen.map((text) => {
      const frame = JSON.parse(text) as { result: { type: string; data?: { json: { data: { type: string } } } } };
      return frame.result.data?.json.data.type ?? frame.result.type;
    });
    expect(types.filter((_, i) => i % 2 === 0)).toEqual(['started', 'sync', 'join', 'leave', 'join', 'stopped']);
  });

  it('replays with lastEventId in order, the first through tRPC and the rest directly', async () => {
    await using t = await startServer();
    // alice stays in the game throughout, so the game and its event log are kept.
    const alice = t.client('alice');
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const bob = t.client('bob');
    await bob.ready;
    const ids: string[] = [];
    const watcher = t.client('watcher');
    await watcher.ready;
    const subscription = watcher.api.presence.game.subscribe(
      { gameId: 'g1' },
      { onData: ({ id }) => void ids.push(id) },
    );
    await vi.waitFor(() => expect(ids).toHaveLength(1));
    for (let i = 0; i < 3; i++) {
      await bob.api.game.join.mutate({ gameId: 'g1' });
      await bob.api.game.leave.mutate();
    }
    await vi.waitFor(() => expect(ids).toHaveLength(7));
    subscription.unsubscribe();

    const { direct, viaTrpc, directSeen, trpcSeen } = await pair(t);
    await using _direct = direct;
    await using _viaTrpc = viaTrpc;
    // As a tRPC client sends it after a reconnect: lastEventId in the input.
    const frame = subscribe(1, 'g1', {
      params: { path: 'presence.game', input: superjson.serialize({ gameId: 'g1', lastEventId: ids[2] }) },
    });
    direct.send(frame);
    viaTrpc.send(`[${frame}]`);
    await vi.waitFor(() => expect([directSeen.length, trpcSeen.length]).toEqual([5, 5]));
    await bob.api.game.join.mutate({ gameId: 'g1' });
    await vi.waitFor(() => expect([directSeen.length, trpcSeen.length]).toEqual([6, 6]));
    expect(directSeen).toEqual(trpcSeen);
    const replayed = directSeen.slice(1, 5).map((text) => (JSON.parse(text) as { result: { id: string } }).result.id);
    expect(replayed).toEqual(ids.slice(3, 7));
  });
});

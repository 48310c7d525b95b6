import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { CloseCode } from '../../src/protocol.js';
import { frameTexts, RawSocket } from '../support/rawSocket.js';
import { startServer } from '../support/server.js';

/**
 * `session.heartbeat` is answered before any procedure call when it can be (src/wire/heartbeatFastPath.ts).
 * A batch of one always goes through the procedure, so sending a frame `F` and then `[F]` with the same id compares the
 * fast path's answer with tRPC's, byte for byte. A fixed clock makes the two answers' times equal.
 */

const fixedClock = (at: number): Clock => ({
  now: () => at,
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
});

const heartbeatFrame = (id: number | string, input: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ id, method: 'mutation', params: { path: 'session.heartbeat', input }, ...extra });

/** Sends `frame`, then the same frame as a batch of one; resolves with both answers' text. */
async function bothWays(socket: RawSocket, seen: string[], frame: string): Promise<[string, string]> {
  const from = seen.length;
  socket.send(frame);
  await vi.waitFor(() => expect(seen.length).toBe(from + 1));
  socket.send(`[${frame}]`);
  await vi.waitFor(() => expect(seen.length).toBe(from + 2));
  return [seen[from] ?? '', seen[from + 1] ?? ''];
}

describe('heartbeat fast path', () => {
  it("a typed client's heartbeat: Dates as Dates, counted as activity", async () => {
    await using t = await startServer({ staleMs: 60_000 });
    const alice = t.client('alice', { heartbeat: false });
    const info = await alice.ready;
    for (const beat of [
      await alice.api.session.heartbeat.mutate(),
      await alice.api.session.heartbeat.mutate({ clientTime: Date.now() }),
    ]) {
      expect(beat.serverTime).toBeInstanceOf(Date);
      expect(beat.staleAt).toBeInstanceOf(Date);
      expect(beat.state).toBe('connected');
      // staleAt = lastSeen + staleMs, and lastSeen moved to the heartbeat.
      const lastSeen = beat.staleAt.getTime() - 60_000;
      expect(lastSeen).toBeGreaterThanOrEqual(info.lastSeen.getTime());
      expect(lastSeen).toBeLessThanOrEqual(beat.serverTime.getTime());
    }
  });

  it('answers exactly as tRPC does: numeric and string ids, jsonrpc, with and without input', async () => {
    await using t = await startServer({ clock: fixedClock(1_700_000_000_123) });
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    const seen = frameTexts(socket);
    const frames = [
      heartbeatFrame(1, superjson.serialize(undefined)),
      heartbeatFrame('s-1', { json: { clientTime: 5 } }),
      heartbeatFrame(2, { json: {} }, { jsonrpc: '2.0' }),
      // Over the fast path's 512 bytes: tRPC answers both.
      heartbeatFrame(3, { json: {} }, { pad: 'x'.repeat(600) }),
    ];
    for (const frame of frames) {
      const [fast, viaTrpc] = await bothWays(socket, seen, frame);
      expect(fast).toBe(viaTrpc);
      expect(JSON.parse(fast)).toMatchObject({ result: { type: 'data' } });
    }
  });

  it('a heartbeat tRPC refuses gets the same error as before: bad input, wrong type, lastEventId', async () => {
    await using t = await startServer();
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    const seen = frameTexts(socket);
    const refused: [string, string][] = [
      [heartbeatFrame(1, superjson.serialize({ clientTime: 'x' })), 'BAD_REQUEST'],
      [heartbeatFrame(2, superjson.serialize({ clientTime: Number.POSITIVE_INFINITY })), 'BAD_REQUEST'],
      [heartbeatFrame(3, superjson.serialize({ clientTime: 1, state: 'inGame' })), 'BAD_REQUEST'],
      [
        heartbeatFrame(
          4,
          { json: {} },
          { params: { path: 'session.heartbeat', input: { json: {} }, lastEventId: 'e' } },
        ),
        'BAD_REQUEST',
      ],
      [
        JSON.stringify({ id: 5, method: 'query', params: { path: 'session.heartbeat', input: { json: {} } } }),
        'NOT_FOUND',
      ],
      // (A frame without `input` is a heartbeat without input: tRPC answers it, test/integration/errors.test.ts.)
      [heartbeatFrame(6, 5), 'PARSE_ERROR'],
    ];
    for (const [frame, code] of refused) {
      const [fast, viaTrpc] = await bothWays(socket, seen, frame);
      expect(fast).toBe(viaTrpc);
      expect(JSON.parse(fast)).toMatchObject({ error: { json: { data: { code } } } });
    }
  });

  it('past the rate limit: TOO_MANY_REQUESTS, as from tRPC', async () => {
    await using t = await startServer({ rateLimit: 1 });
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    const seen = frameTexts(socket);
    // connectionParams is no call; the burst (2) goes to two heartbeats.
    for (const id of [1, 2]) socket.send(heartbeatFrame(id, { json: {} }));
    await vi.waitFor(() => expect(seen).toHaveLength(2));
    expect(seen.every((text) => text.includes('"type":"data"'))).toBe(true);
    const [fast, viaTrpc] = await bothWays(socket, seen, heartbeatFrame(3, { json: {} }));
    expect(fast).toBe(viaTrpc);
    expect(JSON.parse(fast)).toMatchObject({ error: { json: { data: { code: 'TOO_MANY_REQUESTS' } } } });
  });

  it('a session that has ended: UNAUTHORIZED, as from tRPC, and no activity', async () => {
    await using t = await startServer();
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    const seen = frameTexts(socket);
    const { connectionId } = (await socket.request('query', 'session.info')).result?.data as { connectionId: string };
    const handle = t.server.services.connections.get(connectionId);
    if (!handle) throw new Error('no handle');
    // Keep the socket open past the end: the server closes this stand-in instead of it.
    handle.socket = { close: () => undefined, terminate: () => undefined };
    expect(t.server.services.connections.kick(connectionId)).toBe(true);
    const lastSeen = handle.context.lastSeen;
    const [fast, viaTrpc] = await bothWays(socket, seen, heartbeatFrame(1, superjson.serialize(undefined)));
    expect(fast).toBe(viaTrpc);
    expect(JSON.parse(fast)).toMatchObject({
      error: { json: { message: 'this session has ended (kicked)', data: { code: 'UNAUTHORIZED' } } },
    });
    expect(socket.isOpen).toBe(true);
    expect(handle.context.lastSeen).toBe(lastSeen);
  });

  it('a refused socket (bad token): UNAUTHORIZED, as from tRPC', async () => {
    await using t = await startServer({ jwtSecret: 'a-secret-of-at-least-32-bytes-ok!' });
    await using socket = await RawSocket.open(t.wsUrl, { token: 'not-a-jwt' });
    const seen = frameTexts(socket);
    socket.send(heartbeatFrame(1, { json: {} }));
    await vi.waitFor(() => expect(seen).toHaveLength(1));
    expect(JSON.parse(seen[0] ?? '')).toMatchObject({ error: { json: { data: { code: 'UNAUTHORIZED' } } } });
    await expect(socket.closed).resolves.toMatchObject({ code: CloseCode.unauthorized });
  });

  it('a heartbeat frame over maxPayloadBytes closes that socket with 1009, unanswered', async () => {
    await using t = await startServer({ maxPayloadBytes: 1_024 });
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    const seen = frameTexts(socket);
    socket.send(heartbeatFrame(1, { json: {} }, { pad: 'x'.repeat(2_000) }));
    await expect(socket.closed).resolves.toMatchObject({ code: CloseCode.frameTooLarge });
    expect(seen).toHaveLength(0);
  });
});

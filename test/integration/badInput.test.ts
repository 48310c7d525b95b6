import { SignJWT } from 'jose';
import { pino } from 'pino';
import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import { signToken } from '../../src/wire/auth.js';
import type { LifecycleEvent } from '../../src/hooks.js';
import {
  CloseCode,
  type HeartbeatResult,
  type Member,
  type PresenceEvent,
  type SessionInfo,
} from '../../src/protocol.js';
import { outcome, RawSocket, type RawMethod, type RawReply } from '../support/rawSocket.js';
import { startServer, type TestServer } from '../support/server.js';

/** JSON-RPC code of PARSE_ERROR, the only error tRPC answers with `id: null`. */
const PARSE_ERROR_RPC_CODE = -32700;

/** The decoded result of a reply that must have succeeded. */
function dataOf<T>(reply: RawReply): T {
  expect(reply.error, JSON.stringify(reply.error)).toBeUndefined();
  expect(reply.result?.type).toBe('data');
  return reply.result?.data as T;
}

async function sessionInfo(socket: RawSocket): Promise<SessionInfo> {
  return dataOf<SessionInfo>(await socket.request('query', 'session.info'));
}

/** The fields of a member that only a join, a leave or a state change can alter. */
const identity = (members: Member[]) =>
  members.map(({ userId, connectionId, state, joinedAt }) => ({ userId, connectionId, state, joinedAt }));

let bystanders = 0;

/**
 * The process still serves: a new client connects, heartbeats and leaves (so it holds no slot).
 * `params` are its connectionParams; a dev user by default.
 */
async function expectServing(t: TestServer, params: Record<string, string> = { userId: `bystander-${++bystanders}` }) {
  await using socket = await RawSocket.open(t.wsUrl, params);
  const beat = dataOf<HeartbeatResult>(await socket.request('mutation', 'session.heartbeat'));
  expect(beat.serverTime).toBeInstanceOf(Date);
  expect(outcome(await socket.request('mutation', 'session.leave'))).toBe('OK');
  await expect(socket.closed).resolves.toMatchObject({ code: CloseCode.left });
}

describe('bad input over a raw socket', () => {
  describe('frames that are not tRPC messages', () => {
    const notMessages: [string, string | Buffer][] = [
      ['not JSON', 'not json'],
      ['truncated JSON', '{"id":1,"method":"query"'],
      ['a binary frame', Buffer.from([0xff, 0x00, 0x7b, 0x7d])],
      ['a JSON number', '42'],
      ['JSON null', 'null'],
      ['an object without id', '{}'],
      ['an object id', '{"id":{"a":1},"method":"query","params":{"path":"session.info","input":{"json":null}}}'],
      ['no params', '{"id":7,"method":"query"}'],
      ['an unknown method', '{"id":8,"method":"bogus","params":{"path":"session.info","input":{"json":null}}}'],
      // tRPC hands `input` to superjson before routing; a real client always sends the envelope. (A
      // frame with no `input` at all is a call without input: test/integration/errors.test.ts.)
      ['input without its superjson envelope', '{"id":9,"method":"query","params":{"path":"session.info","input":5}}'],
    ];

    it.each(notMessages)('%s: PARSE_ERROR with id null, and the socket stays usable', async (_name, frame) => {
      await using t = await startServer();
      await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });
      const before = await sessionInfo(socket);

      socket.send(frame);
      const reply = await socket.reply(null);
      expect(reply.error).toMatchObject({ code: PARSE_ERROR_RPC_CODE, data: { code: 'PARSE_ERROR' } });
      expect(socket.replies.filter((r) => r.id === null)).toHaveLength(1);
      expect(socket.unparsed).toEqual([]);

      expect(socket.isOpen).toBe(true);
      const after = await sessionInfo(socket);
      expect(after).toMatchObject({ connectionId: before.connectionId, state: 'connected', gameId: null });
      expect(t.server.services.connections.size).toBe(1);
      await expectServing(t);
    });

    it('a malformed connectionParams message: PARSE_ERROR, the socket is closed, no connection is made', async () => {
      await using t = await startServer();
      await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });
      // connectionParams values must be strings: this message is not one tRPC can read.
      await using bad = await RawSocket.openWithFirstFrame(
        t.wsUrl,
        '{"method":"connectionParams","data":{"userId":5}}',
      );
      const call = bad.call('query', 'session.info');
      expect((await bad.reply(null)).error).toMatchObject({ data: { code: 'PARSE_ERROR' } });
      expect((await bad.reply(call)).error).toMatchObject({ data: { code: 'PARSE_ERROR' } });
      // tRPC closes a socket whose context failed without a status code (1005 on the client).
      await expect(bad.closed).resolves.toMatchObject({ code: 1005 });
      expect(t.server.services.connections.size).toBe(1);
      expect((await sessionInfo(socket)).userId).toBe('alice');
      await expectServing(t);
    });
  });

  it('a 100 KB frame against maxPayloadBytes 65536 closes that socket with 1009, and only that one; it raises no error (it was logged as a failed procedure and sent to onError)', async () => {
    const errors: string[] = [];
    const logged: string[] = [];
    await using t = await startServer({
      maxPayloadBytes: 65_536,
      hooks: { onError: (_, where) => errors.push(where) },
      logger: pino({ level: 'error' }, { write: (line: string) => logged.push(line) }),
    });
    await using big = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    await using other = await RawSocket.open(t.wsUrl, { userId: 'bob' });
    const bigInfo = await sessionInfo(big);
    await sessionInfo(other);

    // Just under the limit is an ordinary frame (tRPC ignores unknown top-level keys).
    const frame = (id: number, size: number) => {
      const call = {
        id,
        method: 'mutation',
        params: { path: 'session.heartbeat', input: superjson.serialize(undefined) },
      };
      const bare = JSON.stringify({ ...call, pad: '' }).length;
      return JSON.stringify({ ...call, pad: 'x'.repeat(size - bare) });
    };
    const under = frame(1_000, 65_000);
    expect(under).toHaveLength(65_000);
    big.send(under);
    expect(outcome(await big.reply(1_000))).toBe('OK');

    const over = frame(1_001, 100 * 1024);
    expect(over).toHaveLength(100 * 1024);
    big.send(over);
    await expect(big.closed).resolves.toMatchObject({ code: CloseCode.frameTooLarge });
    expect(big.replies.some((reply) => reply.id === 1_001)).toBe(false);

    // The other socket, connected all along, is unaffected.
    expect(other.isOpen).toBe(true);
    expect(dataOf<HeartbeatResult>(await other.request('mutation', 'session.heartbeat')).state).toBe('connected');
    // The oversized socket's connection lost its socket: stale, not ended (it may still resume).
    await vi.waitFor(() => expect(t.server.services.connections.get(bigInfo.connectionId)?.state).toBe('stale'));
    await expectServing(t);
    expect(errors).toEqual([]);
    expect(logged).toEqual([]);
  });

  it('unknown procedure paths and wrong procedure types: NOT_FOUND', async () => {
    await using t = await startServer();
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    const calls: [RawMethod, string][] = [
      ['query', 'nope.nope'],
      ['mutation', 'session.nope'],
      ['subscription', 'presence.nope'],
      ['query', 'session'],
      ['query', '__proto__'],
      ['query', 'session.constructor'],
      ['query', ''],
      ['query', 'session.heartbeat'],
      ['mutation', 'session.info'],
      ['subscription', 'presence.members'],
    ];
    for (const [method, path] of calls) {
      const reply = await socket.request(method, path, { gameId: 'g1' });
      expect(reply.error, `${method} ${path}`).toMatchObject({ code: -32004, data: { code: 'NOT_FOUND' } });
    }
    expect(socket.isOpen).toBe(true);
    expect((await sessionInfo(socket)).gameId).toBeNull();
    await expectServing(t);
  });

  describe('wrong input types and bad gameIds: BAD_REQUEST, and nothing changes', () => {
    const badCalls: [string, RawMethod, string, unknown][] = [
      ['a number gameId', 'mutation', 'game.join', { gameId: 42 }],
      ['an array gameId', 'mutation', 'game.join', { gameId: ['g2'] }],
      ['an extra key', 'mutation', 'game.join', { gameId: 'g2', admin: true }],
      ['no input', 'mutation', 'game.join', undefined],
      ['null input', 'mutation', 'game.join', null],
      ['a bare string input', 'mutation', 'game.join', 'g2'],
      ['an empty gameId', 'mutation', 'game.join', { gameId: '' }],
      ['a 129-character gameId', 'mutation', 'game.join', { gameId: 'a'.repeat(129) }],
      ['a gameId with a space', 'mutation', 'game.join', { gameId: 'a b' }],
      ['a non-ASCII gameId', 'mutation', 'game.join', { gameId: 'ü' }],
      ['a path gameId', 'mutation', 'game.join', { gameId: '../x' }],
      ['a gameId with a newline', 'mutation', 'game.join', { gameId: 'g2\n' }],
      ['a string clientTime', 'mutation', 'session.heartbeat', { clientTime: 'x' }],
      ['an Infinity clientTime', 'mutation', 'session.heartbeat', { clientTime: Number.POSITIVE_INFINITY }],
      ['a heartbeat with an extra key', 'mutation', 'session.heartbeat', { clientTime: 1, state: 'inGame' }],
      ['presence.members of a bad gameId', 'query', 'presence.members', { gameId: '../x' }],
      ['presence.game of a bad gameId', 'subscription', 'presence.game', { gameId: 'a b' }],
      ['presence.game with a numeric lastEventId', 'subscription', 'presence.game', { gameId: 'g2', lastEventId: 1 }],
    ];

    it.each(badCalls)('%s', async (_name, method, path, input) => {
      const lifecycle: LifecycleEvent[] = [];
      await using t = await startServer({ hooks: { onLifecycle: (event) => lifecycle.push(event) } });
      await using alice = await RawSocket.open(t.wsUrl, { userId: 'alice' });
      await using carol = await RawSocket.open(t.wsUrl, { userId: 'carol' });
      await using bob = await RawSocket.open(t.wsUrl, { userId: 'bob' });
      // alice is in g1; carol is in no game; bob watches g1.
      expect(outcome(await alice.request('mutation', 'game.join', { gameId: 'g1' }))).toBe('OK');
      const watch = bob.call('subscription', 'presence.game', { gameId: 'g1' });
      const sync = dataOf<{ id: string; data: PresenceEvent }>(await bob.reply(watch));
      expect(sync.data.type).toBe('sync');
      const members = dataOf<Member[]>(await bob.request('query', 'presence.members', { gameId: 'g1' }));
      const stats = t.server.services.presence.stats();
      const lifecycleBefore = lifecycle.length;

      for (const socket of [alice, carol]) {
        const reply = await socket.request(method, path, input);
        expect(reply.error).toMatchObject({ code: -32600, data: { code: 'BAD_REQUEST' } });
      }

      expect(await sessionInfo(alice)).toMatchObject({ state: 'inGame', gameId: 'g1' });
      expect(await sessionInfo(carol)).toMatchObject({ state: 'connected', gameId: null });
      const after = dataOf<Member[]>(await bob.request('query', 'presence.members', { gameId: 'g1' }));
      expect(identity(after)).toEqual(identity(members));
      expect(t.server.services.presence.stats()).toEqual(stats);
      expect(lifecycle.slice(lifecycleBefore)).toEqual([]);
      // The next event bob sees is carol's valid join: nothing was published in between.
      expect(outcome(await carol.request('mutation', 'game.join', { gameId: 'g1' }))).toBe('OK');
      const events = () => bob.replies.filter((r) => r.id === watch && r.result?.type === 'data');
      const next = await bob.until('the event after the sync', () => events()[1]);
      expect(next.result?.data).toMatchObject({ data: { type: 'join', gameId: 'g1', member: { userId: 'carol' } } });
      await expectServing(t);
    });

    it('a 128-character gameId is the longest that is accepted', async () => {
      await using t = await startServer();
      await using alice = await RawSocket.open(t.wsUrl, { userId: 'alice' });
      const gameId = `${'a'.repeat(120)}_.:-Z9zz`;
      expect(gameId).toHaveLength(128);
      expect(dataOf<{ gameId: string }>(await alice.request('mutation', 'game.join', { gameId })).gameId).toBe(gameId);
      expect(await sessionInfo(alice)).toMatchObject({ state: 'inGame', gameId });
    });
  });
  it('a 2,000-call flood: TOO_MANY_REQUESTS past the burst, others answered meanwhile, usable after', async ({
    annotate,
  }) => {
    await using t = await startServer();
    await using flooder = await RawSocket.open(t.wsUrl, { userId: 'flooder' }, { timeoutMs: 15_000 });
    await using other = await RawSocket.open(t.wsUrl, { userId: 'other' });
    const { rateLimit } = t.server.config;
    expect(rateLimit).toBe(50);
    const started = performance.now();
    const { connectionId } = await sessionInfo(flooder);
    await sessionInfo(other);

    const FLOOD = 2_000;
    const ids = Array.from({ length: FLOOD }, (_, i) =>
      flooder.call('mutation', 'session.heartbeat', { clientTime: i }),
    );
    const probeSent = performance.now();
    const probe = await other.request('mutation', 'session.heartbeat');
    const latencyMs = performance.now() - probeSent;
    const floodAnsweredAtProbe = flooder.replies.length - 1;
    expect(dataOf<HeartbeatResult>(probe).state).toBe('connected');
    // A flood must not starve other clients: another client's heartbeat is answered within 1 s during it. (Whether it comes
    // before the last flood reply depends on how the kernel batches the two sockets' frames: recorded
    // in the annotation below, not asserted.)
    expect(latencyMs).toBeLessThan(1_000);

    await flooder.until('every reply to the flood', () => (flooder.replies.length > FLOOD ? true : undefined));
    const elapsedMs = performance.now() - started;
    const byId = new Map(flooder.replies.map((reply) => [reply.id, reply]));
    const outcomes = ids.map((id) => {
      const reply = byId.get(id);
      expect(reply, `reply to ${id}`).toBeDefined();
      return reply ? outcome(reply) : 'none';
    });
    expect(flooder.replies).toHaveLength(FLOOD + 1);
    const limited = outcomes.filter((code) => code === 'TOO_MANY_REQUESTS').length;
    const answered = outcomes.filter((code) => code === 'OK').length;
    expect(limited + answered).toBe(FLOOD);
    // A token bucket of 2 × rateLimit, refilled at rateLimit per second: no fewer than the burst
    // (less the session.info call), no more than the burst plus what refilled meanwhile.
    expect(answered).toBeGreaterThanOrEqual(2 * rateLimit - 1);
    expect(answered).toBeLessThanOrEqual(2 * rateLimit + Math.ceil((rateLimit * elapsedMs) / 1_000));
    expect(limited).toBeGreaterThanOrEqual(FLOOD / 2);
    await annotate(
      `flood: ${answered} answered, ${limited} TOO_MANY_REQUESTS in ${Math.round(elapsedMs)} ms; ` +
        `other client's heartbeat answered in ${latencyMs.toFixed(1)} ms with ${floodAnsweredAtProbe} flood replies out`,
    );

    // Once the bucket refills, the flooding socket works again: it was limited, not cut off.
    await vi.waitFor(async () => expect(outcome(await flooder.request('mutation', 'session.heartbeat'))).toBe('OK'), {
      timeout: 5_000,
      interval: 50,
    });
    expect(flooder.isOpen).toBe(true);
    expect(await sessionInfo(flooder)).toMatchObject({ connectionId, state: 'connected' });
    await expectServing(t);
  });

  it('a client that stops reading is cut off at maxBufferedBytes, and server memory stays bounded', async ({
    annotate,
  }) => {
    await using t = await startServer({ maxBufferedBytes: 65_536, rateLimit: 100_000, maxSubscriptions: 100 });
    await using slow = await RawSocket.open(t.wsUrl, { userId: 'slow' });
    await using mover = await RawSocket.open(t.wsUrl, { userId: 'mover' });
    await using bystander = await RawSocket.open(t.wsUrl, { userId: 'bystander' });
    const { connectionId } = await sessionInfo(slow);
    await sessionInfo(bystander);
    const handle = t.server.services.connections.get(connectionId);
    expect(handle?.socket).toBeTruthy();

    // 100 subscriptions to g1 on the slow socket: every join or leave there is 100 frames for it.
    const SUBSCRIPTIONS = 100;
    const subscriptions = Array.from({ length: SUBSCRIPTIONS }, () =>
      slow.call('subscription', 'presence.game', { gameId: 'g1' }),
    );
    const synced = (id: number) => slow.replies.some((r) => r.id === id && r.result?.type === 'data');
    await slow.until('every sync', () => (subscriptions.every(synced) ? true : undefined));
    // From here on the client reads nothing: the kernel buffers fill, then the server's.
    slow.tcpSocket.pause();

    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const MAX_CYCLES = 20_000;
    const MAX_MS = 15_000;
    const BATCH = 20;
    const started = performance.now();
    let cycles = 0;
    while (handle?.socket && cycles < MAX_CYCLES && performance.now() - started < MAX_MS) {
      let last = 0;
      for (let i = 0; i < BATCH; i++) {
        mover.call('mutation', 'game.join', { gameId: 'g1' });
        last = mover.call('mutation', 'game.leave');
      }
      expect(outcome(await mover.reply(last))).toBe('OK');
      cycles += BATCH;
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }
    const cutAfterMs = performance.now() - started;

    // The server closed its side of the slow socket (socketClosed ran for it): the connection is
    // stale and resumable, not ended.
    expect(handle?.socket).toBeNull();
    await vi.waitFor(() => expect(t.server.services.connections.get(connectionId)?.state).toBe('stale'));
    const growthMb = (rssPeak - rssBefore) / 2 ** 20;
    expect(growthMb).toBeLessThan(200);
    await annotate(
      `slow consumer cut after ${cycles} join/leave cycles (${cycles * 2 * SUBSCRIPTIONS} events published to its subscriptions) ` +
        `in ${Math.round(cutAfterMs)} ms; RSS growth peak ${growthMb.toFixed(1)} MB`,
    );

    // It was terminated, not closed: once the client reads again it finds no close frame.
    slow.tcpSocket.resume();
    await expect(slow.closed).resolves.toMatchObject({ code: 1006 });
    expect(dataOf<HeartbeatResult>(await bystander.request('mutation', 'session.heartbeat')).state).toBe('connected');
    expect(outcome(await mover.request('mutation', 'game.join', { gameId: 'g1' }))).toBe('OK');
    await expectServing(t);
  });

  describe('jwt auth refuses bad tokens: UNAUTHORIZED, close 4401, nothing created', () => {
    const SECRET = 'presenced-test-secret-0123456789';
    const key = new TextEncoder().encode(SECRET);
    const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const badCredentials: [string, () => Promise<Record<string, string>>][] = [
      ['no token (a dev userId instead)', () => Promise.resolve({ userId: 'mallory' })],
      ['a token that is not a JWT', () => Promise.resolve({ token: 'not-a-jwt' })],
      [
        'a token signed with another secret',
        async () => ({ token: await signToken({ secret: 'another-secret-0123456789abcdef', userId: 'mallory' }) }),
      ],
      [
        'an expired token',
        async () => ({
          token: await new SignJWT({})
            .setProtectedHeader({ alg: 'HS256' })
            .setSubject('mallory')
            .setIssuedAt(1_600_000_000)
            .setExpirationTime(1_600_000_060)
            .sign(key),
        }),
      ],
      [
        'an unsigned token (alg none)',
        () =>
          Promise.resolve({
            token: `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ sub: 'mallory', role: 'admin' })}.`,
          }),
      ],
      [
        'a valid signature but no sub',
        async () => ({
          token: await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(key),
        }),
      ],
    ];

    it.each(badCredentials)('%s', async (_name, credentials) => {
      const lifecycle: LifecycleEvent[] = [];
      await using t = await startServer({
        jwtSecret: SECRET,
        hooks: { onLifecycle: (event) => lifecycle.push(event) },
      });
      expect(t.server.config.auth).toBe('jwt');
      await using socket = await RawSocket.open(t.wsUrl, await credentials());

      const reply = await socket.request('mutation', 'game.join', { gameId: 'g1' });
      expect(reply.error).toMatchObject({ code: -32001, data: { code: 'UNAUTHORIZED' } });
      await expect(socket.closed).resolves.toMatchObject({ code: CloseCode.unauthorized });

      const { services } = t.server;
      expect(services.connections.size).toBe(0);
      expect(services.presence.stats()).toEqual({
        connections: 0,
        users: 0,
        games: 0,
        byState: { connected: 0, inGame: 0, stale: 0 },
        perGame: {},
      });
      expect(services.presence.user('mallory')).toMatchObject({ status: 'offline', connections: 0 });
      expect(lifecycle).toEqual([]);
      expect(services.store.pending()).toBe(0);
      await services.store.flush();
      await expect(services.store.loadNode(t.server.nodeId)).resolves.toMatchObject({ records: [], skipped: [] });
      await expect(services.store.connectionsOfUser('mallory')).resolves.toEqual([]);
      await expect(services.store.history({ limit: 10 })).resolves.toEqual([]);

      await expectServing(t, { token: await signToken({ secret: SECRET, userId: 'alice' }) });
    });
  });

  it("alice's resume token presented by bob gives bob a fresh session and leaves alice's alone", async () => {
    const lifecycle: LifecycleEvent[] = [];
    await using t = await startServer({ hooks: { onLifecycle: (event) => lifecycle.push(event) } });
    await using alice = await RawSocket.open(t.wsUrl, { userId: 'alice' });
    expect(outcome(await alice.request('mutation', 'game.join', { gameId: 'g1' }))).toBe('OK');
    const aliceInfo = await sessionInfo(alice);

    await using bob = await RawSocket.open(t.wsUrl, { userId: 'bob', resume: aliceInfo.resumeToken });
    const bobInfo = await sessionInfo(bob);
    expect(bobInfo).toMatchObject({ userId: 'bob', resumed: false, state: 'connected', gameId: null });
    expect(bobInfo.connectionId).not.toBe(aliceInfo.connectionId);
    expect(bobInfo.resumeToken).not.toBe(aliceInfo.resumeToken);

    // alice's session is untouched: same socket, same connection, same game, same token.
    expect(alice.isOpen).toBe(true);
    expect(await sessionInfo(alice)).toMatchObject({
      connectionId: aliceInfo.connectionId,
      userId: 'alice',
      state: 'inGame',
      gameId: 'g1',
      resumed: false,
      resumeToken: aliceInfo.resumeToken,
    });
    const members = dataOf<Member[]>(await bob.request('query', 'presence.members', { gameId: 'g1' }));
    expect(members).toMatchObject([{ userId: 'alice', connectionId: aliceInfo.connectionId, state: 'active' }]);
    expect(lifecycle.filter((event) => event.type === 'connection.resumed')).toEqual([]);

    // And the token still works for alice herself.
    await alice.close();
    await vi.waitFor(() => expect(t.server.services.connections.get(aliceInfo.connectionId)?.state).toBe('stale'));
    await using again = await RawSocket.open(t.wsUrl, { userId: 'alice', resume: aliceInfo.resumeToken });
    expect(await sessionInfo(again)).toMatchObject({
      connectionId: aliceInfo.connectionId,
      resumed: true,
      state: 'inGame',
      gameId: 'g1',
    });
    await expectServing(t);
  });
});

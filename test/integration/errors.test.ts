import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { MALFORMED_MESSAGE } from '../../src/errors.js';
import type { SessionInfo } from '../../src/protocol.js';
import { createMemoryStore } from '../../src/store/memory.js';
import type { PresenceStore } from '../../src/store/types.js';
import { startRedis } from '../support/redis.js';
import { RawSocket, type RawReply } from '../support/rawSocket.js';
import { startServer } from '../support/server.js';

/** JSON-RPC codes of the replies asserted here. */
const RPC = { parseError: -32700, badRequest: -32600, internal: -32603, unavailable: -32603 } as const;

/** Words of JSON.parse, superjson, TypeErrors and ioredis that once reached clients. */
const INTERNAL_WORDS = [
  'Cannot',
  'destructure',
  'undefined',
  'JSON',
  'Unexpected token',
  'TypeError',
  'is not',
  'Stream',
  'writeable',
  'ECONNREFUSED',
  'Connection',
  'redis',
  'secret internal detail',
  'Maximum call stack',
  'proto',
];

function expectNoInternalText(message: string | undefined) {
  expect(message).toBeDefined();
  for (const word of INTERNAL_WORDS) expect(message).not.toContain(word);
}

function dataOf<T>(reply: RawReply): T {
  expect(reply.error, JSON.stringify(reply.error)).toBeUndefined();
  expect(reply.result?.type).toBe('data');
  return reply.result?.data as T;
}

/** A pino logger whose JSON lines a test can read. */
function capturedLogger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n'))
        if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const INTERNAL_MESSAGE = /^internal error \(id ([0-9a-f]{12})\)$/;

describe('no internal text reaches clients', () => {
  it('a call frame without input (was: PARSE_ERROR "Cannot destructure property \'json\' of …") is a call without input', async () => {
    await using t = await startServer();
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });

    socket.send('{"id":1,"method":"query","params":{"path":"session.info"}}');
    expect(dataOf<SessionInfo>(await socket.reply(1))).toMatchObject({ userId: 'alice', state: 'connected' });

    socket.send('{"id":2,"method":"mutation","params":{"path":"session.heartbeat"}}');
    expect(dataOf<{ state: string }>(await socket.reply(2)).state).toBe('connected');

    // A procedure that needs input refuses none with its schema's BAD_REQUEST.
    socket.send('{"id":3,"method":"mutation","params":{"path":"game.join"}}');
    const join = await socket.reply(3);
    expect(join.error).toMatchObject({ code: RPC.badRequest, data: { code: 'BAD_REQUEST', path: 'game.join' } });
    expect(join.error?.message).toBe('Invalid input: expected object, received undefined');
    expect(socket.replies.filter((reply) => reply.id === null)).toEqual([]);
  });

  const malformed: [string, string | Buffer][] = [
    ['not JSON (was: "Unexpected token …")', 'not json'],
    ['truncated JSON', '{"id":1,"method":"query"'],
    ['a binary frame', Buffer.from([0xff, 0x00, 0x7b, 0x7d])],
    ['JSON null', 'null'],
    ['an object without id', '{}'],
    ['a null id', '{"id":null,"method":"query","params":{"path":"session.info","input":{"json":null}}}'],
    ['no params', '{"id":7,"method":"query"}'],
    ['an unknown method', '{"id":8,"method":"bogus","params":{"path":"session.info","input":{"json":null}}}'],
    [
      'a null input (was: "Cannot destructure property \'json\' of null")',
      '{"id":9,"method":"query","params":{"path":"session.info","input":null}}',
    ],
    ['a bare number input', '{"id":10,"method":"query","params":{"path":"session.info","input":5}}'],
    ['a string input', '{"id":11,"method":"query","params":{"path":"session.info","input":"x"}}'],
    [
      'superjson meta that does not fit its json (was: "number 1 is not iterable")',
      '{"id":12,"method":"query","params":{"path":"session.info","input":{"json":{"a":1},"meta":{"values":{"a":["map"]}}}}}',
    ],
    [
      'superjson meta naming an unknown class (was: "Maximum call stack size exceeded")',
      '{"id":13,"method":"query","params":{"path":"session.info","input":{"json":{"a":"x"},"meta":{"values":{"a":["class","Nope"]}}}}}',
    ],
    [
      'superjson meta with a string tree (was: a stack overflow, ~10 ms of CPU per frame)',
      '{"id":15,"method":"query","params":{"path":"session.info","input":{"json":{},"meta":{"values":"x"}}}}',
    ],
    [
      'superjson meta with a __proto__ path',
      '{"id":14,"method":"query","params":{"path":"session.info","input":{"json":{},"meta":{"values":{"__proto__.x":["Date"]}}}}}',
    ],
  ];

  it.each(malformed)('%s: PARSE_ERROR "malformed message", nothing else', async (_name, frame) => {
    await using t = await startServer();
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'alice' });

    socket.send(frame);
    const reply = await socket.reply(null);
    expect(reply.error).toMatchObject({
      code: RPC.parseError,
      message: MALFORMED_MESSAGE,
      data: { code: 'PARSE_ERROR' },
    });
    expectNoInternalText(reply.error?.message);
    expect(socket.unparsed).toEqual([]);
    expect(dataOf<SessionInfo>(await socket.request('query', 'session.info')).userId).toBe('alice');
  });

  it('an unexpected failure (was: its text sent to the client) answers a generic message whose id is in the log line', async () => {
    const { logger, lines } = capturedLogger();
    const memory = createMemoryStore();
    const store: PresenceStore = {
      ...memory,
      history: () => Promise.reject(new Error('secret internal detail')),
    };
    await using t = await startServer({ logger, store });
    await using admin = await RawSocket.open(t.wsUrl, { userId: 'root', role: 'admin' });

    const reply = await admin.request('query', 'admin.history', { limit: 10 });
    expect(reply.error).toMatchObject({
      code: RPC.internal,
      data: { code: 'INTERNAL_SERVER_ERROR', path: 'admin.history' },
    });
    expectNoInternalText(reply.error?.message);
    const errorId = INTERNAL_MESSAGE.exec(reply.error?.message ?? '')?.[1];
    expect(errorId, reply.error?.message).toBeDefined();

    const logged = lines.filter((line) => line['errorId'] === errorId);
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 50, msg: 'procedure failed', path: 'admin.history' });
    expect(JSON.stringify(logged[0])).toContain('secret internal detail');

    // Each failure has its own id.
    const again = await admin.request('query', 'admin.history');
    const secondId = INTERNAL_MESSAGE.exec(again.error?.message ?? '')?.[1];
    expect(secondId).toBeDefined();
    expect(secondId).not.toBe(errorId);
    expect(lines.filter((line) => line['errorId'] === secondId)).toHaveLength(1);
  });

  it('admin.history while Redis is down (was: ioredis text) answers SERVICE_UNAVAILABLE', async () => {
    await using redis = await startRedis();
    await using t = await startServer({ redisUrl: redis.url, redisPrefix: redis.prefix() });
    await using admin = await RawSocket.open(t.wsUrl, { userId: 'root', role: 'admin' });
    expect(dataOf<unknown[]>(await admin.request('query', 'admin.history', { limit: 10 }))).toEqual([]);

    await redis.kill();
    await vi.waitFor(() => expect(t.server.services.store.status()).toBe('down'), { timeout: 5_000 });
    const reply = await admin.request('query', 'admin.history', { limit: 10 });
    expect(reply.error).toMatchObject({
      code: RPC.unavailable,
      message: 'history is unavailable while the store is unreachable; try again later',
      data: { code: 'SERVICE_UNAVAILABLE', httpStatus: 503, path: 'admin.history' },
    });
    expectNoInternalText(reply.error?.message);
  });
});

describe('input validation answers one clear line', () => {
  it("a bad input (was: zod's pretty-printed JSON of every issue, as long as the input) is BAD_REQUEST with path: message", async () => {
    await using t = await startServer();
    await using socket = await RawSocket.open(t.wsUrl, { userId: 'root', role: 'admin' });

    const bad = await socket.request('mutation', 'game.join', { gameId: 'a b' });
    expect(bad.error).toMatchObject({
      code: RPC.badRequest,
      message: 'gameId: gameId must be 1–128 characters of [A-Za-z0-9_.:-]',
      data: { code: 'BAD_REQUEST', path: 'game.join' },
    });

    // Issues past the third are counted, not listed, and a long one is cut.
    const many = await socket.request('query', 'admin.history', {
      userId: 5,
      limit: 'x',
      [`k${'y'.repeat(10_000)}`]: 1,
    });
    expect(many.error?.data.code).toBe('BAD_REQUEST');
    const message = many.error?.message ?? '';
    expect(message.split('\n')).toHaveLength(1);
    expect(message.length).toBeLessThan(700);
    expect(message).toContain('userId: ');
    expect(message).toContain('limit: ');
  });
});

describe('admin queries are bounded', () => {
  it.each(['admin.history', 'admin.connections'])(
    '%s with limit 10,000 (was: built and sent that many rows) is BAD_REQUEST past 1000',
    async (path) => {
      await using t = await startServer();
      await using admin = await RawSocket.open(t.wsUrl, { userId: 'root', role: 'admin' });
      for (const limit of [1001, 10_000]) {
        const reply = await admin.request('query', path, { limit });
        expect(reply.error).toMatchObject({ code: RPC.badRequest, data: { code: 'BAD_REQUEST', path } });
        expect(reply.error?.message).toBe('limit: must be at most 1000 (the history a store keeps)');
      }
      expect(dataOf<unknown[]>(await admin.request('query', path, { limit: 1000 }))).toBeInstanceOf(Array);
    },
  );
});

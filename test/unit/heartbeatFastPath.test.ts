import { transformTRPCResponse } from '@trpc/server';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { heartbeatReply, parseHeartbeatCall, type HeartbeatCall } from '../../src/wire/heartbeatFastPath.js';
import type { HeartbeatResult } from '../../src/protocol.js';
import { appRouter } from '../../src/router/index.js';

const frame = (message: unknown) => Buffer.from(JSON.stringify(message));
const heartbeat = (input: unknown, extra: Record<string, unknown> = {}) =>
  frame({ id: 1, method: 'mutation', params: { path: 'session.heartbeat', input }, ...extra });

describe('heartbeat fast path: which frames it answers', () => {
  it.each([
    ['a raw client, clientTime', heartbeat({ json: { clientTime: 1_700_000_000_000 } })],
    ['the typed client, no input', heartbeat(superjson.serialize(undefined))],
    ['an empty input object', heartbeat({ json: {} })],
    ['no json at all', heartbeat({})],
    [
      'a string id and jsonrpc 2.0',
      frame({
        id: 'a"b',
        jsonrpc: '2.0',
        method: 'mutation',
        params: { path: 'session.heartbeat', input: { json: null, meta: { values: ['undefined'] } } },
      }),
    ],
  ])('%s', (_name, data) => {
    expect(parseHeartbeatCall(data)).not.toBeNull();
  });

  // Declined frames go on to tRPC, which answers them (errors included) as it always did.
  it.each([
    ['a query', frame({ id: 1, method: 'query', params: { path: 'session.heartbeat', input: { json: {} } } })],
    ['another path', frame({ id: 1, method: 'mutation', params: { path: 'session.leave', input: { json: {} } } })],
    [
      'a path that only contains it',
      frame({ id: 1, method: 'mutation', params: { path: 'x.session.heartbeat', input: { json: {} } } }),
    ],
    ['a batch', Buffer.from(`[${heartbeat({ json: {} }).toString()}]`)],
    ['a null id', frame({ id: null, method: 'mutation', params: { path: 'session.heartbeat', input: { json: {} } } })],
    [
      'an object id',
      frame({ id: { a: 1 }, method: 'mutation', params: { path: 'session.heartbeat', input: { json: {} } } }),
    ],
    ['jsonrpc 1.0', heartbeat({ json: {} }, { jsonrpc: '1.0' })],
    [
      'a lastEventId',
      frame({
        id: 1,
        method: 'mutation',
        params: { path: 'session.heartbeat', input: { json: {} }, lastEventId: 'x' },
      }),
    ],
    ['no input', heartbeat(undefined)],
    ['a bare input', heartbeat(5)],
    ['a string clientTime', heartbeat({ json: { clientTime: 'x' } })],
    ['an extra key', heartbeat({ json: { clientTime: 1, state: 'inGame' } })],
    ['an Infinity clientTime', heartbeat(superjson.serialize({ clientTime: Number.POSITIVE_INFINITY }))],
    ['a broken meta', heartbeat({ json: {}, meta: { values: { clientTime: ['nonsense'] } } })],
    ['not JSON', Buffer.from('{"id":1,"method":"mutation","params":{"path":"session.heartbeat"')],
    ['over 512 bytes', heartbeat({ json: {} }, { pad: 'x'.repeat(512) })],
  ])('declines %s', (_name, data) => {
    expect(parseHeartbeatCall(data)).toBeNull();
  });
});

describe('heartbeat fast path: a meta that is not an annotation tree', () => {
  it('is declined before superjson walks it (a string `values` made it recurse until the stack overflowed)', () => {
    const data = heartbeat({ json: {}, meta: { values: 'x' } });
    const started = performance.now();
    for (let i = 0; i < 100; i++) expect(parseHeartbeatCall(data)).toBeNull();
    // 100 frames: superjson's overflow cost about 7 ms each (700 ms); declining costs microseconds.
    expect(performance.now() - started).toBeLessThan(100);
  });
});

describe('heartbeat fast path: the exact texts clients write', () => {
  // The typed client's frames, byte for byte (params.input before params.path), and a JSON client's.
  const canonical = [
    '{"id":3,"method":"mutation","params":{"input":{"json":null,"meta":{"values":["undefined"],"v":1}},"path":"session.heartbeat"}}',
    '{"id":4,"method":"mutation","params":{"input":{"json":{"clientTime":1234.5}},"path":"session.heartbeat"}}',
    '{"id":0,"method":"mutation","params":{"input":{"json":{}},"path":"session.heartbeat"}}',
    '{"id":999999999999999,"method":"mutation","params":{"path":"session.heartbeat","input":{"json":{"clientTime":-1.5e-3}}}}',
    '{"id":5,"method":"mutation","params":{"path":"session.heartbeat","input":{"json":{"clientTime":0}}}}',
  ];

  it.each(canonical)('%s: as JSON.parse and superjson read it', (text) => {
    const call = parseHeartbeatCall(Buffer.from(text));
    expect(call).not.toBeNull();
    // Re-indented, the same message is no exact text: it takes the general way, to the same call.
    const general = Buffer.from(JSON.stringify(JSON.parse(text), null, 1));
    expect(call).toEqual(parseHeartbeatCall(general));
  });

  it.each([
    [
      'an Infinity clientTime',
      '{"id":6,"method":"mutation","params":{"path":"session.heartbeat","input":{"json":{"clientTime":1e999}}}}',
    ],
    ['a leading zero id', '{"id":07,"method":"mutation","params":{"path":"session.heartbeat","input":{"json":{}}}}'],
    [
      'a non-ASCII byte',
      '{"id":8,"method":"mutation","params":{"path":"session.heartbeat","input":{"json":{"clientTime":1}}}}\u00e9',
    ],
  ])('declines %s', (_name, text) => {
    expect(parseHeartbeatCall(Buffer.from(text))).toBeNull();
  });
});

describe('heartbeat fast path: its reply is the bytes tRPC sends', () => {
  const calls: HeartbeatCall[] = [
    { id: 1, jsonrpc: undefined },
    { id: 2 ** 40 + 0.5, jsonrpc: '2.0' },
    { id: 'with "quotes" and \\ and \u2028', jsonrpc: undefined },
    { id: '', jsonrpc: '2.0' },
  ];
  const results: HeartbeatResult[] = [
    { serverTime: new Date(1_700_000_000_000), state: 'connected', staleAt: new Date(1_700_000_060_000) },
    { serverTime: new Date(1_700_000_000_001), state: 'inGame', staleAt: new Date(1_700_000_060_001) },
    { serverTime: new Date(0), state: 'stale', staleAt: new Date(253_402_300_799_999) },
  ];
  const viaTrpc = (call: HeartbeatCall, result: HeartbeatResult) =>
    JSON.stringify(
      transformTRPCResponse(appRouter._def._config, {
        id: call.id,
        jsonrpc: call.jsonrpc,
        result: { type: 'data', data: result },
      }),
    );

  it('for every id, jsonrpc, state and time (and again, from its date cache)', () => {
    for (const call of calls) {
      for (const result of [...results, ...results]) {
        expect(heartbeatReply(call, result)).toBe(viaTrpc(call, result));
      }
    }
  });
});

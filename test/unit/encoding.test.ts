import { transformTRPCResponse } from '@trpc/server';
import { jsonEncoder } from '@trpc/server/adapters/ws';
import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import { PresenceError } from '../../src/errors.js';
import type { PresenceEvent } from '../../src/protocol.js';
import { appRouter } from '../../src/router/index.js';
import { transformer } from '../../src/transformer.js';
import { TrpcProtocol, type ProtocolSocket } from '../../src/wire/trpcProtocol.js';

const member = (n: number) => ({
  userId: `user.${n}`,
  connectionId: `c-${n}`,
  state: 'active' as const,
  joinedAt: new Date(1_700_000_000_000 + n),
  lastSeen: new Date(1_700_000_000_500 + n),
});

/** A subscription's data frame as tRPC's ws adapter builds it, before transformation. */
const dataFrame = (subscription: number | string, jsonrpc: '2.0' | undefined, id: string, data: object) => ({
  id: subscription,
  jsonrpc,
  result: { type: 'data' as const, data: { id, data }, id },
});

/** What tRPC's adapter writes: the response through the router's transformer, then its JSON encoder. */
const viaTrpc = (frame: ReturnType<typeof dataFrame>) =>
  jsonEncoder.encode(transformTRPCResponse(appRouter._def._config, frame));
/** What plain superjson and JSON write, independently of the router's configuration. */
const plain = (frame: ReturnType<typeof dataFrame>) =>
  JSON.stringify({ ...frame, result: { ...frame.result, data: superjson.serialize(frame.result.data) } });

const protocol = () =>
  new TrpcProtocol<ProtocolSocket>({
    router: appRouter,
    createContext: () => Promise.reject(new Error('no sockets here')),
    onError: () => undefined,
    directEvents: true,
  });

describe('shared encoding of presence events', () => {
  const events: PresenceEvent[] = [
    { type: 'join', gameId: 'g.1', member: member(1) },
    { type: 'leave', gameId: 'g.1', member: member(2), reason: 'expired' },
    { type: 'sync', gameId: 'g.1', members: [member(1), member(2), member(3)] },
  ];

  it('writes the bytes superjson and tRPC would, for every subscriber of a shared event', () => {
    const wire = protocol();
    for (const [n, event] of events.entries()) {
      for (const subscription of [1, 'two', 'quote " and \\ and \u2028']) {
        for (const jsonrpc of [undefined, '2.0'] as const) {
          const frame = dataFrame(subscription, jsonrpc, `e-${n}`, event);
          const written = wire.eventFrame(subscription, jsonrpc, `e-${n}`, event);
          expect(written).toBe(viaTrpc(frame));
          expect(written).toBe(plain(frame));
        }
      }
    }
  });

  it('serialises a shared event once, and again for another id', () => {
    const wire = protocol();
    const serialize = vi.spyOn(appRouter._def._config.transformer.output, 'serialize');
    try {
      const event = { type: 'join', gameId: 'g', member: member(7) };
      for (const subscription of [1, 2, 3]) wire.eventFrame(subscription, undefined, 'e-1', event);
      expect(serialize).toHaveBeenCalledTimes(1);
      const other = wire.eventFrame(4, undefined, 'e-2', event);
      expect(serialize).toHaveBeenCalledTimes(2);
      expect(other).toBe(plain(dataFrame(4, undefined, 'e-2', event)));
    } finally {
      serialize.mockRestore();
    }
  });
});

/** The error `fn` throws, which must be ours (not a TypeError or RangeError of superjson's). */
function refusal(fn: () => unknown): PresenceError {
  try {
    fn();
  } catch (error) {
    if (error instanceof PresenceError) return error;
    throw error;
  }
  throw new Error('nothing was thrown');
}

describe('input deserialisation', () => {
  const deserialize = (value: unknown): unknown => transformer.input.deserialize(value);

  it('reads what superjson writes for the inputs of our procedures: undefined, numbers, NaN, Infinity', () => {
    const values: unknown[] = [
      undefined,
      null,
      { clientTime: 5 },
      { clientTime: Number.POSITIVE_INFINITY },
      { gameId: 'g1', lastEventId: 'x', gone: undefined },
    ];
    for (const value of values) expect(deserialize(superjson.serialize(value))).toEqual(value);
    expect(deserialize(superjson.serialize({ clientTime: Number.NaN }))).toEqual({ clientTime: Number.NaN });
  });

  const sharedPair = () => {
    const shared = { n: 1 };
    return { a: shared, b: shared };
  };
  it.each([
    ['a Date', superjson.serialize({ at: new Date(0) })],
    ['a Map of Sets of bigints', superjson.serialize([new Map([['k', new Set([1n, 2n])]])])],
    ['a bigint (1 MB of digits cost about 150 ms)', superjson.serialize({ n: 10n ** 100n })],
    ['a RegExp', superjson.serialize(/x/g)],
    ['shared values (referentialEqualities)', superjson.serialize(sharedPair())],
  ])(
    'refuses %s: no input of ours carries one, and rebuilding it can cost far more than the frame',
    (_name, envelope) => {
      expect(refusal(() => deserialize(envelope)).code).toBe('BAD_REQUEST');
    },
  );

  it('refuses more annotated values than any input has (a 100,000-key tree)', () => {
    const values = Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, ['undefined']]));
    const started = performance.now();
    expect(refusal(() => deserialize({ json: {}, meta: { values } })).code).toBe('BAD_REQUEST');
    expect(performance.now() - started).toBeLessThan(50);
  });

  it('a frame without input is no input', () => {
    expect(deserialize(undefined)).toBeUndefined();
  });

  it.each([
    ['null', null],
    ['a number', 5],
    ['a string', 'x'],
    ['an array', [1]],
  ])('refuses %s for an envelope with our error, not a TypeError', (_name, value) => {
    expect(refusal(() => deserialize(value)).code).toBe('BAD_REQUEST');
  });

  it.each([
    ['a string tree', { json: {}, meta: { values: 'x' } }],
    ['a string where children belong', { json: { a: 1 }, meta: { values: ['x', 'y'] } }],
    ['a string child', { json: { a: 1 }, meta: { values: { a: 'undefined' } } }],
    ['a tree deeper than any input', { json: {}, meta: { values: nested(80) } }],
    ['meta that is not an object', { json: {}, meta: 'x' }],
  ])(
    'superjson meta with %s (was: a stack overflow, ~10 ms of CPU per frame) is refused before superjson walks it',
    (_name, envelope) => {
      expect(refusal(() => deserialize(envelope)).code).toBe('BAD_REQUEST');
    },
  );
});

/** `{ a: { a: … ['undefined'] } }`, `depth` levels deep. */
function nested(depth: number): object {
  let tree: object = ['undefined'];
  for (let i = 0; i < depth; i++) tree = { a: tree };
  return tree;
}

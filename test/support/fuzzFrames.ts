import fc from 'fast-check';

/**
 * What the fuzz test (test/integration/fuzz.test.ts) sends a real server: arbitraries for whole
 * cases, each a few sockets and their frames. A case is plain data (strings, byte arrays, numbers),
 * so fast-check can shrink it and print it, and `runFuzzCase` (fuzzClient.ts) replays it exactly.
 */

/** One WebSocket frame: text, bytes sent as a binary frame, or bytes sent as a text frame (invalid UTF-8 allowed). */
export type Frame = { text: string } | { binary: Uint8Array } | { textBytes: Uint8Array };

/** How a socket starts. */
export type Opening =
  /** `?connectionParams=1`, then a `connectionParams` message whose `data` is this value. */
  | { kind: 'params'; data: unknown }
  /** `?connectionParams=1`, then this frame in the place of the `connectionParams` message. */
  | { kind: 'firstFrame'; frame: Frame }
  /** No `?connectionParams=1`: the context is made at once, with no params (a refused socket). */
  | { kind: 'noParams' }
  /** `?connectionParams=1`, and nothing is ever sent: the server must not keep it forever. */
  | { kind: 'silent' };

/** How a socket ends: a close handshake, `terminate()`, a TCP reset, or never (only `silent` sockets). */
export type SocketEnd = 'close' | 'terminate' | 'reset' | 'linger';

export interface SocketPlan {
  opening: Opening;
  frames: Frame[];
  end: SocketEnd;
}

export type FuzzCase =
  | { kind: 'sockets'; sockets: SocketPlan[] }
  /** `count` sockets of one user at once (the per-user cap is 10), each sending `frames`. */
  | { kind: 'crowd'; userId: string; count: number; frames: Frame[]; end: Exclude<SocketEnd, 'linger'> }
  /** A hand-written HTTP upgrade request over TCP, then a reset (before or after the answer) or an end. */
  | { kind: 'upgrade'; path: string; headers: string[]; end: 'resetNow' | 'resetAfterAnswer' | 'end' }
  /** Many subscriptions on one authenticated socket. */
  | { kind: 'subscriptions'; userId: string; calls: { path: string; input: unknown }[]; end: SocketEnd };

/** Every procedure of the router and its type (src/router/*). */
export const PROCEDURES = [
  ['query', 'session.info'],
  ['mutation', 'session.heartbeat'],
  ['mutation', 'session.leave'],
  ['subscription', 'session.events'],
  ['mutation', 'game.join'],
  ['mutation', 'game.leave'],
  ['subscription', 'presence.game'],
  ['subscription', 'presence.user'],
  ['query', 'presence.isOnline'],
  ['query', 'presence.members'],
  ['query', 'presence.opponent'],
  ['query', 'admin.stats'],
  ['query', 'admin.connections'],
  ['mutation', 'admin.kick'],
  ['query', 'admin.history'],
  ['subscription', 'admin.watch'],
] as const;

const UNKNOWN_PATHS = [
  'nope',
  '',
  'session',
  'session.nope',
  '__proto__',
  'constructor',
  'session.__proto__',
  'game.constructor',
  'toString',
  'presence.game.x',
  'admin',
  '.',
  'session..info',
];

/** Characters that broke or could break something: lone surrogates, bidi controls, NUL, emoji, CJK, JSON syntax. */
const ODD_CHARS = [
  '\u0000',
  '\uD800',
  '\uDBFF',
  '\uDFFF',
  '\u200F',
  '\u202E',
  '\u2066',
  '\uFEFF',
  '\u2028',
  '\u0301',
  '😀',
  '👩‍👩‍👧‍👦',
  '🏳️‍🌈',
  '中',
  '日本',
  '한',
  'é',
  '\r\n',
  '"',
  '\\',
  '{',
  '%00',
  '../',
  ' ',
  'a',
];

export const oddString = fc
  .array(fc.oneof(fc.constantFrom(...ODD_CHARS), fc.string({ unit: 'binary', maxLength: 4 })), { maxLength: 24 })
  .map((parts) => parts.join(''));

/** A string of `count` repetitions of one odd or plain character: 1 to 70,000 (over the 64 KiB payload). */
const hugeString = fc
  .tuple(fc.constantFrom('a', '中', '😀', '\uD800', '\u0000'), fc.integer({ min: 1, max: 70_000 }))
  .map(([char, count]) => char.repeat(count));

/** 20–200 CJK characters and emoji: 60–800 bytes of UTF-8, over every close reason's 123 bytes. */
export const wideUserId = fc
  .array(fc.constantFrom('中', '文', '日', '本', '한', '글', '😀', '🎮', '👩‍💻', '\u200F'), {
    minLength: 20,
    maxLength: 200,
  })
  .map((chars) => chars.join(''));

const userId = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('alice', 'bob', 'carol') },
  { weight: 2, arbitrary: wideUserId },
  { weight: 1, arbitrary: oddString },
  { weight: 1, arbitrary: fc.constantFrom(256, 257, 5_000).map((n) => 'u'.repeat(n)) },
  { weight: 1, arbitrary: hugeString },
);

const gameId = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('g1', 'g2', 'chess:42') },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.:-]{1,128}$/) },
  { weight: 1, arbitrary: fc.constantFrom(128, 129).map((n) => 'g'.repeat(n)) },
  { weight: 1, arbitrary: oddString },
  { weight: 1, arbitrary: hugeString },
);

/** Any JSON, numbers that JSON cannot carry, and odd strings. */
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Infinity, -0, 1e308, Number.MAX_SAFE_INTEGER + 2) },
  { weight: 1, arbitrary: oddString },
);

/** Inputs shaped like the procedures' own, with values that may or may not pass their schemas. */
const shapedInput: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({ gameId }),
  fc.record(
    { gameId, lastEventId: fc.oneof(fc.string({ maxLength: 70 }), oddString, anyValue) },
    { requiredKeys: ['gameId'] },
  ),
  fc.record({ userId }),
  fc.record({ clientTime: fc.oneof(fc.double(), anyValue) }),
  fc.record({ connectionId: fc.oneof(fc.uuid(), oddString, hugeString) }),
  fc.record({ userId, gameId, limit: fc.oneof(fc.integer(), anyValue) }, { requiredKeys: [] }),
  fc.record({ gameId, extra: anyValue }),
  fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'gameId', 'toString'), anyValue),
);

/** superjson `meta` annotations, including ones that name classes and paths that do not exist. */
const annotation = fc.constantFrom<unknown>(
  'undefined',
  'bigint',
  'Date',
  'regexp',
  'set',
  'map',
  'symbol',
  'number',
  'Error',
  'URL',
  ['class', 'Nope'],
  ['custom', 'Nope'],
  ['symbol', 'x'],
  'nope',
  42,
  null,
);
const metaPath = fc.constantFrom(
  'gameId',
  'userId',
  'clientTime',
  'limit',
  '__proto__',
  'constructor.prototype',
  'a.b.c',
  '0',
  '',
  'gameId.length',
);
const meta: fc.Arbitrary<unknown> = fc.oneof(
  fc.record({
    values: fc.oneof(
      fc.array(annotation, { maxLength: 2 }),
      fc.dictionary(metaPath, fc.array(annotation, { maxLength: 2 })),
    ),
    v: fc.constantFrom(1, 2),
  }),
  fc.record({
    referentialEqualities: fc.dictionary(metaPath, fc.array(metaPath, { maxLength: 2 })),
    v: fc.constant(1),
  }),
  anyValue,
);

/** `params.input`: a superjson envelope (the usual), with random `meta`, without an envelope, or absent. */
const trpcInput: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(shapedInput, anyValue).map((json) => ({ json })) },
  { weight: 2, arbitrary: fc.record({ json: fc.oneof(shapedInput, anyValue), meta }) },
  { weight: 1, arbitrary: fc.constant({ json: null, meta: { values: ['undefined'], v: 1 } }) },
  { weight: 1, arbitrary: fc.oneof(shapedInput, anyValue) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const messageId = fc.oneof(
  { weight: 4, arbitrary: fc.nat({ max: 1_000 }) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, 1.5, 2 ** 53 + 1, 1e21, null, true, {}, [], '') },
  { weight: 1, arbitrary: fc.oneof(oddString, hugeString) },
);

const procedure = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...PROCEDURES) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom('query', 'mutation', 'subscription'), fc.constantFrom(...UNKNOWN_PATHS)),
  },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('query', 'mutation', 'subscription'), oddString) },
);

const method = (own: string) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant<unknown>(own) },
    { weight: 2, arbitrary: fc.constantFrom<unknown>('query', 'mutation', 'subscription', 'subscription.stop') },
    { weight: 1, arbitrary: fc.oneof(oddString, anyValue) },
  );

/** A tRPC request: `{ id, jsonrpc?, method, params: { path, input, lastEventId? } }`, fields sometimes wrong or missing. */
export const trpcMessage: fc.Arbitrary<Record<string, unknown>> = procedure.chain(([own, path]) =>
  fc.record(
    {
      id: messageId,
      jsonrpc: fc.constantFrom<unknown>('2.0', '1.0', 2, null),
      method: method(own),
      params: fc.oneof(
        {
          weight: 8,
          arbitrary: fc.record(
            { path: fc.constant(path), input: trpcInput, lastEventId: fc.oneof(fc.string(), anyValue) },
            { requiredKeys: ['path', 'input'] },
          ),
        },
        { weight: 1, arbitrary: anyValue },
      ),
    },
    { requiredKeys: ['id', 'method', 'params'] },
  ),
);

const text = (value: unknown): Frame => ({ text: JSON.stringify(value) ?? 'undefined' });

/** A batch: usually within `maxBatchSize`, sometimes just over it or far over it, sometimes empty. */
const batch = (maxBatchSize: number) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.array(trpcMessage, { minLength: 1, maxLength: 8 }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(trpcMessage, fc.integer({ min: maxBatchSize - 1, max: maxBatchSize + 40 }))
        .map(([m, n]) => Array.from({ length: n }, (_, i) => ({ ...m, id: i }))),
    },
    { weight: 1, arbitrary: fc.constant([]) },
  );

/** Bytes that are not a tRPC message: random, truncated JSON, invalid UTF-8, PING/PONG, oversized. */
const junkFrame = (maxPayloadBytes: number): fc.Arbitrary<Frame> =>
  fc.oneof(
    fc.uint8Array({ maxLength: 300 }).map((binary) => ({ binary })),
    fc.uint8Array({ maxLength: 300 }).map((textBytes) => ({ textBytes })),
    fc.constantFrom('PING', 'PONG', '', ' ', '[]', '{}', 'null', '"x"', '[[]]', '{"id":1}').map((t) => ({ text: t })),
    fc.tuple(trpcMessage, fc.nat()).map(([m, cut]) => {
      const whole = JSON.stringify(m);
      return { text: whole.slice(0, cut % (whole.length + 1)) };
    }),
    trpcMessage.map((m) => ({ binary: new Uint8Array(Buffer.from(JSON.stringify(m))) })),
    fc.integer({ min: maxPayloadBytes - 64, max: maxPayloadBytes + 40_000 }).map((n) => ({ text: 'x'.repeat(n) })),
  );

export interface FrameBounds {
  maxPayloadBytes: number;
  maxBatchSize: number;
}

export const frame = (bounds: FrameBounds): fc.Arbitrary<Frame> =>
  fc.oneof(
    { weight: 6, arbitrary: trpcMessage.map(text) },
    { weight: 2, arbitrary: batch(bounds.maxBatchSize).map(text) },
    { weight: 2, arbitrary: junkFrame(bounds.maxPayloadBytes) },
  );

/** `connectionParams.data`: a valid dev user (often an admin), wrong types, odd and very long ids. */
const paramsData: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ userId, role: fc.constantFrom('admin', 'user', 'root', '') }, { requiredKeys: ['userId'] }),
  },
  { weight: 1, arbitrary: fc.record({ userId, resume: fc.oneof(fc.uuid(), oddString, hugeString) }) },
  {
    weight: 1,
    arbitrary: fc.dictionary(fc.oneof(fc.constantFrom('userId', 'token', 'role', '__proto__'), oddString), anyValue),
  },
  { weight: 1, arbitrary: anyValue },
);

const opening = (bounds: FrameBounds): fc.Arbitrary<Opening> =>
  fc.oneof(
    { weight: 6, arbitrary: paramsData.map((data) => ({ kind: 'params' as const, data })) },
    { weight: 1, arbitrary: frame(bounds).map((f) => ({ kind: 'firstFrame' as const, frame: f })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'noParams' as const }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'silent' as const }) },
  );

const closingEnd = fc.constantFrom<Exclude<SocketEnd, 'linger'>>('close', 'terminate', 'reset');

const socketPlan = (bounds: FrameBounds): fc.Arbitrary<SocketPlan> =>
  opening(bounds).chain((o) =>
    o.kind === 'silent'
      ? fc
          .constantFrom<SocketEnd>('linger', 'close', 'reset')
          .map((end): SocketPlan => ({ opening: o, frames: [], end }))
      : fc.record({ opening: fc.constant(o), frames: fc.array(frame(bounds), { maxLength: 6 }), end: closingEnd }),
  );

/** Paths an upgrade request may name: ours, with a query, others, traversal, garbage. */
const upgradePath = fc.oneof(
  fc.constantFrom('/trpc', '/trpc?connectionParams=1', '/', '/health', '/trpc/', '/TRPC', '/trpc/../x', '*', '//trpc'),
  oddString.map((s) => `/${encodeURI(s.replace(/[\uD800-\uDFFF]/g, ''))}`),
);
const upgradeHeaders: fc.Arbitrary<string[]> = fc.oneof<fc.Arbitrary<string[]>[]>(
  fc.constant([
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  ]),
  fc.constant(['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 8', 'Sec-WebSocket-Key: x']),
  fc.constant(['Upgrade: websocket', 'Connection: Upgrade']),
  fc
    .array(fc.stringMatching(/^[A-Za-z-]{1,20}: [ -~]{0,40}$/), { maxLength: 4 })
    .map((h) => ['Upgrade: websocket', 'Connection: Upgrade', ...h]),
);

export function fuzzCase(bounds: FrameBounds): fc.Arbitrary<FuzzCase> {
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({
        kind: fc.constant('sockets' as const),
        sockets: fc.array(socketPlan(bounds), { minLength: 1, maxLength: 3 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('crowd' as const),
        userId,
        count: fc.integer({ min: 1, max: 14 }),
        frames: fc.array(frame(bounds), { maxLength: 2 }),
        end: closingEnd,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('upgrade' as const),
        path: upgradePath,
        headers: upgradeHeaders,
        end: fc.constantFrom<'resetNow' | 'resetAfterAnswer' | 'end'>('resetNow', 'resetAfterAnswer', 'end'),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('subscriptions' as const),
        userId,
        calls: fc.array(
          fc.oneof(
            fc.record({ path: fc.constant('presence.game'), input: fc.record({ gameId }) }),
            fc.record({ path: fc.constant('presence.user'), input: fc.record({ userId }) }),
            fc.record({ path: fc.constantFrom('session.events', 'admin.watch'), input: fc.constant(undefined) }),
          ),
          { minLength: 1, maxLength: 300 },
        ),
        end: fc.constantFrom<SocketEnd>('close', 'terminate', 'reset'),
      }),
    },
  );
}

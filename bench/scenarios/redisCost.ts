/**
 * Scenario: Redis commands per operation (INFO commandstats deltas) for the two peers that use Redis.
 * presenced writes behind, every 1 s: each window waits past a flush, and the node's background
 * (PING and proof-of-life HSET, measured on an idle window first) is subtracted before dividing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connectMany, withPeer, type Peer, type PeerClient, type Scenario } from '../lib/harness.js';
import { commandDelta, totalCalls, type BenchRedis, type CommandCounts } from '../lib/redis.js';
import { fmt, ratio, table } from '../lib/report.js';
import { handRolled, presencedRedis } from '../peers/index.js';

const CLIENTS = 50;
const HEARTBEATS_EACH = 10;
const MEMBER_QUERIES = 10;
/**
 * After each step, until its commands have reached Redis: for presenced, until a write-behind flush
 * that began after the step has run (every flush writes the node's proof of life with one HSET, after
 * the index SADDs and SREMs, so a new HSET means the step's writes are in); the hand-rolled manager's
 * commands are all answered before its acks, so a short pause covers it.
 */
async function settle(peer: Peer, redis: BenchRedis) {
  if (peer !== presencedRedis) return sleep(200);
  const hsets = async () => (await redis.commandCounts()).get('hset') ?? 0;
  const before = await hsets();
  const deadline = performance.now() + 3_000;
  while ((await hsets()) === before && performance.now() < deadline) await sleep(50);
  // The rest of that pipeline (HDEL, EXPIRE, ZADD), sent with it.
  await sleep(50);
}
const GAME = 'cost';

interface Operation {
  name: string;
  count: number;
  run(clients: PeerClient[]): Promise<void>;
}

const operations = (connect: () => Promise<PeerClient[]>, clients: PeerClient[]): Operation[] => [
  { name: 'connect', count: CLIENTS, run: async () => void clients.push(...(await connect())) },
  {
    name: 'heartbeat',
    count: CLIENTS * HEARTBEATS_EACH,
    run: async (all) => {
      for (let i = 0; i < HEARTBEATS_EACH; i++) await Promise.all(all.map((client) => client.heartbeat()));
    },
  },
  { name: 'join', count: CLIENTS, run: async (all) => void (await Promise.all(all.map((c) => c.join(GAME)))) },
  {
    name: `members of ${CLIENTS}`,
    count: MEMBER_QUERIES,
    run: async (all) => {
      for (let i = 0; i < MEMBER_QUERIES; i++) await all[i % all.length]?.members(GAME);
    },
  },
  { name: 'leave', count: CLIENTS, run: async (all) => void (await Promise.all(all.map((c) => c.leave()))) },
  {
    name: 'disconnect',
    count: CLIENTS,
    run: async (all) => {
      await Promise.all(all.map((client) => client.close()));
      all.length = 0;
    },
  },
];

const describe = (counts: CommandCounts, per: number) =>
  [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([name, calls]) => `${name.toUpperCase()} ${fmt(calls / per, 2)}`)
    .join(', ');

async function measure(peer: Peer, server: Parameters<Peer['connect']>[0], redis: BenchRedis, idleMs: number) {
  const idleStart = performance.now();
  const idleBefore = await redis.commandCounts();
  await sleep(idleMs);
  const idle = totalCalls(commandDelta(idleBefore, await redis.commandCounts()));
  const backgroundPerMs = idle / (performance.now() - idleStart);
  const clients: PeerClient[] = [];
  const results = new Map<string, { perOp: number; breakdown: string }>();
  for (const operation of operations(() => connectMany(peer, server, CLIENTS, 'cost'), clients)) {
    const before = await redis.commandCounts();
    const started = performance.now();
    await operation.run(clients);
    await settle(peer, redis);
    const delta = commandDelta(before, await redis.commandCounts());
    const background = backgroundPerMs * (performance.now() - started);
    results.set(operation.name, {
      perOp: Math.max(0, totalCalls(delta) - background) / operation.count,
      breakdown: describe(delta, operation.count),
    });
  }
  return { results, backgroundPerSecond: backgroundPerMs * 1000 };
}

const run: Scenario['run'] = async (options) => {
  const measured = new Map<string, Awaited<ReturnType<typeof measure>>>();
  // Both peers at once, each with its own redis-server: these figures are counts, not times.
  await Promise.all(
    [handRolled, presencedRedis].map((peer) =>
      withPeer(peer, async (server, redis) => {
        if (!redis) throw new Error(`${peer.label} has no Redis`);
        measured.set(peer.label, await measure(peer, server, redis, options.quick ? 1_000 : 3_000));
        options.log(`  ${peer.label}: measured`);
      }),
    ),
  );
  const hand = measured.get(handRolled.label);
  const ours = measured.get(presencedRedis.label);
  if (!hand || !ours) throw new Error('missing Redis cost measurements');
  const rows: string[][] = [];
  for (const [name, handCost] of hand.results) {
    const ourCost = ours.results.get(name);
    if (!ourCost) continue;
    options.figure(`Redis commands per ${name}`, handRolled.label, handCost.perOp);
    options.figure(`Redis commands per ${name}`, presencedRedis.label, ourCost.perOp);
    rows.push([
      name,
      fmt(handCost.perOp, 2),
      fmt(ourCost.perOp, 2),
      ratio(ourCost.perOp / handCost.perOp),
      handCost.breakdown || '—',
      ourCost.breakdown || '—',
    ]);
  }
  rows.push([
    'background per second (idle node)',
    fmt(hand.backgroundPerSecond, 2),
    fmt(ours.backgroundPerSecond, 2),
    '—',
    '—',
    'PING (health check), HSET (proof of life, with the flush)',
  ]);
  return [
    {
      title: 'Redis commands per operation',
      method:
        `INFO commandstats before and after each step on the peer's own redis-server (the measuring INFO calls excluded): ${CLIENTS} connects, ` +
        `${fmt(CLIENTS * HEARTBEATS_EACH)} heartbeats, ${CLIENTS} joins of one game, ${MEMBER_QUERIES} member lists of that ${CLIENTS}-member game, ${CLIENTS} leaves, ` +
        `${CLIENTS} disconnects, each window closed once presenced's next write-behind flush (every 1 s; seen as its proof-of-life HSET) has run after the step (0.2 s for the hand-rolled manager, whose commands are all answered before it acks). ` +
        'The background rate of an idle node (3 s, QUICK 1 s, no clients) times the window is subtracted, then divided by the operations. Both peers are measured at the same time (counts, not times).',
      table: table(
        [
          'operation',
          'hand-rolled cmds/op',
          'presenced + Redis cmds/op',
          'presenced ÷ hand-rolled',
          'hand-rolled commands (per op, incl. background)',
          'presenced commands (per op, incl. background)',
        ],
        rows,
      ),
      notes: [
        'presenced batches every change of a second into one pipeline (one HSET for all records + SADD/SREM for index sets), so per-operation figures fall as load rises; these are at 50 operations per window, a low batching factor. Its members list and heartbeats are served from memory on a single node.',
        'A presenced disconnect is a socket close: the connection goes `stale` (rewritten once) and is removed from Redis only when it expires (4 min later by default), outside this window. The hand-rolled manager deletes at once.',
        'The hand-rolled stale sweep (SCAN conn:* + HGETALL each, every 60 s) adds ⌈connections ÷ 100⌉ SCANs and one HGETALL per connection per sweep on top of these figures; presenced keeps deadlines in process.',
      ],
    },
  ];
};

export const redisCost: Scenario = { name: 'redis', run };

/**
 * Redis suite, scenario 1: Redis commands per operation. `presenced serve` is a child process with
 * REDIS_URL pointing at a private redis-server; the clients are raw tRPC sessions in this process.
 * Commands are read from Redis' own counters (`INFO commandstats`) before and after each phase.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { redisKeys } from '../src/store/redis.js';
import { table, verdict, type Section, type Verdict } from './lib/markdown.js';
import type { ScenarioOptions } from './lib/scenario.js';
import { closedLoop, countsDelta, startPaced } from './lib/paced.js';
import { inBatches, RawSession } from './lib/rawSession.js';
import {
  commandDelta,
  startBenchRedis,
  waitForFlushAfter,
  waitForWholeFlushAfter,
  waitUntil,
  type BenchRedis,
  type CommandDelta,
} from './lib/redis.js';
import { startServerProcess, type ServerProcess } from './lib/serverProcess.js';
import { fmt } from './lib/stats.js';

/** Members per game: the reference figure of the hand-rolled pattern is for a game of 50. */
const GAME_SIZE = 50;
const HEARTBEAT_SESSIONS = 1_000;
const CLOSED_LOOP_SESSIONS = 200;
/** The defaults' ratio (25 s of 60 s), shortened so a window holds several heartbeats per session. */
const HEARTBEAT_MS = 2_500;
const STALE_MS = 6_000;
const CLOSED_LOOP_WARMUP_MS = 500;

/** Commands per operation of the hand-rolled pattern that presenced replaces (Socket.IO + Redis, counted by hand). */
const REFERENCE = { connect: 5, heartbeat: 5, join: 6, members: 51 } as const;
/** The targets, in Redis commands per operation. */
const TARGET = { connect: 2, join: 2, members: 1, heartbeat: 0.2 } as const;

interface Phase {
  label: string;
  count: number;
  delta: CommandDelta;
  seconds: number;
  target: number | null;
  reference: number | null;
  /** Heartbeat phases: server CPU seconds over the window. */
  serverCpu?: number;
}

interface ConnectionCounts {
  total: number;
  byState: { connected: number; inGame: number; stale: number };
}

async function connectionCounts(server: ServerProcess): Promise<ConnectionCounts> {
  const response = await fetch(`${server.url}/health/connections`);
  return (await response.json()) as ConnectionCounts;
}

/**
 * Runs `action` and returns what Redis received until every write it caused went out: until a flush
 * that started after the last answer (it took everything marked before), and with `stored` until
 * the expected state is in Redis too (an `HDEL` comes after that flush's `HSET`).
 */
async function measure(
  redis: BenchRedis,
  nodeKey: string,
  action: () => Promise<void>,
  stored?: () => Promise<boolean>,
): Promise<{ delta: CommandDelta; seconds: number }> {
  const before = await redis.counters();
  const start = performance.now();
  await action();
  await waitForFlushAfter(redis, nodeKey, Date.now());
  if (stored) await waitUntil('the expected state in Redis', stored, 10_000, 20);
  const after = await redis.counters();
  return { delta: commandDelta(before, after), seconds: (performance.now() - start) / 1000 };
}

function expect(what: string, actual: number, expected: number) {
  if (actual !== expected) throw new Error(`${what}: expected ${expected}, got ${actual}`);
}

/** A server under test, started ahead (see `redisOpsScenario`). */
interface Started {
  redis: BenchRedis;
  server: ServerProcess;
  prefix: string;
  nodeId: string;
  /** Epoch ms just before the spawn: every flush stamped after it is this process'. */
  spawnedAt: number;
}

async function startOn(redis: BenchRedis, nodeId: string, env: Record<string, string> = {}): Promise<Started> {
  const prefix = redis.prefix();
  const spawnedAt = Date.now();
  const server = await startServerProcess({
    REDIS_URL: redis.url,
    PRESENCED_REDIS_PREFIX: prefix,
    PRESENCED_NODE_ID: nodeId,
    ...env,
  });
  return { redis, server, prefix, nodeId, spawnedAt };
}

/** Connect, join, members, disconnect and leave on one server with the default timings. */
async function lifecyclePhases(started: Started, n: number, log: (line: string) => void): Promise<Phase[]> {
  const { redis, server, prefix, nodeId } = started;
  const keys = redisKeys(prefix);
  let sessions: RawSession[] = [];
  const phases: Phase[] = [];
  const gameOf = (i: number) => `ops-g${Math.floor(i / GAME_SIZE)}`;
  const games = Math.ceil(n / GAME_SIZE);
  const nodeKey = keys.node(nodeId);
  const storedCount = async () => (await redis.probe.hlen(nodeKey)) - 1;
  const gameMembers = async () => {
    const pipeline = redis.probe.pipeline();
    for (let g = 0; g < games; g++) pipeline.scard(keys.game(`ops-g${g}`));
    const replies = (await pipeline.exec()) ?? [];
    return replies.reduce((sum, [, value]) => sum + Number(value), 0);
  };
  try {
    // The first flush after a start refreshes the TTL of every key it knows (then once every 20 min):
    // not a cost of the operations measured here (see the notes). Long over if the server started early.
    await waitForWholeFlushAfter(redis, nodeKey, started.spawnedAt);

    const connect = await measure(
      redis,
      nodeKey,
      async () => {
        sessions = await inBatches(n, 50, (i) => RawSession.open(server.wsUrl, `ops-${i}`));
      },
      async () => (await storedCount()) === n,
    );
    phases.push({
      label: 'connect (fresh session)',
      count: n,
      ...connect,
      target: TARGET.connect,
      reference: REFERENCE.connect,
    });
    log(`  connect: ${connect.delta.total} commands for ${n} (${fmt(connect.seconds, 1)} s)`);

    const join = await measure(
      redis,
      nodeKey,
      async () => {
        await inBatches(n, 50, async (i) => {
          await sessions[i]?.call('mutation', 'game.join', { gameId: gameOf(i) });
        });
      },
      async () => (await gameMembers()) === n,
    );
    for (let g = 0; g < games; g++) {
      const size = Math.min(GAME_SIZE, n - g * GAME_SIZE);
      expect(`members of ops-g${g} in Redis`, await redis.probe.scard(keys.game(`ops-g${g}`)), size);
    }
    phases.push({
      label: `\`game.join\` (games of ${GAME_SIZE})`,
      count: n,
      ...join,
      target: TARGET.join,
      reference: REFERENCE.join,
    });
    log(`  join: ${join.delta.total} commands for ${n}`);

    const members = await measure(redis, nodeKey, async () => {
      await inBatches(n, 50, async (i) => {
        const list = await sessions[i]?.call('query', 'presence.members', { gameId: gameOf(i) });
        if (!Array.isArray(list) || list.length !== Math.min(GAME_SIZE, n - Math.floor(i / GAME_SIZE) * GAME_SIZE))
          throw new Error(
            `presence.members of ${gameOf(i)} returned ${Array.isArray(list) ? list.length : 'no'} members`,
          );
      });
    });
    phases.push({
      label: `\`presence.members\` (a game of ${GAME_SIZE})`,
      count: n,
      ...members,
      target: TARGET.members,
      reference: REFERENCE.members,
    });
    log(`  members: ${members.delta.total} commands for ${n}`);

    const half = Math.floor(n / 2);
    const disconnect = await measure(redis, nodeKey, async () => {
      await Promise.all(sessions.slice(0, half).map((session) => session.close()));
      await waitUntil(
        'the closed sockets to be stale',
        async () => (await connectionCounts(server)).byState.stale === half,
      );
    });
    phases.push({
      label: 'disconnect (socket closed, no leave)',
      count: half,
      ...disconnect,
      target: null,
      reference: null,
    });
    log(`  disconnect: ${disconnect.delta.total} commands for ${half}`);

    const leaving = sessions.slice(half);
    const leave = await measure(
      redis,
      nodeKey,
      async () => {
        await inBatches(leaving.length, 50, async (i) => {
          const session = leaving[i];
          if (!session) return;
          await session.call('mutation', 'session.leave');
          await session.closed();
        });
      },
      async () => (await storedCount()) === half,
    );
    expect('connections after leave', (await connectionCounts(server)).total, half);
    phases.push({ label: '`session.leave`', count: leaving.length, ...leave, target: null, reference: null });
    log(`  leave: ${leave.delta.total} commands for ${leaving.length}`);
  } finally {
    await Promise.all(sessions.map((session) => session.close()));
  }
  return phases;
}

/** Heartbeats, paced (steady state) and closed loop. */
async function heartbeatPhases(started: Started, options: ScenarioOptions): Promise<Phase[]> {
  const { redis, server, prefix } = started;
  const { quick, log } = options;
  const pacedMs = quick ? 6_000 : 15_000;
  const closedMs = quick ? 3_000 : 10_000;
  let sessions: RawSession[] = [];
  const phases: Phase[] = [];
  try {
    sessions = await inBatches(HEARTBEAT_SESSIONS, 50, (i) => RawSession.open(server.wsUrl, `hb-${i}`));
    const paced = startPaced(sessions, HEARTBEAT_MS);
    try {
      // Warm-up: until the connects are written (a flush that started after the last one). From the
      // random phases on, heartbeats arrive at a steady rate.
      await waitForFlushAfter(redis, redisKeys(prefix).node(started.nodeId), Date.now());
      const before = await redis.counters();
      const counts = { ...paced.counts };
      const cpu = server.cpuSeconds();
      const start = performance.now();
      await sleep(pacedMs);
      const after = await redis.counters();
      const window = countsDelta(counts, paced.counts);
      phases.push({
        label: `heartbeat, paced (steady state): ${fmt(HEARTBEAT_SESSIONS)} sessions, one each ${fmt(HEARTBEAT_MS / 1000, 1)} s`,
        count: window.answered,
        delta: commandDelta(before, after),
        seconds: (performance.now() - start) / 1000,
        target: TARGET.heartbeat,
        reference: REFERENCE.heartbeat,
        serverCpu: server.cpuSeconds() - cpu,
      });
      if (window.errors > 0) throw new Error(`${window.errors} paced heartbeats failed`);
      log(`  paced: ${window.answered} heartbeats in ${pacedMs} ms`);
      // The closed loop is CPU-bound: nothing may run beside it (the restore scenario fills its
      // Redis in the background until now). The sessions keep heartbeating meanwhile, so none
      // goes stale while it waits.
      await options.quiet();
    } finally {
      await paced.stop();
    }

    // The closed loop runs on the first sessions; the others leave the picture (their sockets close).
    const others = sessions.slice(CLOSED_LOOP_SESSIONS);
    await Promise.all(others.map((session) => session.close()));
    await waitUntil(
      'the closed sockets to be stale',
      async () => (await connectionCounts(server)).byState.stale === others.length,
    );
    const looping = sessions.slice(0, CLOSED_LOOP_SESSIONS);
    await closedLoop(looping, CLOSED_LOOP_WARMUP_MS);
    const before = await redis.counters();
    const cpu = server.cpuSeconds();
    const start = performance.now();
    const counts = await closedLoop(looping, closedMs);
    const after = await redis.counters();
    if (counts.errors > 0) throw new Error(`${counts.errors} closed-loop heartbeats failed`);
    phases.push({
      label: `heartbeat, closed loop: ${CLOSED_LOOP_SESSIONS} sessions back to back`,
      count: counts.answered,
      delta: commandDelta(before, after),
      seconds: (performance.now() - start) / 1000,
      target: TARGET.heartbeat,
      reference: REFERENCE.heartbeat,
      serverCpu: server.cpuSeconds() - cpu,
    });
    log(`  closed loop: ${counts.answered} heartbeats in ${closedMs} ms`);
  } finally {
    await Promise.all(sessions.map((session) => session.close()));
  }
  return phases;
}

const perOp = (phase: Phase) => phase.delta.total / phase.count;

function breakdown(delta: CommandDelta): string {
  return delta.byCommand.map(([command, calls]) => `${command} ${fmt(calls)}`).join(', ') || 'none';
}

interface Servers {
  lifecycle: Started;
  heartbeat: Started;
}

/**
 * Both servers under test, each on its own redis-server (so one's flushes and PINGs never land in
 * the other's windows), started at once and ahead of the scenario (a start is ~1 s of loading the
 * sources, and a fresh server's first flush is not an operation's cost).
 */
async function startServers(): Promise<Servers> {
  const owned: AsyncDisposable[] = [];
  try {
    const lifecycleRedis = await startBenchRedis();
    owned.push(lifecycleRedis);
    const heartbeatRedis = await startBenchRedis();
    owned.push(heartbeatRedis);
    const starting = [
      startOn(lifecycleRedis, 'bench-ops'),
      startOn(heartbeatRedis, 'bench-heartbeat', {
        PRESENCED_HEARTBEAT_MS: String(HEARTBEAT_MS),
        PRESENCED_STALE_MS: String(STALE_MS),
        // The closed loop must never be throttled.
        PRESENCED_RATE_LIMIT: '1000000',
      }),
    ] as const;
    const results = await Promise.allSettled(starting);
    for (const result of results) if (result.status === 'fulfilled') owned.unshift(result.value.server);
    const [lifecycle, heartbeat] = results;
    if (lifecycle.status === 'rejected') throw lifecycle.reason;
    if (heartbeat.status === 'rejected') throw heartbeat.reason;
    return { lifecycle: lifecycle.value, heartbeat: heartbeat.value };
  } catch (error) {
    for (const resource of owned) await resource[Symbol.asyncDispose]();
    throw error;
  }
}

async function stopServers(servers: Servers) {
  await Promise.all([servers.lifecycle.server.stop(), servers.heartbeat.server.stop()]);
  await servers.lifecycle.redis[Symbol.asyncDispose]();
  await servers.heartbeat.redis[Symbol.asyncDispose]();
}

/** Redis commands per operation; `prepare` starts the servers ahead. */
export function redisOpsScenario() {
  let starting: Promise<Servers> | null = null;
  const start = () => (starting ??= startServers());
  return {
    name: 'Redis commands per operation',
    async prepare(): Promise<void> {
      await start();
    },
    async run(options: ScenarioOptions): Promise<Section[]> {
      const servers = await start();
      const phases: Phase[] = [];
      try {
        phases.push(...(await lifecyclePhases(servers.lifecycle, options.quick ? 500 : 2_000, options.log)));
        phases.push(...(await heartbeatPhases(servers.heartbeat, options)));
      } finally {
        await stopServers(servers);
      }
      return report(phases, options.quick);
    },
  };
}

function report(phases: Phase[], quick: boolean): Section[] {
  const n = quick ? 500 : 2_000;
  const targets: Section['targets'] = [];
  const rows = phases.map((phase) => {
    const value = perOp(phase);
    let met: Verdict = '—';
    if (phase.target !== null) {
      met = verdict(value <= phase.target);
      targets.push({
        name: `Redis commands per ${phase.label.split(/[:(]/)[0]?.trim()} ≤ ${fmt(phase.target, 1)}`,
        verdict: met,
      });
    }
    return [
      phase.label,
      fmt(phase.count),
      fmt(phase.delta.total),
      fmt(value, value < 0.1 ? 4 : 3),
      phase.target === null ? '—' : `≤ ${fmt(phase.target, 1)}`,
      met,
      phase.reference === null ? '—' : fmt(phase.reference),
      breakdown(phase.delta),
      fmt(phase.delta.pings),
      fmt(phase.delta.netInputBytes / phase.count),
      fmt(phase.seconds, 1),
    ];
  });
  const cpuNotes = phases
    .filter((phase) => phase.serverCpu !== undefined)
    .map(
      (phase) =>
        `${phase.label}: ${fmt(phase.count / phase.seconds)} heartbeats/s, server CPU ${fmt(((phase.serverCpu ?? 0) / phase.count) * 1000, 3)} s per 1,000 (${fmt((phase.serverCpu ?? 0) / phase.seconds, 2)} cores busy).`,
    );
  return [
    {
      title: 'Redis commands per operation',
      method:
        '`node --import tsx src/tools/cli.ts serve` as a child process with `REDIS_URL` (a private `redis-server` on a free loopback port), its own `PRESENCED_REDIS_PREFIX` and `PRESENCED_NODE_ID`; ' +
        `clients are raw tRPC sessions (\`ws\`, dev auth, \`connectionParams\` + \`session.info\`) in the benchmark process, 50 in flight. ` +
        `Lifecycle rows: one server with the default timings and its own redis-server; ${fmt(n)} sessions connect, join games of ${GAME_SIZE}, each queries its game's members, then half close their sockets and half call \`session.leave\`. ` +
        `Heartbeat rows: a second server (its own redis-server) with PRESENCED_HEARTBEAT_MS=${HEARTBEAT_MS}, PRESENCED_STALE_MS=${STALE_MS} (the defaults' ratio, 25 s of 60 s) and no rate limit; ` +
        `paced: ${fmt(HEARTBEAT_SESSIONS)} sessions each heartbeating every ${fmt(HEARTBEAT_MS / 1000, 1)} s from a random phase, counted over ${quick ? 6 : 15} s after a warm-up until the connects were written (the first flush after the last connect); ` +
        `closed loop: ${CLOSED_LOOP_SESSIONS} of them back to back for ${quick ? 3 : 10} s after ${CLOSED_LOOP_WARMUP_MS / 1000} s of warm-up (the other ${fmt(HEARTBEAT_SESSIONS - CLOSED_LOOP_SESSIONS)} closed their sockets first). ` +
        "Commands are Redis' own `INFO commandstats` deltas (sum of `calls`) over each window. A lifecycle window ends once every write it caused went out: when a flush that started after the last answer has written the node's `:alive` field (a flush takes everything marked before it), and for connect, join and leave also once the expected state is in Redis (HLEN of the node hash, SCARD of the game sets).",
      table: table(
        [
          'operation',
          'operations',
          'Redis commands',
          'per operation',
          'target',
          'met?',
          'hand-rolled reference',
          'commands by type',
          'PINGs (excluded)',
          'bytes to Redis per operation',
          'window (s)',
        ],
        rows,
      ),
      notes: [
        "Not counted: the store's own keep-alive `PING` (one a second, shown apart) and the benchmark's `INFO`, `HGET`, `HLEN` and `SCARD` (its polls and checks of the stored state). Everything else Redis executed in the window is counted, including the flushes of an idle node: every flush is one pipeline with one `HSET` that carries the changed records and the node's `:alive` field, once a second even when nothing changed, so a window of w seconds holds about w `HSET`s whatever the load.",
        'The hand-rolled reference column is what the pattern users replace sends: 5 per connect, 5 per heartbeat, 6 per join, 51 per `members` query of a game of 50.',
        '"bytes to Redis" is `total_net_input_bytes` of `INFO stats` over the window divided by the operations (it includes the probe\'s few `INFO` requests, ~40 bytes each): a heartbeat costs almost no commands, but the record it eventually rewrites (each connection once its deadline has moved by half of PRESENCED_STALE_MS, i.e. every second heartbeat here) is a full JSON snapshot inside the shared `HSET`.',
        "Per `session.leave`: `SREM` from the user's and the game's set and the `HDEL` are write-behind (the `HDEL` batched, one per flush), but the history record is appended at once, per ended session, as its own `ZADD` + `ZREMRANGEBYRANK` pipeline.",
        "Not in any window: the first flush after a start, and then one every 20 minutes (a third of the one-hour TTL), refreshes the TTL of every key the node knows: one `EXPIRE` for the node hash and for each user and game set of every live connection (501 `EXPIRE`s when 500 connects landed before a fresh server's first flush, in a trial run; see the restore section for 10,000 and 50,000). The windows here start after that first flush (the servers are started ahead, with the suite, and idle until their scenario).",
        ...cpuNotes,
        'The restore scenario fills its own redis-server in the background (a server process and a client process) from the start of the suite, so the fill may still run during the lifecycle and paced phases: that changes no count here, but window lengths and the paced CPU figure are then taken on a busier machine. The closed loop waits for the fill to end.',
      ],
      targets,
    },
  ];
}

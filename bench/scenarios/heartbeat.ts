/**
 * Scenario: 200 clients heartbeat in a closed loop (next heartbeat as soon as the previous is
 * acknowledged). Acks per second, latency p50/p99, and server + Redis CPU seconds (utime + stime
 * from /proc, both processes) and Redis commands per 1,000 heartbeats over the measured window.
 */
import { closeClients, connectMany, eachPeer, type Peer, type PeerClient, type Scenario } from '../lib/harness.js';
import type { ServerProcess } from '../lib/proc.js';
import { commandDelta, totalCalls, type BenchRedis } from '../lib/redis.js';
import { fmt, median, quantile, table } from '../lib/report.js';
import { peers } from '../peers/index.js';

const HEARTBEAT_CLIENTS = 200;

async function closedLoop(client: PeerClient, until: number, latencies: number[], errors: { count: number }) {
  while (performance.now() < until) {
    const start = performance.now();
    try {
      await client.heartbeat();
    } catch {
      errors.count++;
      continue;
    }
    const end = performance.now();
    if (end <= until) latencies.push(end - start);
  }
}

/** Cumulative CPU seconds of the server and its Redis. */
const cpu = (server: ServerProcess, redis: BenchRedis | undefined) => server.cpuSeconds() + (redis?.cpuSeconds() ?? 0);

/** Warm-up, then `durationMs` measured. */
async function heartbeatLoad(
  clients: PeerClient[],
  server: ServerProcess,
  redis: BenchRedis | undefined,
  warmupMs: number,
  durationMs: number,
) {
  const errors = { count: 0 };
  const warm = performance.now() + warmupMs;
  await Promise.all(clients.map((client) => closedLoop(client, warm, [], errors)));
  const latencies: number[] = [];
  const commandsBefore = await redis?.commandCounts();
  let cpuEnd = 0;
  const cpuStart = cpu(server, redis);
  const timer = setTimeout(() => (cpuEnd = cpu(server, redis)), durationMs);
  await Promise.all(clients.map((client) => closedLoop(client, performance.now() + durationMs, latencies, errors)));
  clearTimeout(timer);
  if (cpuEnd === 0) cpuEnd = cpu(server, redis);
  const commandsAfter = await redis?.commandCounts();
  const commands = commandsBefore && commandsAfter ? totalCalls(commandDelta(commandsBefore, commandsAfter)) : 0;
  return {
    count: latencies.length,
    errors: errors.count,
    latencies,
    cpuSeconds: cpuEnd - cpuStart,
    redisCommands: commands,
  };
}

interface HeartbeatRun {
  rate: number;
  p50: number;
  p99: number;
  cpuPer1000: number;
  coresBusy: number;
  commandsPerHeartbeat: number;
  errors: number;
}

async function measurePeer(
  peer: Peer,
  server: ServerProcess,
  redis: BenchRedis | undefined,
  warmupMs: number,
  durationMs: number,
): Promise<HeartbeatRun> {
  const clients = await connectMany(peer, server, HEARTBEAT_CLIENTS, 'hb');
  try {
    const load = await heartbeatLoad(clients, server, redis, warmupMs, durationMs);
    const sorted = [...load.latencies].sort((a, b) => a - b);
    return {
      rate: load.count / (durationMs / 1000),
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      cpuPer1000: (load.cpuSeconds / load.count) * 1000,
      coresBusy: load.cpuSeconds / (durationMs / 1000),
      commandsPerHeartbeat: redis ? load.redisCommands / load.count : Number.NaN,
      errors: load.errors,
    };
  } finally {
    await closeClients(clients);
  }
}

async function run(options: Parameters<Scenario['run']>[0]) {
  const durationMs = options.quick ? 1_500 : 10_000;
  const warmupMs = options.quick ? 200 : 2_000;
  // Per-heartbeat CPU of one peer moves by ±20% from run to run on this machine: the full run
  // measures every peer three times, each round in another order, and takes the medians.
  const rounds = options.quick ? 1 : 3;
  const runs = new Map<Peer, HeartbeatRun[]>(peers.map((peer) => [peer, []]));
  const rows: string[][] = [];
  const row = (label: string, run: HeartbeatRun, usesRedis: boolean) => [
    label,
    fmt(run.rate),
    fmt(run.p50, 2),
    fmt(run.p99, 2),
    fmt(run.cpuPer1000, 3),
    fmt(run.coresBusy, 2),
    usesRedis && Number.isFinite(run.commandsPerHeartbeat) ? fmt(run.commandsPerHeartbeat, 3) : '—',
    fmt(run.errors),
  ];
  for (let round = 0; round < rounds; round++) {
    const order = [...peers.slice(round % peers.length), ...peers.slice(0, round % peers.length)];
    await eachPeer(order, async (peer, server, redis) => {
      const run = await measurePeer(peer, server, redis, warmupMs, durationMs);
      runs.get(peer)?.push(run);
      rows.push(row(rounds > 1 ? `${peer.label}, round ${round + 1}` : peer.label, run, peer.usesRedis));
      options.log(`  ${peer.label}: ${fmt(run.rate)} acks/s, ${fmt(run.cpuPer1000, 3)} CPU-s/1000`);
    });
  }
  for (const peer of peers) {
    const mine = runs.get(peer) ?? [];
    const mid = (pick: (run: HeartbeatRun) => number) => median(mine.map(pick));
    const summary: HeartbeatRun = {
      rate: mid((run) => run.rate),
      p50: mid((run) => run.p50),
      p99: mid((run) => run.p99),
      cpuPer1000: mid((run) => run.cpuPer1000),
      coresBusy: mid((run) => run.coresBusy),
      commandsPerHeartbeat: mid((run) => run.commandsPerHeartbeat),
      errors: mine.reduce((sum, run) => sum + run.errors, 0),
    };
    const fig = (measure: string, value: number) => options.figure(measure, peer.label, value);
    fig('heartbeat acks per second', summary.rate);
    fig('heartbeat latency p50 (ms)', summary.p50);
    fig('heartbeat latency p99 (ms)', summary.p99);
    fig('server + Redis CPU s per 1,000 heartbeats', summary.cpuPer1000);
    if (peer.usesRedis) fig('Redis commands per heartbeat (closed loop, all commands)', summary.commandsPerHeartbeat);
    if (rounds > 1) rows.push(row(`**${peer.label}, median**`, summary, peer.usesRedis));
  }
  return [
    {
      title: 'Heartbeats, closed loop',
      method:
        `${HEARTBEAT_CLIENTS} clients per peer, each heartbeating back to back for ${durationMs / 1000} s after ${warmupMs / 1000} s of warm-up` +
        (rounds > 1
          ? `, every peer ${rounds} times in rotating order (the comparison takes the medians; errors are summed) `
          : ' ') +
        '(bare ws: `{t:"hb"}` → ack; Socket.IO: `emitWithAck("heartbeat")`, whose handler runs the manager\'s 5 awaited commands; presenced: the `session.heartbeat` mutation). ' +
        'CPU is utime + stime from /proc of the server process plus its redis-server, over the measured window.',
      table: table(
        [
          'peer',
          'acks/s',
          'p50 (ms)',
          'p99 (ms)',
          'server + Redis CPU s / 1,000',
          'server + Redis cores busy',
          'Redis commands / heartbeat',
          'errors',
        ],
        rows,
      ),
      notes: [
        "Servers and the benchmark process (all clients) share the machine's 2 cores: acks/s and latency are bounded by whichever saturates first; CPU per 1,000 heartbeats is the figure that carries to other machines.",
        'In each round every peer is started (with its redis-server) before the first is measured, and stopped once measured: an idle server costs the one measured next to nothing.',
        "presenced's Redis commands in this window are its background (a PING and one HSET of the node's proof of life per second), not per heartbeat: a heartbeat only moves `lastSeen` in memory and is written once its deadline moved by half of `staleMs`.",
      ],
    },
  ];
}

export const heartbeat: Scenario = { name: 'heartbeat', run };

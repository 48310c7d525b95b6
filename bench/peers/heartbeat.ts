/**
 * Scenario: 200 clients heartbeat in a closed loop (next heartbeat as soon as the previous is
 * acknowledged). Acks per second, latency p50/p99, and server + Redis CPU seconds (utime + stime
 * from /proc, both processes) and Redis commands per 1,000 heartbeats over the measured window.
 */
import type { BenchRedis } from '../lib/benchRedis.js';
import { commandDelta, totalCalls } from '../lib/benchRedis.js';
import { nowMicros, type MicrosWindow } from '../lib/cpuProfile.js';
import { table, type Section } from '../lib/markdown.js';
import type { PeerClient } from '../lib/peer.js';
import { closeClients, connectMany, recordFigure, withPeer, type ScenarioOptions } from '../lib/peerRun.js';
import type { ServerProcess } from '../lib/serverProcess.js';
import { fmt, quantile } from '../lib/stats.js';
import { peers } from './peers.js';

export const HEARTBEAT_CLIENTS = 200;

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

export interface HeartbeatLoad {
  count: number;
  errors: number;
  latencies: number[];
  cpuSeconds: number;
  redisCommands: number;
  /** The measured part (after the warm-up). */
  window: MicrosWindow;
}

/** Warm-up, then `durationMs` measured; used by the scenario and by the profiler. */
export async function heartbeatLoad(
  clients: PeerClient[],
  server: ServerProcess,
  redis: BenchRedis | undefined,
  warmupMs: number,
  durationMs: number,
): Promise<HeartbeatLoad> {
  const errors = { count: 0 };
  const warm = performance.now() + warmupMs;
  await Promise.all(clients.map((client) => closedLoop(client, warm, [], errors)));
  const latencies: number[] = [];
  const commandsBefore = await redis?.commandCounts();
  let cpuEnd = 0;
  const cpuStart = cpu(server, redis);
  const from = nowMicros();
  const timer = setTimeout(() => (cpuEnd = cpu(server, redis)), durationMs);
  await Promise.all(clients.map((client) => closedLoop(client, performance.now() + durationMs, latencies, errors)));
  clearTimeout(timer);
  const to = nowMicros();
  if (cpuEnd === 0) cpuEnd = cpu(server, redis);
  const commandsAfter = await redis?.commandCounts();
  const commands = commandsBefore && commandsAfter ? totalCalls(commandDelta(commandsBefore, commandsAfter)) : 0;
  return {
    count: latencies.length,
    errors: errors.count,
    latencies,
    cpuSeconds: cpuEnd - cpuStart,
    redisCommands: commands,
    window: { from, to },
  };
}

export async function runHeartbeat(options: ScenarioOptions): Promise<Section[]> {
  const durationMs = options.quick ? 2_000 : 10_000;
  const warmupMs = options.quick ? 300 : 2_000;
  const rows: string[][] = [];
  for (const peer of peers) {
    await withPeer(peer, async (server, redis) => {
      const clients = await connectMany(peer, server, HEARTBEAT_CLIENTS, 'hb');
      try {
        const load = await heartbeatLoad(clients, server, redis, warmupMs, durationMs);
        const sorted = [...load.latencies].sort((a, b) => a - b);
        const rate = load.count / (durationMs / 1000);
        const cpuPer1000 = (load.cpuSeconds / load.count) * 1000;
        const commandsPerHeartbeat = load.redisCommands / load.count;
        const fig = (measure: string, value: number) => recordFigure(options.figures, measure, peer.label, value);
        fig('heartbeat acks per second', rate);
        fig('heartbeat latency p50 (ms)', quantile(sorted, 0.5));
        fig('heartbeat latency p99 (ms)', quantile(sorted, 0.99));
        fig('server + Redis CPU s per 1,000 heartbeats', cpuPer1000);
        if (redis) fig('Redis commands per heartbeat (closed loop, all commands)', commandsPerHeartbeat);
        rows.push([
          peer.label,
          fmt(rate),
          fmt(quantile(sorted, 0.5), 2),
          fmt(quantile(sorted, 0.99), 2),
          fmt(cpuPer1000, 3),
          fmt(load.cpuSeconds / (durationMs / 1000), 2),
          redis ? fmt(commandsPerHeartbeat, 3) : '—',
          fmt(load.errors),
        ]);
        options.log(`  ${peer.label}: ${fmt(rate)} acks/s, ${fmt(cpuPer1000, 3)} CPU-s/1000`);
      } finally {
        await closeClients(clients);
      }
    });
  }
  return [
    {
      title: 'Heartbeats, closed loop',
      method:
        `${HEARTBEAT_CLIENTS} clients per peer, each heartbeating back to back for ${durationMs / 1000} s after ${warmupMs / 1000} s of warm-up ` +
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
        "presenced's Redis commands in this window are its background (a PING and one HSET of the node's proof of life per second), not per heartbeat: a heartbeat only moves `lastSeen` in memory and is written once its deadline moved by half of `staleMs`.",
      ],
      targets: [],
    },
  ];
}

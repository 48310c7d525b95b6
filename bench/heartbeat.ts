/**
 * Scenario 2: `session.heartbeat` round trips over real sockets. The server is a child process
 * (`presenced serve`) so its CPU can be read from /proc; the clients are typed clients in this
 * process, each running a closed loop (next call as soon as the previous one is answered).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { PresenceClient } from '../src/client/index.js';
import { table, verdict, type Section } from './lib/markdown.js';
import { openTypedClients } from './lib/typedClients.js';
import { startServerProcess } from './lib/serverProcess.js';
import { fmt, quantile } from './lib/stats.js';

const CLIENTS = 200;
/** 100,000 connections (the default PRESENCED_MAX_CONNECTIONS) heartbeating every 25 s (the default). */
const TARGET_RATE = 100_000 / 25;
/** …on at most half a core: 0.5 CPU-s per second over TARGET_RATE heartbeats per second, per 1,000. */
const TARGET_CPU_PER_1000 = (0.5 / TARGET_RATE) * 1000;

interface LoopResult {
  latencies: number[];
  errors: number;
}

/** Heartbeats back to back until `until` (performance.now()); latencies of those answered in time. */
async function closedLoop(client: PresenceClient, until: number, result: LoopResult) {
  while (performance.now() < until) {
    const start = performance.now();
    try {
      await client.api.session.heartbeat.mutate({ clientTime: Date.now() });
    } catch {
      result.errors++;
      continue;
    }
    const end = performance.now();
    if (end <= until) result.latencies.push(end - start);
  }
}

async function phase(clients: PresenceClient[], ms: number, onDeadline: () => void): Promise<LoopResult> {
  const result: LoopResult = { latencies: [], errors: 0 };
  const until = performance.now() + ms;
  const deadline = setTimeout(onDeadline, ms);
  await Promise.all(clients.map((client) => closedLoop(client, until, result)));
  clearTimeout(deadline);
  return result;
}

export async function runHeartbeat(options: { quick: boolean; log: (line: string) => void }): Promise<Section[]> {
  const durationMs = options.quick ? 3_000 : 10_000;
  const warmupMs = options.quick ? 1_000 : 2_000;
  // The closed loop must never be throttled: the limiter allows this many calls per second per connection.
  await using server = await startServerProcess({ PRESENCED_RATE_LIMIT: '1000000' });
  const clients: PresenceClient[] = [];
  try {
    await openTypedClients(server.wsUrl, CLIENTS, 'heartbeat', clients);
    options.log(`  ${clients.length} typed clients ready (server pid ${server.pid}); warming up ${warmupMs} ms`);
    await phase(clients, warmupMs, () => undefined);

    let serverCpuEnd = 0;
    let clientCpuEnd: NodeJS.CpuUsage = { user: 0, system: 0 };
    const serverCpuStart = server.cpuSeconds();
    const clientCpuStart = process.cpuUsage();
    const result = await phase(clients, durationMs, () => {
      serverCpuEnd = server.cpuSeconds();
      clientCpuEnd = process.cpuUsage(clientCpuStart);
    });
    const count = result.latencies.length;
    const rate = count / (durationMs / 1000);
    const serverCpu = serverCpuEnd - serverCpuStart;
    const clientCpu = (clientCpuEnd.user + clientCpuEnd.system) / 1e6;
    const cpuPer1000 = (serverCpu / count) * 1000;
    const sorted = [...result.latencies].sort((a, b) => a - b);
    const p50 = quantile(sorted, 0.5);
    const p99 = quantile(sorted, 0.99);
    options.log(`  ${count} heartbeats in ${durationMs} ms, ${result.errors} errors`);

    const rateMet = rate >= TARGET_RATE;
    const cpuMet = cpuPer1000 <= TARGET_CPU_PER_1000;
    const errorsMet = result.errors === 0;
    return [
      {
        title: 'Heartbeats over real sockets',
        method:
          `\`node --import tsx src/tools/cli.ts serve\` as a child process (PORT=0, memory store, dev auth, PRESENCED_RATE_LIMIT=1000000); ${CLIENTS} typed clients ` +
          `(\`createPresenceClient\` with \`ws\`, \`heartbeat: false\`) in the benchmark process, each calling \`session.heartbeat\` in a closed loop for ${durationMs / 1000} s ` +
          `after ${warmupMs / 1000} s of warm-up. Server CPU is utime+stime from /proc/<pid>/stat over the measured window.`,
        table: table(
          ['measure', 'value', 'target', 'met?'],
          [
            ['heartbeats answered', fmt(count), '—', '—'],
            ['errors', fmt(result.errors), '0', verdict(errorsMet)],
            [
              'round trips per second',
              fmt(rate),
              `≥ ${fmt(TARGET_RATE)} (proposed: 100k connections × 1 per 25 s)`,
              verdict(rateMet),
            ],
            ['latency p50 (ms)', fmt(p50, 2), '— (closed loop: ≈ clients ÷ rate)', '—'],
            ['latency p99 (ms)', fmt(p99, 2), '—', '—'],
            [
              'server CPU s per 1,000 heartbeats',
              fmt(cpuPer1000, 3),
              `≤ ${fmt(TARGET_CPU_PER_1000, 3)} (proposed: that load on ½ core)`,
              verdict(cpuMet),
            ],
            ['server CPU (cores busy)', fmt(serverCpu / (durationMs / 1000), 2), '—', '—'],
            ['client process CPU (cores busy)', fmt(clientCpu / (durationMs / 1000), 2), '—', '—'],
          ],
        ),
        notes: [
          "Server and clients share the 2 cores (and other agents' test runs): the round-trip rate is bounded by whichever saturates first; the server CPU per heartbeat is the figure that carries to other machines.",
          'Each heartbeat is a full tRPC mutation: JSON + superjson decode, rate limiter, `touch` (a HEARTBEAT event to the connection actor: assign + persist mark), `info`, superjson encode.',
        ],
        targets: [
          { name: 'heartbeat: no errors', verdict: verdict(errorsMet) },
          { name: `heartbeat: ≥ ${fmt(TARGET_RATE)} round trips/s (proposed)`, verdict: verdict(rateMet) },
          {
            name: `heartbeat: ≤ ${fmt(TARGET_CPU_PER_1000, 3)} server CPU-s per 1,000 (proposed)`,
            verdict: verdict(cpuMet),
          },
        ],
      },
    ];
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    // Let the close frames go out before the server is stopped.
    await sleep(100);
  }
}

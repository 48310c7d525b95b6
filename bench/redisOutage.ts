/**
 * Redis suite, scenario 3: the write-behind queue during a Redis outage. The server runs in process
 * (`createPresenceServer`) so its queue can be read (`services.store.pending()`), in a worker
 * process of its own (bench/outageWorker.ts); the paced heartbeat clients run in another child
 * (bench/heartbeatClients.ts), so the worker's memory is the server's. Redis is SIGKILLed, left
 * down, then restarted empty on the same port.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { createPresenceServer } from '../src/server.js';
import { redisKeys } from '../src/store/redis.js';
import type { HeartbeatClientsCommand, HeartbeatClientsMessage, HeartbeatClientsRequest } from './heartbeatClients.js';
import { ofType, spawnIpcChild } from './lib/ipcChild.js';
import { table, verdict, type Section, type Verdict } from './lib/markdown.js';
import type { ScenarioOptions } from './lib/scenario.js';
import { startBenchRedis, waitUntil } from './lib/redis.js';
import { procRssBytes, type LogLine } from './lib/serverProcess.js';
import { fmt } from './lib/stats.js';

const SESSIONS = 1_000;
const HEARTBEAT_MS = 2_500;
const STALE_MS = 6_000;
const FLUSH_MS = 1_000;
/**
 * "Memory does not grow with the number of heartbeats": what the outage adds to the heap retained
 * (after a full GC) per 1,000 heartbeats answered, over the same load with Redis up (the control).
 * An entry per heartbeat, even a bare closure in an array, would retain ≥ 40 bytes each. Heap after
 * GC drifts by tens of KB per 1,000 heartbeats in a young process whether Redis is up or not.
 */
const TARGET_HEAP_KB_PER_1000 = 40;

interface Sample {
  t: number;
  pending: number;
  rssMb: number;
  /** Heap used after a full GC, bytes. */
  heap: number;
  answered: number;
  status: string;
}

/** A full GC: the scenario runs in bench/outageWorker.ts, started with --expose-gc. */
function fullGc(): () => void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the outage scenario needs --expose-gc (run it through bench/outageWorker.ts)');
  return gc;
}

const mb = (bytes: number) => bytes / 1024 / 1024;

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  const meanX = points.reduce((sum, [x]) => sum + x, 0) / n;
  const meanY = points.reduce((sum, [, y]) => sum + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - meanX) * (y - meanY);
    den += (x - meanX) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** The heartbeat clients' process, once every session is open. */
async function startClients(request: HeartbeatClientsRequest) {
  const clients = spawnIpcChild('bench/heartbeatClients.ts', request);
  const settled = (message: unknown): message is HeartbeatClientsMessage =>
    ofType<HeartbeatClientsMessage>('ready')(message) || ofType<HeartbeatClientsMessage>('failed')(message);
  try {
    const first = await clients.waitFor(settled, 60_000);
    if (first.type === 'failed') throw new Error(`heartbeat clients failed: ${first.error}`);
  } catch (error) {
    await clients.stop(1_000);
    throw error;
  }
  let seq = 0;
  const ask = async (type: HeartbeatClientsCommand['type']) => {
    const id = seq++;
    const answer = clients.waitFor(
      (message): message is Extract<HeartbeatClientsMessage, { type: 'counts' }> =>
        ofType<HeartbeatClientsMessage>('counts')(message) && (message as { seq: number }).seq === id,
      10_000,
    );
    clients.send({ type, seq: id } satisfies HeartbeatClientsCommand);
    return (await answer).counts;
  };
  return {
    counts: () => ask('mark'),
    async stop() {
      try {
        await ask('stop');
      } finally {
        await clients.stop();
      }
    },
    kill: () => clients.stop(1_000),
  };
}

export async function runRedisOutage(options: ScenarioOptions): Promise<Section[]> {
  const outageMs = options.quick ? 8_000 : 30_000;
  // The full run warms the server up first: heap after GC keeps creeping up for a while after a
  // process starts (compiled code, inline caches), and that must not pass for growth per heartbeat.
  const warmupMs = options.quick ? 0 : 30_000;
  const controlSeconds = options.quick ? 0 : 15;
  const gc = fullGc();
  await using redis = await startBenchRedis();
  const prefix = redis.prefix();
  const nodeId = 'bench-outage';
  const nodeKey = redisKeys(prefix).node(nodeId);
  const logs: LogLine[] = [];
  const logger = pino(
    { level: 'info', base: { nodeId } },
    { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) },
  );
  const server = createPresenceServer({
    redisUrl: redis.url,
    redisPrefix: prefix,
    nodeId,
    port: 0,
    host: '127.0.0.1',
    heartbeatMs: HEARTBEAT_MS,
    staleMs: STALE_MS,
    flushIntervalMs: FLUSH_MS,
    logger,
  });
  const { url, wsUrl } = await server.listen();
  const store = server.services.store;
  const health = async () => (await (await fetch(`${url}/health`)).json()) as { status: string; redis?: string };
  let clients: Awaited<ReturnType<typeof startClients>> | null = null;
  try {
    clients = await startClients({ wsUrl, sessions: SESSIONS, intervalMs: HEARTBEAT_MS, userPrefix: 'outage' });
    const warmupStart = performance.now();
    await waitUntil('every connection stored', async () => (await redis.probe.hlen(nodeKey)) - 1 === SESSIONS, 10_000);
    await sleep(Math.max(0, warmupStart + warmupMs - performance.now()));
    const live = server.services.presence.stats();
    if (live.byState.stale !== 0) throw new Error(`${live.byState.stale} connections went stale before the outage`);

    // The sampling itself (fetch, IPC) allocates on first use: warm it before any heap is read.
    for (let i = 0; i < 3; i++) await Promise.all([health(), clients.counts()]);
    // Control, full run only: the same samples with Redis up, to see what the outage adds.
    const control: [number, number][] = [];
    for (let t = 0; t < controlSeconds; t++) {
      await sleep(1_000);
      gc();
      const heap = process.memoryUsage().heapUsed;
      const counts = await clients.counts();
      await health();
      control.push([counts.answered, heap]);
    }
    const controlPer1000 = control.length >= 3 ? (slope(control) * 1000) / 1024 : Number.NaN;
    const controlHeartbeats = control.length > 1 ? (control.at(-1)?.[0] ?? 0) - (control[0]?.[0] ?? 0) : 0;

    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssBefore = procRssBytes(process.pid);
    const atKill = await clients.counts();
    const killAt = performance.now();
    await redis.kill();
    await waitUntil('/health degraded', async () => (await health()).status === 'degraded', 10_000, 5);
    const degradedMs = performance.now() - killAt;
    options.log(`  redis killed; /health degraded after ${fmt(degradedMs)} ms`);

    const samples: Sample[] = [];
    for (let t = 1; t * 1000 <= outageMs; t++) {
      await sleep(Math.max(0, killAt + t * 1000 - performance.now()));
      const pending = store.pending();
      // A full GC per sample: heap after GC is what the server retains, without the sawtooth.
      gc();
      const heap = process.memoryUsage().heapUsed;
      const counts = await clients.counts();
      const status = await health();
      samples.push({
        t,
        pending,
        rssMb: mb(procRssBytes(process.pid)),
        heap,
        answered: counts.answered - atKill.answered,
        status: `${status.status}, redis ${status.redis ?? '?'}`,
      });
    }
    const pendingEnd = store.pending();
    const rssEnd = procRssBytes(process.pid);
    const heapEnd = samples.at(-1)?.heap ?? Number.NaN;
    const atRestart = await clients.counts();
    const outageSeconds = (performance.now() - killAt) / 1000;

    const restartAt = performance.now();
    await redis.start();
    const redisUpMs = performance.now() - restartAt;
    await waitUntil('/health ok', async () => (await health()).status === 'ok', 30_000, 10);
    const okMs = performance.now() - restartAt;
    const liveNow = () => server.services.presence.stats().connections;
    await waitUntil(
      'the node hash to hold every live connection',
      async () => (await redis.probe.hlen(nodeKey)) - 1 === liveNow(),
      30_000,
      10,
    );
    const rewrittenMs = performance.now() - restartAt;
    const stored = (await redis.probe.hlen(nodeKey)) - 1;
    options.log(`  redis back: /health ok after ${fmt(okMs)} ms, ${stored} records after ${fmt(rewrittenMs)} ms`);

    const outageCounts = {
      answered: atRestart.answered - atKill.answered,
      errors: atRestart.errors - atKill.errors,
      sent: atRestart.sent - atKill.sent,
    };
    const pendings = samples.map((sample) => sample.pending);
    const minPending = Math.min(...pendings, pendingEnd);
    const maxPending = Math.max(...pendings, pendingEnd);
    const queueMet = maxPending <= SESSIONS;
    // Once the queue holds every connection, whatever still grows would grow per heartbeat: the
    // slope of heap (after GC) over heartbeats answered, by least squares over those samples.
    const full = samples.filter((sample) => sample.pending >= SESSIONS);
    const fullHeartbeats = full.length > 1 ? (full.at(-1)?.answered ?? 0) - (full[0]?.answered ?? 0) : 0;
    const heapGrowthPer1000 =
      full.length >= 3 ? (slope(full.map((x) => [x.answered, x.heap])) * 1000) / 1024 : Number.NaN;
    // Judged on what the outage adds over the control; QUICK=1 has no control, and its few seconds
    // of full queue (~1,200 heartbeats) are within the noise anyway.
    const added = heapGrowthPer1000 - controlPer1000;
    const judged = Number.isFinite(added);
    const memoryMet: Verdict = judged ? verdict(added <= TARGET_HEAP_KB_PER_1000) : '—';
    const sameMessages = (msg: string) => logs.filter((line) => line.msg === msg).length;

    const rows = [
      ['live connections (each heartbeating every 2.5 s)', fmt(SESSIONS), '—', '—'],
      ['outage (Redis SIGKILLed, then started again empty)', `${fmt(outageSeconds, 1)} s`, '—', '—'],
      [
        'heartbeats during the outage: answered / sent / failed',
        `${fmt(outageCounts.answered)} / ${fmt(outageCounts.sent)} / ${fmt(outageCounts.errors)}`,
        'all, 0 errors',
        verdict(outageCounts.errors === 0 && outageCounts.answered > 0),
      ],
      [
        'write-behind queue during the outage (`store.pending()`, each second): min / max; once full',
        `${fmt(minPending)} / ${fmt(maxPending)}; ${full[0] ? `${fmt(Math.min(...full.map((x) => x.pending)))}–${fmt(Math.max(...full.map((x) => x.pending)))} from t = ${full[0].t} s on` : 'never full'}`,
        `≤ ${fmt(SESSIONS)} (the connections)`,
        verdict(queueMet),
      ],
      ['time to `/health` degraded (`redis: down`) after SIGKILL', `${fmt(degradedMs)} ms`, '—', '—'],
      [
        'heap after full GC: before the kill → queue full → end of outage (MB)',
        `${fmt(mb(heapBefore), 1)} → ${full[0] ? `${fmt(mb(full[0].heap), 1)} (t = ${full[0].t} s)` : 'never full'} → ${fmt(mb(heapEnd), 1)}`,
        '—',
        '—',
      ],
      [
        'heap growth while the queue was full, per 1,000 heartbeats (least-squares slope)',
        `${fmt(heapGrowthPer1000, 2)} KB (${full.length} samples, ${fmt(fullHeartbeats)} heartbeats)`,
        '—',
        '—',
      ],
      [
        'control, Redis up: the same, the last seconds before the kill',
        controlSeconds
          ? `${fmt(controlPer1000, 2)} KB (${control.length} samples, ${fmt(controlHeartbeats)} heartbeats)`
          : 'not measured (QUICK=1)',
        '—',
        '—',
      ],
      [
        'what the outage adds: outage slope − control slope, per 1,000 heartbeats',
        judged ? `${fmt(added, 2)} KB` : 'not judged (QUICK=1: no control)',
        `≤ ${fmt(TARGET_HEAP_KB_PER_1000)} KB (proposed: no growth per heartbeat)`,
        memoryMet,
      ],
      [
        'RSS of the process: before the kill → end of outage (MB)',
        `${fmt(mb(rssBefore), 1)} → ${fmt(mb(rssEnd), 1)}`,
        '—',
        '—',
      ],
      ['Redis answering PING again after `redis-server` was started', `${fmt(redisUpMs)} ms`, '—', '—'],
      ['time to `/health` ok after the restart was started', `${fmt(okMs)} ms`, '—', '—'],
      [
        'time until the node hash has one field per live connection (HLEN − 1)',
        `${fmt(rewrittenMs)} ms (${fmt(stored)} = ${fmt(liveNow())} live)`,
        '—',
        '—',
      ],
      ['write-behind queue once the node hash was complete again', fmt(store.pending()), '—', '—'],
    ];
    const series = table(
      [
        't since kill (s)',
        'queue (pending)',
        'heartbeats answered since kill',
        'heap after full GC (MB)',
        'RSS (MB)',
        '`/health`',
      ],
      samples.map((sample) => [
        fmt(sample.t),
        fmt(sample.pending),
        fmt(sample.answered),
        fmt(mb(sample.heap), 2),
        fmt(sample.rssMb, 1),
        sample.status,
      ]),
    );
    return [
      {
        title: 'Write-behind queue during a Redis outage',
        method:
          `\`createPresenceServer({ redisUrl, redisPrefix, nodeId, heartbeatMs: ${HEARTBEAT_MS}, staleMs: ${STALE_MS}, flushIntervalMs: ${FLUSH_MS}, port: 0 })\` in a worker process of its own (bench/outageWorker.ts, \`node --expose-gc\`); ` +
          `${fmt(SESSIONS)} raw sessions in a child process (bench/heartbeatClients.ts), each heartbeating every ${fmt(HEARTBEAT_MS / 1000, 1)} s from a random phase. ` +
          `Once every connection is stored${warmupMs ? `, at least ${fmt(warmupMs / 1000)} s after the clients started (warm-up), then after ${controlSeconds} s of control samples with Redis up` : ''}, the private redis-server is SIGKILLed for ${fmt(outageMs / 1000)} s; each second the queue (\`services.store.pending()\`), the process' RSS (/proc) and heap, \`/health\` and the clients' answered heartbeats are sampled. ` +
          'Then redis-server is started again, empty, on the same port; `/health` and `HLEN` of the node hash are polled every 10 ms.',
        table: `${table(['measure', 'value', 'target', 'met?'], rows)}\n\nEach second of the outage:\n\n${series}`,
        notes: [
          'The queue holds one entry per connection however often it changes: a heartbeat marks its connection once its deadline has moved by half of `staleMs` (every second heartbeat here), so within one heartbeat cycle every live connection is in the queue and it stays there. ',
          "RSS and heap are the worker's: the server and the scenario's own small bookkeeping; the clients are in their own process. Every sample is taken after a full GC (`gc()`, a 10–50 ms pause of the server each second); the slopes are least squares of that heap over the heartbeats answered: during the outage over the samples where the queue held every connection (before that, the queue itself is still filling), and over the control seconds with Redis up. The target is on their difference: a young process' heap drifts upwards by itself (compiled code, caches), Redis or not.",
          "The restore scenario fills its own redis-server in the background meanwhile (a server process and a client process): times here are taken on a busy machine, the memory figures are the worker's alone.",
          `Server log during the run: ${sameMessages('redis down: serving from memory, writes queued')}× "redis down", ${sameMessages('redis back: rebuilding the stored state')}× "redis back", ${logs.filter((line) => line.level >= 50).length} error lines.`,
        ],
        targets: [
          {
            name: `outage: write-behind queue ≤ connections (max ${fmt(maxPending)} for ${fmt(SESSIONS)})`,
            verdict: verdict(queueMet),
          },
          {
            name: 'outage: every heartbeat answered from memory',
            verdict: verdict(outageCounts.errors === 0 && outageCounts.answered > 0),
          },
          ...(judged
            ? [
                {
                  name: `outage: heap does not grow per heartbeat (outage adds ≤ ${TARGET_HEAP_KB_PER_1000} KB per 1,000)`,
                  verdict: memoryMet,
                },
              ]
            : []),
          {
            name: 'outage: the node hash holds every live connection again after Redis is back',
            verdict: verdict(stored === liveNow()),
          },
        ],
      },
    ];
  } finally {
    await clients?.stop().catch(async () => void (await clients?.kill()));
    await server.close();
  }
}

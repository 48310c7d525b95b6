/**
 * Scenario: the write-behind queue during a Redis outage. presenced runs in the benchmark process
 * (`createPresenceServer`, the public entry point) so that its queue can be read
 * (`services.store.pending()`); 1,000 raw sessions heartbeat every 2.5 s. Redis is SIGKILLed, left
 * down, then started again empty on the same port.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { createPresenceServer } from '../../src/index.js';
import { closeClients, inBatches, waitUntil, type Scenario } from '../lib/harness.js';
import { startBenchRedis } from '../lib/redis.js';
import { fmt, table } from '../lib/report.js';
import { connectPresenced, presencedRedis } from '../peers/presenced.js';

const SESSIONS = 1_000;
const HEARTBEAT_MS = 2_500;

const run: Scenario['run'] = async (options) => {
  const outageMs = options.quick ? 8_000 : 30_000;
  await using redis = await startBenchRedis();
  const server = createPresenceServer({
    redisUrl: redis.url,
    nodeId: 'bench-outage',
    port: 0,
    host: '127.0.0.1',
    heartbeatMs: HEARTBEAT_MS,
    staleMs: 6_000,
    flushIntervalMs: 1_000,
    logger: pino({ level: 'silent' }),
  });
  const { url, wsUrl } = await server.listen();
  const store = server.services.store;
  const health = async () => ((await (await fetch(`${url}/health`)).json()) as { status: string }).status;
  const counts = { sent: 0, answered: 0, errors: 0 };
  const clients = await inBatches(SESSIONS, 50, (i) => connectPresenced(wsUrl, `outage-${i}`));
  // Each heartbeats on its own period from a random phase, as real clients do.
  const timers = clients.map((client) =>
    setTimeout(
      () =>
        timers.push(
          setInterval(() => {
            counts.sent++;
            client.heartbeat().then(
              () => counts.answered++,
              () => counts.errors++,
            );
          }, HEARTBEAT_MS),
        ),
      Math.random() * HEARTBEAT_MS,
    ),
  );
  try {
    await sleep(2 * HEARTBEAT_MS);
    const atKill = { ...counts };
    const killAt = performance.now();
    await redis.kill();
    await waitUntil('/health degraded', async () => (await health()) === 'degraded', 10_000, 5);
    const degradedMs = performance.now() - killAt;
    const samples: string[][] = [];
    let maxPending = 0;
    for (let t = 1; t * 1000 <= outageMs; t++) {
      await sleep(Math.max(0, killAt + t * 1000 - performance.now()));
      maxPending = Math.max(maxPending, store.pending());
      samples.push([fmt(t), fmt(store.pending()), fmt(counts.answered - atKill.answered), await health()]);
    }
    const during = { answered: counts.answered - atKill.answered, errors: counts.errors - atKill.errors };
    const restartAt = performance.now();
    await redis.start();
    await waitUntil('/health ok', async () => (await health()) === 'ok', 30_000, 10);
    const okMs = performance.now() - restartAt;
    await waitUntil('the queue drained', () => store.pending() === 0, 30_000, 10);
    const drainedMs = performance.now() - restartAt;
    options.figure(
      'write-behind queue at most, per connection (Redis down 30 s)',
      presencedRedis.label,
      maxPending / SESSIONS,
    );
    options.log(`  queue at most ${fmt(maxPending)}; drained ${fmt(drainedMs)} ms after the restart`);
    const rows = [
      ['heartbeats answered / failed during the outage', `${fmt(during.answered)} / ${fmt(during.errors)}`],
      [
        'write-behind queue at most (`store.pending()`, each second)',
        `${fmt(maxPending)} for ${fmt(SESSIONS)} connections`,
      ],
      ['`/health` degraded after the SIGKILL', `${fmt(degradedMs)} ms`],
      ['`/health` ok after redis-server was started again', `${fmt(okMs)} ms`],
      ['queue empty (every live connection rewritten) after the restart', `${fmt(drainedMs)} ms`],
    ];
    return [
      {
        title: 'Write-behind queue during a Redis outage (presenced + Redis)',
        method:
          `\`createPresenceServer({ redisUrl, heartbeatMs: ${HEARTBEAT_MS}, staleMs: 6000, flushIntervalMs: 1000 })\` in the benchmark process; ${fmt(SESSIONS)} raw sessions heartbeating every ${fmt(HEARTBEAT_MS / 1000, 1)} s. ` +
          `After ${fmt((2 * HEARTBEAT_MS) / 1000)} s its redis-server is SIGKILLed for ${fmt(outageMs / 1000)} s, sampled each second, then started again, empty, on the same port.`,
        table: `${table(['measure', 'value'], rows)}\n\nEach second of the outage:\n\n${table(['t (s)', 'queue', 'heartbeats answered since the kill', '/health'], samples)}`,
        notes: [
          'The queue holds one entry per connection however often it changes: a heartbeat marks its connection once its deadline has moved by half of `staleMs`, so within one heartbeat cycle every live connection is queued, and it stays at that.',
          'bench/results/issue3.md has the heap of this load after a full GC each second (no growth per heartbeat while the queue is full).',
        ],
      },
    ];
  } finally {
    for (const timer of timers) clearTimeout(timer);
    await closeClients(clients);
    await server.close();
  }
};

export const outage: Scenario = { name: 'outage', run };

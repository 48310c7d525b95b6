/**
 * Scenario: restore after a restart. A Redis holds N connections of node `restore-N`, flushed by a
 * SIGTERM drain (bench/scenarios/seedWorker.ts); a new `presenced serve` with that node id is spawned and
 * timed from spawn to `GET /health/ready` answering 200. The same on an empty Redis is the baseline
 * (process start, tsx, connecting to Redis), subtracted to give the restore itself.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Scenario } from '../lib/harness.js';
import { runJsonWorker, startPresenced } from '../lib/proc.js';
import { startBenchRedis } from '../lib/redis.js';
import { fmt, table } from '../lib/report.js';
import { presencedRedis } from '../peers/index.js';

async function spawnToReady(redisUrl: string, nodeId: string): Promise<{ seconds: number; connections: number }> {
  const started = performance.now();
  await using server = await startPresenced({ REDIS_URL: redisUrl, PRESENCED_NODE_ID: nodeId });
  while ((await fetch(`${server.url}/health/ready`)).status !== 200) await sleep(10);
  const seconds = (performance.now() - started) / 1000;
  const health = (await (await fetch(`${server.url}/health`)).json()) as { connections: number };
  return { seconds, connections: health.connections };
}

const run: Scenario['run'] = async (options) => {
  const sizes = options.quick ? [2_000] : [10_000, 50_000];
  const rows: string[][] = [];
  await using redis = await startBenchRedis();
  const baseline = await spawnToReady(redis.url, 'restore-empty');
  rows.push(['0 (baseline: empty Redis)', fmt(baseline.seconds, 2), '—', '—', fmt(baseline.connections)]);
  for (const count of sizes) {
    const nodeId = `restore-${count}`;
    const seed = await runJsonWorker<{ openSeconds: number; pending: number }>(
      'bench/scenarios/seedWorker.ts',
      { redisUrl: redis.url, nodeId, count },
      120_000,
    );
    const restored = await spawnToReady(redis.url, nodeId);
    const restoreSeconds = restored.seconds - baseline.seconds;
    options.figure(
      `restore ${fmt(count / 1000)}k connections (s, spawn → ready − baseline)`,
      presencedRedis.label,
      restoreSeconds,
    );
    rows.push([
      fmt(count),
      fmt(restored.seconds, 2),
      fmt(restoreSeconds, 2),
      fmt((restoreSeconds * 1e6) / count, 1),
      fmt(restored.connections),
    ]);
    options.log(`  ${fmt(count)}: ready in ${fmt(restored.seconds, 2)} s (seeded in ${fmt(seed.openSeconds, 1)} s)`);
  }
  return [
    {
      title: 'Restore after SIGTERM (presenced + Redis)',
      method:
        'A redis-server of its own; for each size, `bench/scenarios/seedWorker.ts` opens that many sessions on node `restore-N` through the real connect path and runs `drain()` (the SIGTERM path, every snapshot flushed). ' +
        'Then a new `presenced serve` (REDIS_URL, PRESENCED_NODE_ID=restore-N) is spawned and timed until `/health/ready` answers 200; `/health` then counts the restored (stale) connections.',
      table: table(
        [
          'connections stored',
          'spawn → ready (s)',
          'restore (s, minus baseline)',
          'µs per connection',
          'connections after restore',
        ],
        rows,
      ),
      notes: [
        'Neither peer restores anything: Socket.IO keeps no state across a restart (its clients reconnect and register again), so this row has no comparison.',
      ],
    },
  ];
};

export const restore: Scenario = { name: 'restore', run };

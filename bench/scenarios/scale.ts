/**
 * Scenario: connect cost at 1k vs 50k connections, presenced alone (the peers have no actors). Each
 * ~0.1 s window is easily inflated by a neighbour on a shared machine, and whether a major GC's marking
 * falls into the far window moves it too, so the full run takes the median of five fresh workers;
 * QUICK=1 makes one run of 5,500 connects, which is not the target's 50k.
 */
import type { Scenario } from '../lib/harness.js';
import { runJsonWorker } from '../lib/proc.js';
import { fmt, median, ratio, table } from '../lib/report.js';
import { presencedMemory } from '../peers/index.js';

/** Batches of 100 per window: the window is the 1,000 connects centred on the k-th. */
const WINDOW = 10;
const BATCH = 100;

/** µs per connect: the median of the window's batches centred on the k-th connect. */
const at = (values: number[], k: number) => {
  const first = Math.round((k - (WINDOW * BATCH) / 2) / BATCH);
  return median(values.slice(first, first + WINDOW));
};

const run: Scenario['run'] = async (options) => {
  const runs = options.quick ? 1 : 5;
  const count = options.quick ? 5_500 : 50_500;
  const farK = count - (WINDOW * BATCH) / 2;
  const measure = `connect cost @${fmt(farK / 1000)}k ÷ @1k (in process, median of ${runs})`;
  const rows: string[][] = [];
  const ratios: number[] = [];
  for (let i = 0; i < runs; i++) {
    const result = await runJsonWorker<{ wall: number[]; cpu: number[]; seconds: number }>(
      'bench/scenarios/scaleWorker.ts',
      { count, warmup: options.quick ? 1_000 : 5_000 },
      300_000,
    );
    const [near, far] = [at(result.wall, 1_000), at(result.wall, farK)];
    const [cpuNear, cpuFar] = [at(result.cpu, 1_000), at(result.cpu, farK)];
    ratios.push(far / near);
    rows.push([
      String(i + 1),
      fmt(result.seconds, 1),
      fmt(near, 1),
      fmt(far, 1),
      ratio(far / near),
      ratio(cpuFar / cpuNear),
    ]);
    options.log(`  run ${i + 1}: @1k ${fmt(near, 1)} µs, @${fmt(farK)} ${fmt(far, 1)} µs (${ratio(far / near)})`);
  }
  options.figure(measure, presencedMemory.label, median(ratios));
  return [
    {
      title: 'Connect cost at scale (in process, presenced only)',
      method:
        `Each run a fresh \`bench/scenarios/scaleWorker.ts\` process: \`createPresenceServer\` (memory store, default shards of 64), the JIT warmed on a separate instance, then ${fmt(count)} sessions opened through \`services.connections.open\` on a fresh one. ` +
        `µs per connect as the median of the 10 batches of 100 around the 1,000th and around the ${fmt(farK)}-th connect; the figure is the median of the runs' ratios.`,
      table: table(
        ['run', 'seconds', 'µs/connect @1k', `µs/connect @${fmt(farK)}`, 'far ÷ 1k (wall)', 'far ÷ 1k (process CPU)'],
        rows,
      ),
      notes: [
        'Wall-clock windows of ~0.1 s on a shared 2-core machine: a neighbour or a major GC’s marking can inflate any single one, hence several runs. The CPU column (all threads) is less sensitive to being descheduled, more to GC helper threads.',
        'bench/results/issue2.md has the earlier comparison of layouts (a flat parent, shards of 16, 64 and 256) that chose shards of 64.',
      ],
    },
  ];
};

export const scale: Scenario = { name: 'scale', run };

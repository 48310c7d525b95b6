/**
 * Scenario: connect cost at 1k vs 50k actors, in process. Reuses bench/scale.ts's measurement (the
 * default layout) — the peers have no actors to compare, so this row is presenced's alone. Each ~0.1 s
 * window is easily inflated by a neighbour on a shared machine, and whether a major GC's marking falls
 * into the far window moves it too (three-run medians of successive full runs: 1.31× and 1.76×), so
 * the full run takes the median of five fresh workers; QUICK=1 makes one run of 5,500 connects, which
 * is not the target's 50k.
 */
import { table, type Section } from '../lib/markdown.js';
import { ratio, recordFigure, type ScenarioOptions } from '../lib/peerRun.js';
import { fmt, median } from '../lib/stats.js';
import { measureDefaultConnectRatio } from '../scale.js';
import { presencedMemory } from './peers.js';

/** Fresh workers per full run. */
const RUNS = 5;

/** The measure the 50k target is judged on (full runs only). */
export const SCALE_MEASURE = 'connect cost @50k ÷ @1k (in process, median of 5 runs)';
const QUICK_MEASURE = 'connect cost @5k ÷ @1k (in process, 1 run; QUICK=1)';
const QUICK_COUNT = { connects: 5_500, warmup: 1_000 };

export async function runScale(options: ScenarioOptions): Promise<Section[]> {
  const runs = await measureDefaultConnectRatio({
    quick: options.quick,
    runs: options.quick ? 1 : RUNS,
    log: options.log,
    ...(options.quick ? { count: QUICK_COUNT } : {}),
  });
  const ratios = runs.map((run) => run.far / run.near);
  const cpuRatios = runs.map((run) => run.cpuFar / run.cpuNear);
  recordFigure(options.figures, options.quick ? QUICK_MEASURE : SCALE_MEASURE, presencedMemory.label, median(ratios));
  const farK = Math.min(...runs.map((run) => run.farK));
  const rows = runs.map((run, i) => [
    String(i + 1),
    fmt(run.connected),
    fmt(run.seconds, 1),
    fmt(run.near, 1),
    fmt(run.far, 1),
    ratio(run.far / run.near),
    `${fmt(run.cpuNear, 1)} → ${fmt(run.cpuFar, 1)} (${ratio(run.cpuFar / run.cpuNear)})`,
  ]);
  if (runs.length > 1)
    rows.push([
      'median',
      '',
      '',
      fmt(median(runs.map((run) => run.near)), 1),
      fmt(median(runs.map((run) => run.far)), 1),
      ratio(median(ratios)),
      ratio(median(cpuRatios)),
    ]);
  return [
    {
      title: 'Connect cost at scale (in process, presenced only)',
      method:
        "bench/scale.ts's measurement, imported (`measureDefaultConnectRatio`): for each run a fresh `bench/connectWorker.ts` process warms up on a separate instance, then connects " +
        `${fmt(runs[0]?.connected ?? NaN)} sessions through \`createConnections().open()\` with shards of 64 and the memory store; µs per connect as the median of the 10 batches of 100 around the 1,000th and around the ${fmt(farK)}-th connect. ` +
        (options.quick
          ? 'QUICK=1 makes one run of 5,500 connects: its ratio is not the target (the 50k-th connect), which only the full run measures.'
          : `The figure is the median of the ${RUNS} runs’ ratios.`),
      table: table(
        [
          'run',
          'connects',
          'seconds',
          'µs/connect @1k',
          `µs/connect @${fmt(farK)}`,
          'far ÷ @1k (wall)',
          'CPU µs/connect @1k → far (ratio)',
        ],
        rows,
      ),
      notes: [
        'Wall-clock windows of ~0.1 s on a shared 2-core machine: a neighbour or a major GC’s marking can inflate any single one, hence several runs. The CPU column (process CPU time per connect, all threads) is less sensitive to being descheduled, more to GC helper threads.',
      ],
      targets: [],
    },
  ];
}

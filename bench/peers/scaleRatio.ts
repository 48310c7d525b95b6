/**
 * Scenario: connect cost at 1k vs 50k actors, in process. Reuses bench/scale.ts's measurement (the
 * default layout, one run) — the peers have no actors to compare, so this row is presenced's alone.
 */
import { readFileSync } from 'node:fs';
import { repoRoot } from '../lib/children.js';
import { table, type Section } from '../lib/markdown.js';
import { ratio, recordFigure, type ScenarioOptions } from '../lib/peerRun.js';
import { fmt } from '../lib/stats.js';
import { measureDefaultConnectRatio } from '../scale.js';
import { presencedMemory } from './peers.js';

/** The default layout's row of the latest `npm run bench` (bench/results/issue2.md), if there is one. */
function citedFigure(): { near: number; far: number; farK: number; connected: number; date: string } | null {
  let text: string;
  try {
    text = readFileSync(`${repoRoot}bench/results/issue2.md`, 'utf8');
  } catch {
    return null;
  }
  const row = /^\| shards of 64 \(default\) \| ([\d,]+) in [^|]+\| ([\d.,]+) \| ([\d.,]+) \(@(\d+)k\)/m.exec(text);
  const date = /^- date: (.+)$/m.exec(text)?.[1] ?? 'unknown date';
  if (!row) return null;
  const number = (cell: string | undefined) => Number((cell ?? '').replaceAll(',', ''));
  return { connected: number(row[1]), near: number(row[2]), far: number(row[3]), farK: number(row[4]) * 1000, date };
}

export async function runScale(options: ScenarioOptions): Promise<Section[]> {
  // QUICK=1 stays under a minute: it cites the latest full measurement instead of running one.
  const cited = options.quick ? citedFigure() : null;
  const { near, far, farK, connected } = cited ?? (await measureDefaultConnectRatio(options));
  recordFigure(options.figures, 'connect cost far ÷ @1k (in process)', presencedMemory.label, far / near);
  return [
    {
      title: 'Connect cost at scale (in process, presenced only)',
      method:
        "bench/scale.ts's measurement, imported (`measureDefaultConnectRatio`): a fresh `bench/connectWorker.ts` process connects through `createConnections().open()` " +
        `with shards of 64 and the memory store, one run; µs per connect as the median of 10 batches of 100 around the 1,000th and the ${fmt(farK)}-th connect.` +
        (cited
          ? ` QUICK=1 does not measure: these are the figures of the latest \`npm run bench\` (bench/results/issue2.md, ${cited.date}, median of 3 runs).`
          : ''),
      table: table(
        ['connections', 'µs/connect @1k', `µs/connect @${fmt(farK)}`, 'far ÷ @1k'],
        [[fmt(connected), fmt(near, 1), fmt(far, 1), ratio(far / near)]],
      ),
      notes: [
        'A single ~0.1 s window each: neighbours on the shared machine can inflate either; `npm run bench` repeats it 3 times.',
      ],
      targets: [],
    },
  ];
}

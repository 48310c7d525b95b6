/**
 * Scenario: connect cost at 1k vs 50k actors, in process. Reuses bench/scale.ts's measurement (the
 * default layout, one run) — the peers have no actors to compare, so this row is presenced's alone.
 */
import { table, type Section } from '../lib/markdown.js';
import { ratio, recordFigure, type ScenarioOptions } from '../lib/peerRun.js';
import { fmt } from '../lib/stats.js';
import { measureDefaultConnectRatio } from '../scale.js';
import { presencedMemory } from './peers.js';

export async function runScale(options: ScenarioOptions): Promise<Section[]> {
  const { near, far, farK, connected } = await measureDefaultConnectRatio(options);
  recordFigure(options.figures, 'connect cost far ÷ @1k (in process)', presencedMemory.label, far / near);
  return [
    {
      title: 'Connect cost at scale (in process, presenced only)',
      method:
        "bench/scale.ts's measurement, imported (`measureDefaultConnectRatio`): a fresh `bench/connectWorker.ts` process connects through `createConnections().open()` " +
        `with shards of 64 and the memory store, one run; µs per connect as the median of 10 batches of 100 around the 1,000th and the ${fmt(farK)}-th connect.` +
        (options.quick ? ' QUICK=1 stops at about 10k connections; the full run goes to 50k.' : ''),
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

/**
 * `npm run bench` (QUICK=1 for a short run): presenced against what users would otherwise pick — a
 * hand-rolled Socket.IO + Redis pattern and bare `ws` — in one run on one machine, as ratios, with
 * the targets next to the figures. Writes bench/results/peers.md (peers-quick.md). Every
 * process started is killed by PID. The per-issue suites are `npm run bench:issues` (bench/run.ts).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { repoRoot } from '../lib/children.js';
import { renderSection, table, verdict, type Section, type Verdict } from '../lib/markdown.js';
import { ratio, type Figures, type ScenarioOptions } from '../lib/peerRun.js';
import { fmt } from '../lib/stats.js';
import { runConnect } from './connect.js';
import { runFanout } from './fanout.js';
import { runHeartbeat } from './heartbeat.js';
import { runMemoryBreakdown } from './memoryBreakdown.js';
import { explainMisses } from './misses.js';
import { bareWs, handRolled, peers, presencedMemory, presencedRedis } from './peers.js';
import { runProfiles, type ProfiledLoad } from './profile.js';
import { runRedisCost } from './redisCost.js';
import { runRestore } from './restore.js';
import { runScale, SCALE_MEASURE } from './scaleRatio.js';

const quick = process.env['QUICK'] === '1';
const command = quick ? 'QUICK=1 npm run bench' : 'npm run bench';
const output = `${repoRoot}bench/results/${quick ? 'peers-quick' : 'peers'}.md`;
const log = (line: string) => process.stdout.write(`${line}\n`);
const load = () =>
  loadavg()
    .map((value) => fmt(value, 2))
    .join(', ');
const git = (args: string[]) => {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
};

function redisVersion(): string {
  try {
    return (
      execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).split(' sha=')[0]?.trim() ?? 'redis-server'
    );
  } catch {
    return 'redis-server (version unknown)';
  }
}

const scenarios: { name: string; fullOnly?: boolean; run: (options: ScenarioOptions) => Promise<Section[]> }[] = [
  { name: 'heartbeat', run: runHeartbeat },
  { name: 'Redis cost', run: runRedisCost },
  { name: 'connect', run: runConnect },
  { name: 'fan-out', run: runFanout },
  { name: 'scale', run: runScale },
  { name: 'restore', run: runRestore },
  { name: 'memory breakdown', fullOnly: true, run: runMemoryBreakdown },
];

const startedAt = new Date();
const started = performance.now();
const loadBefore = load();
const figures: Figures = new Map();
const sections: Section[] = [];
const failures: string[] = [];
const timings: string[][] = [];
async function timed(name: string, task: () => Promise<Section[]>) {
  log(`\n# ${name}`);
  const start = performance.now();
  try {
    sections.push(...(await task()));
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    failures.push(`${name}: ${message}`);
    log(`  FAILED: ${message}`);
  }
  timings.push([name, fmt((performance.now() - start) / 1000, 1), load()]);
}
for (const scenario of scenarios) {
  if (quick && scenario.fullOnly) continue;
  await timed(scenario.name, () => scenario.run({ quick, log, figures }));
}

const get = (measure: string, peer: string) => figures.get(measure)?.get(peer) ?? Number.NaN;

interface Target {
  measure: string;
  peer: string;
  text: string;
  /** The figure compared, and whether it meets the target (`null`: not measured in this run). */
  judge(): { shown: string; met: boolean | null };
  profile?: ProfiledLoad;
}

const cpuMeasure = 'server + Redis CPU s per 1,000 heartbeats';
const memoryMeasure = 'server RSS KB per idle connection';
const fanoutMeasure = 'fan-out to 200: p99 (ms)';
const judgement = (value: number, shown: string, limit: number) =>
  Number.isFinite(value)
    ? { shown, met: value <= limit }
    : { shown: quick ? 'not measured in QUICK=1' : 'not measured', met: null };
const relative = (measure: string, peer: string, other: string, limit: number) => () => {
  const value = get(measure, peer) / get(measure, other);
  return judgement(value, ratio(value), limit);
};
const targets: Target[] = [
  ...[presencedMemory, presencedRedis].flatMap((peer): Target[] => [
    {
      measure: cpuMeasure,
      peer: peer.label,
      text: '≤ 2× bare ws',
      judge: relative(cpuMeasure, peer.label, bareWs.label, 2),
      profile: 'heartbeat',
    },
    {
      measure: memoryMeasure,
      peer: peer.label,
      text: '≤ 1.5× bare ws',
      judge: relative(memoryMeasure, peer.label, bareWs.label, 1.5),
    },
    {
      measure: fanoutMeasure,
      peer: peer.label,
      text: '≤ 1× hand-rolled',
      judge: relative(fanoutMeasure, peer.label, handRolled.label, 1),
      profile: 'fan-out',
    },
  ]),
  {
    measure: cpuMeasure,
    peer: presencedRedis.label,
    text: '≤ ⅓ of hand-rolled',
    judge: relative(cpuMeasure, presencedRedis.label, handRolled.label, 1 / 3),
    profile: 'heartbeat',
  },
  {
    measure: 'Redis commands per heartbeat',
    peer: presencedRedis.label,
    text: '≤ 0.2',
    judge: () => {
      const value = get('Redis commands per heartbeat', presencedRedis.label);
      return judgement(value, fmt(value, 3), 0.2);
    },
  },
  {
    measure: SCALE_MEASURE,
    peer: presencedMemory.label,
    text: '≤ 1.5× (the 50k-th connect vs the 1k-th)',
    judge: () => {
      const value = get(SCALE_MEASURE, presencedMemory.label);
      return judgement(value, ratio(value), 1.5);
    },
  },
];
const verdictOf = (met: boolean | null): Verdict => (met === null ? '—' : verdict(met));
const judged = targets.map((target) => ({ target, ...target.judge() }));

// The comparison: one row per measure, one column per peer, then presenced's ratios.
const comparison = table(
  [
    'measure',
    ...peers.map((peer) => peer.label),
    'presenced ÷ bare ws (memory / Redis)',
    'presenced + Redis ÷ hand-rolled',
    'target',
    'met?',
  ],
  [...figures].map(([measure, row]) => {
    const cell = (label: string) => {
      const value = row.get(label);
      return value === undefined ? '—' : fmt(value, value < 10 ? 3 : value < 1000 ? 1 : 0);
    };
    const vsBare = [presencedMemory, presencedRedis].map((peer) =>
      ratio((row.get(peer.label) ?? NaN) / (row.get(bareWs.label) ?? NaN)),
    );
    const vsHand = ratio((row.get(presencedRedis.label) ?? NaN) / (row.get(handRolled.label) ?? NaN));
    const mine = judged.filter((entry) => entry.target.measure === measure);
    return [
      measure,
      ...peers.map((peer) => cell(peer.label)),
      row.has(bareWs.label) ? vsBare.join(' / ') : '—',
      row.has(handRolled.label) ? vsHand : '—',
      mine
        .map((entry) => `${entry.target.peer === presencedMemory.label ? 'memory' : 'Redis'}: ${entry.target.text}`)
        .join('; ') || '—',
      mine.map((entry) => `${verdictOf(entry.met)} (${entry.shown})`).join('; ') || '—',
    ];
  }),
);

// Where the server's time goes under the two loads the CPU targets are about, met or missed (full run:
// QUICK=1 stays under a minute).
const misses = judged.filter((entry) => entry.met === false);
if (!quick) {
  const verdicts: Partial<Record<ProfiledLoad, string>> = {};
  for (const load of ['heartbeat', 'fan-out'] as const) {
    const mine = judged.filter((entry) => entry.target.profile === load && entry.target.peer === presencedMemory.label);
    verdicts[load] = mine.some((entry) => entry.met === false) ? 'target missed' : 'target met';
  }
  await timed('profiles', () => runProfiles(presencedMemory, verdicts, { quick, log }));
}

const seconds = (performance.now() - started) / 1000;
const summary: [string, string, Verdict][] = judged.map((entry) => [
  `${entry.target.peer}: ${entry.target.measure} ${entry.target.text}`,
  entry.shown,
  verdictOf(entry.met),
]);
const report = [
  `# presenced against its peers${quick ? ' (QUICK=1)' : ''}`,
  '',
  `- command: \`${command}\` (${fmt(seconds, 0)} s wall time, everything included)`,
  `- date: ${startedAt.toISOString()}`,
  `- machine: ${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${fmt(totalmem() / 1024 ** 3, 1)} GB RAM, Node ${process.version}, ${process.platform}; ${redisVersion()} (each run its own, on a free port)`,
  `- git commit: ${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--', 'src', 'machines', 'bench', ':!bench/results']) ? ' (with uncommitted changes)' : ''}`,
  `- load average (1, 5, 15 min) before: ${loadBefore}; after: ${load()}. The machine is shared and noisy: compare ratios within this run, not absolute figures across runs.`,
  '- every peer runs as its own child process on loopback, with its own redis-server where it uses Redis; the clients of all peers run in the benchmark process.',
  '- what each fix changed, with profiles and figures before and after: bench/results/peers-fixes.md.',
  '',
  '## Comparison',
  '',
  comparison,
  '',
  '## Targets',
  '',
  table(['target', 'figure', 'met?'], summary),
  '',
  ...explainMisses(new Set(misses.map((entry) => entry.target.measure))),
  '## Run',
  '',
  table(['scenario', 'seconds', 'load average after'], timings),
  '',
  ...sections.map(renderSection),
  ...(failures.length
    ? ['## Failures', '', ...failures.map((failure) => `    ${failure.replaceAll('\n', '\n    ')}`), '']
    : []),
].join('\n');

mkdirSync(new URL('../results/', import.meta.url), { recursive: true });
writeFileSync(output, report);
log(`\n${report}`);
log(`written to ${output}`);
process.exit(failures.length ? 1 : 0);

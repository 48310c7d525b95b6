/**
 * `npm run bench:peers` (QUICK=1 for a short run): presenced against what users would otherwise
 * pick — a hand-rolled Socket.IO + Redis pattern and bare `ws` — in one run on one machine, as ratios.
 * Writes bench/results/peers.md (peers-quick.md). Every process started is killed by PID.
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
import { bareWs, handRolled, peers, presencedMemory, presencedRedis } from './peers.js';
import { runProfiles, type ProfiledLoad } from './profile.js';
import { proposals } from './proposals.js';
import { runRedisCost } from './redisCost.js';
import { runRestore } from './restore.js';
import { runScale } from './scaleRatio.js';

const quick = process.env['QUICK'] === '1';
const command = quick ? 'QUICK=1 npm run bench:peers' : 'npm run bench:peers';
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

const scenarios: { name: string; run: (options: ScenarioOptions) => Promise<Section[]> }[] = [
  { name: 'heartbeat', run: runHeartbeat },
  { name: 'Redis cost', run: runRedisCost },
  { name: 'connect', run: runConnect },
  { name: 'fan-out', run: runFanout },
  { name: 'scale', run: runScale },
  { name: 'restore', run: runRestore },
];

const startedAt = new Date();
const started = performance.now();
const loadBefore = load();
const figures: Figures = new Map();
const sections: Section[] = [];
const failures: string[] = [];
for (const scenario of scenarios) {
  log(`\n# ${scenario.name}`);
  try {
    sections.push(...(await scenario.run({ quick, log, figures })));
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    failures.push(`${scenario.name}: ${message}`);
    log(`  FAILED: ${message}`);
  }
}

const get = (measure: string, peer: string) => figures.get(measure)?.get(peer) ?? Number.NaN;

interface Target {
  measure: string;
  peer: string;
  text: string;
  /** The figure compared, and whether it meets the target. */
  judge(): { shown: string; met: boolean };
  profile?: ProfiledLoad;
}

const cpuMeasure = 'server + Redis CPU s per 1,000 heartbeats';
const memoryMeasure = 'server RSS KB per idle connection';
const fanoutMeasure = 'fan-out to 200: p99 (ms)';
const relative = (measure: string, peer: string, other: string, limit: number) => () => {
  const value = get(measure, peer) / get(measure, other);
  return { shown: ratio(value), met: value <= limit };
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
      return { shown: fmt(value, 3), met: value <= 0.2 };
    },
  },
  {
    measure: 'connect cost far ÷ @1k (in process)',
    peer: presencedMemory.label,
    text: '≤ 1.5× (the 50k-th connect vs the 1k-th)',
    judge: () => {
      const value = get('connect cost far ÷ @1k (in process)', presencedMemory.label);
      return { shown: ratio(value), met: value <= 1.5 };
    },
  },
];
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
      mine.map((entry) => `${verdict(entry.met)} (${entry.shown})`).join('; ') || '—',
    ];
  }),
);

// Profiles for the misses that a CPU profile can explain (once per load; presenced + Redis first).
const misses = judged.filter((entry) => !entry.met);
const toProfile = new Map<ProfiledLoad, string>();
for (const entry of misses)
  if (entry.target.profile && !toProfile.has(entry.target.profile))
    toProfile.set(entry.target.profile, entry.target.peer);
// QUICK=1 stays under a minute: profiles only in the full run.
for (const [miss, label] of quick ? [] : toProfile) {
  const peer = label === presencedMemory.label ? presencedMemory : presencedRedis;
  log(`\n# profile: ${miss} (${peer.label})`);
  try {
    sections.push(...(await runProfiles(peer, [miss], { quick, log })));
  } catch (error) {
    failures.push(`profile ${miss}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

const seconds = (performance.now() - started) / 1000;
const summary: [string, Verdict, string][] = judged.map((entry) => [
  `${entry.target.peer}: ${entry.target.measure} ${entry.target.text}`,
  verdict(entry.met),
  entry.shown,
]);
const missedKeys = new Set(misses.map((entry) => entry.target.measure));
const report = [
  `# presenced against its peers${quick ? ' (QUICK=1)' : ''}`,
  '',
  `- command: \`${command}\` (${fmt(seconds, 0)} s)`,
  `- date: ${startedAt.toISOString()}`,
  `- machine: ${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${fmt(totalmem() / 1024 ** 3, 1)} GB RAM, Node ${process.version}, ${process.platform}; ${redisVersion()} (each run its own, on a free port)`,
  `- git commit: ${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--', 'src', 'machines', 'bench']) ? ' (with uncommitted changes)' : ''}`,
  `- load average (1, 5, 15 min) before: ${loadBefore}; after: ${load()}. The machine is shared and noisy: compare ratios within this run, not absolute figures across runs.`,
  '- every peer runs as its own child process on loopback, with its own redis-server where it uses Redis; the clients of all peers run in the benchmark process.',
  '',
  '## Comparison',
  '',
  comparison,
  '',
  '## Targets',
  '',
  table(['target', 'met?', 'figure'], summary),
  '',
  ...proposals(missedKeys),
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

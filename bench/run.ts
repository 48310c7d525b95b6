/**
 * `npm run bench`: presenced against what users would otherwise pick — bare `ws`, plain Socket.IO and
 * a hand-rolled Socket.IO + Redis pattern — in one run on one machine, as ratios, with the targets
 * next to the figures, plus what only presenced has (connect cost at scale, restore, the Redis outage,
 * inspection). `QUICK=1` for a short run (bench/results/peers-quick.md), `ONLY=scale,restore` for
 * some scenarios (bench/results/only-<names>.md). Every process started is killed by PID.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import type { Figures, Scenario } from './lib/harness.js';
import { repoRoot } from './lib/proc.js';
import { fmt, ratio, renderSection, table, type Section } from './lib/report.js';
import { bareWs, handRolled, peers, presencedMemory, presencedRedis } from './peers/index.js';
import { connect } from './scenarios/connect.js';
import { fanout } from './scenarios/fanout.js';
import { heap } from './scenarios/heap.js';
import { heartbeat } from './scenarios/heartbeat.js';
import { inspect } from './scenarios/inspect.js';
import { outage } from './scenarios/outage.js';
import { redisCost } from './scenarios/redisCost.js';
import { restore } from './scenarios/restore.js';
import { scale } from './scenarios/scale.js';

const scenarios: Scenario[] = [heartbeat, redisCost, connect, fanout, scale, restore, outage, inspect, heap];
const quick = process.env['QUICK'] === '1';
const only = process.env['ONLY']?.split(',').filter(Boolean);
const unknown = only?.filter((name) => !scenarios.some((scenario) => scenario.name === name));
if (unknown?.length) {
  process.stderr.write(
    `unknown scenario(s) ${unknown.join(', ')}; choose from ${scenarios.map((s) => s.name).join(', ')}\n`,
  );
  process.exit(2);
}
const selected = scenarios.filter((scenario) => (only ? only.includes(scenario.name) : !(quick && scenario.fullOnly)));
const command = `${quick ? 'QUICK=1 ' : ''}${only ? `ONLY=${only.join(',')} ` : ''}npm run bench`;
const output = `${repoRoot}bench/results/${only ? `only-${only.join('-')}${quick ? '-quick' : ''}` : quick ? 'peers-quick' : 'peers'}.md`;
const log = (line: string) => process.stdout.write(`${line}\n`);
const load = () =>
  loadavg()
    .map((value) => fmt(value, 2))
    .join(', ');
const quiet = (command: string, args: string[], fallback: string) => {
  try {
    return execFileSync(command, args, { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    return fallback;
  }
};

const startedAt = new Date();
const loadBefore = load();
const figures: Figures = new Map();
const figure = (measure: string, peer: string, value: number) => {
  let row = figures.get(measure);
  if (!row) figures.set(measure, (row = new Map<string, number>()));
  row.set(peer, value);
};
const sections: Section[] = [];
const failures: string[] = [];
const timings: string[][] = [];
for (const scenario of selected) {
  log(`\n# ${scenario.name}`);
  const start = performance.now();
  try {
    sections.push(...(await scenario.run({ quick, log, figure })));
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    failures.push(`${scenario.name}: ${message}`);
    log(`  FAILED: ${message}`);
  }
  timings.push([scenario.name, fmt((performance.now() - start) / 1000, 1), load()]);
}

/** A target: `peer`'s figure for `measure` divided by `of`'s (or taken as is) must be ≤ `limit`. */
interface Target {
  measure: string;
  peer: string;
  of?: string;
  limit: number;
  text: string;
}
const presenced = [presencedMemory.label, presencedRedis.label];
const both = (measure: string, of: string, limit: number, text: string): Target[] =>
  presenced.map((peer) => ({ measure, peer, of, limit, text }));
const targets: Target[] = [
  ...both('server RSS KB per idle connection', bareWs.label, 1.5, '≤ 1.5× bare ws'),
  ...both('server RSS KB per idle connection', handRolled.label, 1, '≤ hand-rolled'),
  ...both('server + Redis CPU s per 1,000 heartbeats', bareWs.label, 2, '≤ 2× bare ws'),
  ...both('server + Redis CPU s per 1,000 heartbeats', handRolled.label, 1 / 3, '≤ ⅓ hand-rolled'),
  ...both('join + leave to 200: server CPU ms per pair', handRolled.label, 1, '≤ hand-rolled'),
  ...both('fan-out to 200: all received p50 (ms)', handRolled.label, 1, '≤ hand-rolled'),
  ...both('fan-out to 200: all received p99 (ms)', handRolled.label, 1, '≤ hand-rolled'),
  ...both("fan-out to 200: joiner's reply p50 (ms)", handRolled.label, 1, '≤ hand-rolled'),
  ...both('server CPU s per 1,000 connects', handRolled.label, 1, '≤ hand-rolled'),
  { measure: 'Redis commands per heartbeat', peer: presencedRedis.label, limit: 0.2, text: '≤ 0.2' },
  {
    measure: 'connect cost @50k ÷ @1k (in process, median of 5)',
    peer: presencedMemory.label,
    limit: 1.5,
    text: '≤ 1.5× (the 50k-th connect vs the 1k-th)',
  },
];
const get = (measure: string, peer: string) => figures.get(measure)?.get(peer) ?? Number.NaN;
const judged = targets.map((target) => {
  const value = get(target.measure, target.peer) / (target.of ? get(target.measure, target.of) : 1);
  const shown = target.of ? ratio(value) : fmt(value, 3);
  const met = Number.isFinite(value) ? (value <= target.limit ? 'met' : 'missed') : 'not measured in this run';
  return { ...target, shown, met };
});

// One row per measure, one column per peer, then presenced's ratios and its targets.
const cell = (value: number | undefined) =>
  value === undefined ? '—' : fmt(value, value < 10 ? 3 : value < 1000 ? 1 : 0);
const versus = (row: Map<string, number>, of: string) =>
  row.has(of) ? presenced.map((peer) => ratio((row.get(peer) ?? NaN) / (row.get(of) ?? NaN))).join(' / ') : '—';
const comparison = table(
  [
    'measure',
    ...peers.map((peer) => peer.label),
    'presenced ÷ bare ws (memory / Redis)',
    'presenced ÷ hand-rolled (memory / Redis)',
    'targets met?',
  ],
  [...figures].map(([measure, row]) => [
    measure,
    ...peers.map((peer) => cell(row.get(peer.label))),
    versus(row, bareWs.label),
    versus(row, handRolled.label),
    judged
      .filter((target) => target.measure === measure && target.met !== 'not measured in this run')
      .map((target) => `${target.peer === presencedMemory.label ? 'memory' : 'Redis'} ${target.text}: ${target.met}`)
      .join('; ') || '—',
  ]),
);

const report = [
  `# presenced against its peers${quick ? ' (QUICK=1)' : ''}${only ? ` (ONLY=${only.join(',')})` : ''}`,
  '',
  `- command: \`${command}\` (${fmt((Date.now() - startedAt.getTime()) / 1000, 0)} s wall time, everything included)`,
  `- date: ${startedAt.toISOString()}`,
  `- machine: ${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${fmt(totalmem() / 1024 ** 3, 1)} GB RAM, Node ${process.version}, ${process.platform}; ${quiet('redis-server', ['--version'], 'redis-server (version unknown)').split(' sha=')[0]} (each its own, on a free port)`,
  `- git commit: ${quiet('git', ['rev-parse', '--short', 'HEAD'], 'unknown')}${quiet('git', ['status', '--porcelain', '--', 'src', 'machines', 'bench', ':!bench/results'], '') ? ' (with uncommitted changes)' : ''}`,
  `- load average (1, 5, 15 min) before: ${loadBefore}; after: ${load()}. The machine is shared and noisy: compare ratios within this run, not absolute figures across runs.`,
  '- every peer runs as its own child process on loopback, with its own redis-server where it uses Redis; the clients of all peers run in the benchmark process.',
  '- what each earlier fix changed, with profiles and figures before and after: bench/results/peers-fixes.md.',
  '',
  '## Comparison',
  '',
  comparison,
  '',
  '## Targets',
  '',
  table(
    ['peer', 'target', 'figure', 'met?'],
    judged.map((target) => [target.peer, `${target.measure} ${target.text}`, target.shown, target.met]),
  ),
  '',
  '## Run',
  '',
  table(['scenario', 'seconds', 'load average after'], timings),
  '',
  ...sections.map(renderSection),
  ...(failures.length
    ? ['## Failures', '', ...failures.map((failure) => `    ${failure.replaceAll('\n', '\n    ')}`), '']
    : []),
].join('\n');

mkdirSync(`${repoRoot}bench/results`, { recursive: true });
writeFileSync(output, report);
log(`\n${report}\nwritten to ${output}`);
process.exit(failures.length ? 1 : 0);

/**
 * `npm run bench` (QUICK=1 for a short run): every scenario of issue 2 in sequence, each bounded
 * in count and time, on loopback only. Prints the tables and writes them to
 * bench/results/issue2.md (issue2-quick.md with QUICK=1). Every process started is killed by PID.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { runHeartbeat } from './heartbeat.js';
import { repoRoot } from './lib/children.js';
import { renderSection, table, type Section } from './lib/markdown.js';
import { fmt } from './lib/stats.js';
import { runMemory } from './memory.js';
import { runScale } from './scale.js';

const quick = process.env['QUICK'] === '1';
const command = quick ? 'QUICK=1 npm run bench' : 'npm run bench';
const output = `${repoRoot}bench/results/${quick ? 'issue2-quick' : 'issue2'}.md`;

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

const log = (line: string) => process.stdout.write(`${line}\n`);
const load = () =>
  loadavg()
    .map((value) => fmt(value, 2))
    .join(', ');

const scenarios: { name: string; run: (options: { quick: boolean; log: typeof log }) => Promise<Section[]> }[] = [
  { name: 'connect cost at scale', run: runScale },
  { name: 'heartbeats over real sockets', run: runHeartbeat },
  { name: 'memory per idle connection', run: runMemory },
];

const started = performance.now();
const startedAt = new Date();
const loadBefore = load();
const sections: Section[] = [];
const failures: string[] = [];
for (const scenario of scenarios) {
  log(`\n# ${scenario.name}`);
  const scenarioStart = performance.now();
  try {
    sections.push(...(await scenario.run({ quick, log })));
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    failures.push(`${scenario.name}: ${message}`);
    log(`  FAILED: ${message}`);
  }
  log(`  (${fmt((performance.now() - scenarioStart) / 1000, 1)} s, load average ${load()})`);
}
const seconds = (performance.now() - started) / 1000;

const dirty = git(['status', '--porcelain', '--', 'src', 'machines']) !== '';
const summary = table(
  ['target', 'met?'],
  [
    ...sections.flatMap((section) => section.targets.map((target) => [target.name, target.verdict])),
    ...failures.map((failure) => [`${failure.split(':')[0]} (scenario failed)`, 'missed']),
  ],
);
const report = [
  `# presenced benchmarks: issue 2${quick ? ' (QUICK=1)' : ''}`,
  '',
  `- date: ${startedAt.toISOString()}`,
  `- machine: ${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${fmt(totalmem() / 1024 ** 3, 1)} GB RAM, Node ${process.version}, ${process.platform}`,
  `- command: \`${command}\` (${fmt(seconds, 0)} s)`,
  `- code: ${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ' with uncommitted changes in src/ or machines/ (shared working tree)' : ''}`,
  `- load average (1, 5, 15 min) before: ${loadBefore}; after: ${load()}. The machine is shared: other agents ran vitest during the run.`,
  '- targets marked "proposed" are derived from the defaults of CONTRACT §2 (100,000 connections per node, a heartbeat every 25 s); the connect-cost target is the one given for issue 2.',
  '',
  '## Summary',
  '',
  summary,
  '',
  ...sections.map(renderSection),
  ...(failures.length
    ? ['## Failures', '', ...failures.map((failure) => `    ${failure.replaceAll('\n', '\n    ')}`), '']
    : []),
].join('\n');

mkdirSync(new URL('results/', import.meta.url), { recursive: true });
writeFileSync(output, report);
log(`\n${report}`);
log(`written to ${output}`);
process.exit(failures.length ? 1 : 0);

/**
 * `npm run bench:issues` (QUICK=1 for a short run): the scale and memory suite (`issue2`), the Redis
 * suite (`issue3`) and the inspection suite (`issue4`) in sequence, each scenario bounded in count and
 * time, on loopback only (the Redis suite against a private redis-server on a free port). Prints the
 * tables and writes them to bench/results/issue2.md, issue3.md and issue4.md (issue2-quick.md, … with
 * QUICK=1). ONLY=issue2 (issue3, issue4) runs one of them.
 * Every process started is killed by PID.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { runHeartbeat } from './heartbeat.js';
import { repoRoot } from './lib/children.js';
import { renderSection, table, type Section } from './lib/markdown.js';
import { fmt } from './lib/stats.js';
import { runInspect } from './inspect.js';
import { runMemory } from './memory.js';
import type { ScenarioOptions } from './lib/scenario.js';
import { runJsonWorker } from './lib/worker.js';
import { redisOpsScenario } from './redisOps.js';
import { redisRestoreScenario } from './redisRestore.js';
import { runScale } from './scale.js';

const quick = process.env['QUICK'] === '1';
const only = process.env['ONLY'];
const command = `${quick ? 'QUICK=1 ' : ''}${only ? `ONLY=${only} ` : ''}npm run bench:issues`;

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

interface Scenario {
  name: string;
  /**
   * Setup that is not measured (filling a store) and may run in the background from the start of
   * the suite, while earlier scenarios run; `run` waits for it.
   */
  prepare?: (options: ScenarioOptions) => Promise<void>;
  run: (options: ScenarioOptions) => Promise<Section[]>;
}

interface Suite {
  id: 'issue2' | 'issue3' | 'issue4';
  title: string;
  /** Lines of the report's preamble after the common ones. */
  preamble: string[];
  scenarios: Scenario[];
}

const suites: Suite[] = [
  {
    id: 'issue2',
    title: 'scale and memory',
    preamble: [
      '- targets marked "proposed" are derived from the documented defaults (100,000 connections per node, a heartbeat every 25 s); the connect-cost target is that a connect at 50,000 live connections costs at most 1.5× one at 1,000.',
    ],
    scenarios: [
      { name: 'connect cost at scale', run: runScale },
      { name: 'heartbeats over real sockets', run: runHeartbeat },
      { name: 'memory per idle connection', run: runMemory },
    ],
  },
  {
    id: 'issue3',
    title: 'Redis',
    preamble: [
      `- Redis: a private \`redis-server\` (${redisVersion()}) per scenario on a free loopback port, no persistence (test/support/redis.ts); never the machine's 6379.`,
      '- targets are fixed ahead of the measurement, except those marked "proposed" (derived from the documented defaults).',
    ],
    // Each scenario's `prepare` starts with the suite, in the background: the commands scenario
    // starts its two servers (then idle), the restore scenario fills its Redis — beside the outage
    // scenario, which is paced and light, then beside the first phases of the commands scenario,
    // whose CPU-bound closed loop waits for the fills to end; the restores run alone.
    scenarios: [
      {
        name: 'write-behind queue during a Redis outage',
        // In a worker of its own: its memory figures must be the server's alone.
        run: (options) =>
          runJsonWorker<Section[]>('bench/outageWorker.ts', { quick: options.quick }, 240_000, { log: options.log }),
      },
      redisOpsScenario(),
      redisRestoreScenario(),
    ],
  },
  {
    id: 'issue4',
    title: 'inspection',
    preamble: ['- inspection is off by default; these figures say what `PRESENCED_INSPECT` costs when it is on.'],
    scenarios: [{ name: 'cost of inspection', run: runInspect }],
  },
];

function redisVersion(): string {
  try {
    const banner = execFileSync('redis-server', ['--version'], { encoding: 'utf8' });
    return `v${/v=(\S+)/.exec(banner)?.[1] ?? 'unknown'}`;
  } catch {
    return 'version unknown';
  }
}

async function runSuite(suite: Suite): Promise<boolean> {
  const output = `${repoRoot}bench/results/${suite.id}${quick ? '-quick' : ''}.md`;
  const started = performance.now();
  const startedAt = new Date();
  const loadBefore = load();
  const sections: Section[] = [];
  const failures: string[] = [];
  // Background setup of later scenarios; its failures surface in their `run`.
  const background: Promise<void>[] = [];
  for (const scenario of suite.scenarios) {
    if (scenario.prepare)
      background.push(scenario.prepare({ quick, log, quiet: () => Promise.resolve() }).catch(() => undefined));
  }
  const quiet = async () => void (await Promise.all(background));
  for (const scenario of suite.scenarios) {
    log(`\n# ${scenario.name}`);
    const scenarioStart = performance.now();
    try {
      sections.push(...(await scenario.run({ quick, log, quiet })));
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      failures.push(`${scenario.name}: ${message}`);
      log(`  FAILED: ${message}`);
    }
    log(`  (${fmt((performance.now() - scenarioStart) / 1000, 1)} s, load average ${load()})`);
  }
  const seconds = (performance.now() - started) / 1000;

  const dirty = git(['status', '--porcelain', '--', 'src', 'machines', 'bench', ':!bench/results']) !== '';
  const summary = table(
    ['target', 'met?'],
    [
      ...sections.flatMap((section) => section.targets.map((target) => [target.name, target.verdict])),
      ...failures.map((failure) => [`${failure.split(':')[0]} (scenario failed)`, 'missed']),
    ],
  );
  const report = [
    `# presenced benchmarks: ${suite.title}${quick ? ' (QUICK=1)' : ''}`,
    '',
    `- date: ${startedAt.toISOString()}`,
    `- machine: ${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), ${fmt(totalmem() / 1024 ** 3, 1)} GB RAM, Node ${process.version}, ${process.platform}`,
    `- command: \`${command}\` (this part: ${fmt(seconds, 0)} s)`,
    `- code: ${git(['rev-parse', '--short', 'HEAD'])}${dirty ? ' with uncommitted changes in src/, machines/ or bench/' : ''}`,
    `- load average (1, 5, 15 min) before: ${loadBefore}; after: ${load()}. The machine is shared with other agents' work.`,
    ...suite.preamble,
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
  return failures.length === 0;
}

const started = performance.now();
let ok = true;
for (const suite of suites) {
  if (only && only !== suite.id) continue;
  ok = (await runSuite(suite)) && ok;
}
log(`\nbench done in ${fmt((performance.now() - started) / 1000, 0)} s`);
process.exit(ok ? 0 : 1);

/**
 * Redis suite, scenario 2: restore time. A `presenced serve` child fills Redis with N connections and
 * is stopped with SIGTERM (it drains and flushes); a new process with the same PRESENCED_NODE_ID is
 * then timed from spawn to `/health/ready` = 200, and its own `restored connections` log line read.
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { redisKeys } from '../src/store/redis.js';
import { freePort } from '../test/support/redis.js';
import type { FillClientsMessage, FillClientsRequest } from './fillClients.js';
import { stopChild } from './lib/children.js';
import { ofType, spawnIpcChild } from './lib/ipcChild.js';
import { table, verdict, type Section, type Verdict } from './lib/markdown.js';
import type { ScenarioOptions } from './lib/scenario.js';
import {
  commandDelta,
  startBenchRedis,
  waitForWholeFlushAfter,
  type BenchRedis,
  type CommandDelta,
} from './lib/redis.js';
import {
  buildServer,
  collectLogs,
  procRssBytes,
  spawnBuiltServer,
  startServerProcess,
  type LogLine,
} from './lib/serverProcess.js';
import { fmt } from './lib/stats.js';

/** The target: 50,000 connections restored in at most 3 s. */
const TARGET_MS = 3_000;
const TARGET_N = 50_000;
/** Every other connection joins a game; games of this many. */
const GAME_SIZE = 10;
/**
 * Sessions still open at SIGTERM (the drain closes them with 1012). The others drop their socket
 * right after their first call: they are `stale` and resumable, which is what a restore
 * brings back anyway, and it keeps the benchmark under the file-descriptor limit and the loopback
 * port range (~28k) at 50k sessions.
 */
const LIVE_AT_SIGTERM = 2_000;
const CONCURRENCY = 100;

interface Filled {
  n: number;
  key: string;
  env: Record<string, string>;
  fillSeconds: number;
  drainSeconds: number;
  drainExit: number | null;
  /** Close codes the sockets kept open saw when the drain closed them. */
  drainCodes: Record<string, number>;
  /** The filling server's error-level log lines. */
  drainErrors: string[];
  stored: number;
}

/** One restore: its fill, then what the restarted node did and reported. */
interface RestoreRun extends Filled {
  recordBytes: number;
  listeningMs: number;
  readyMs: number;
  log: { restored: number; skipped: number; ms: number } | null;
  total: number;
  stale: number;
  games: number;
  rssMb: number;
  delta: CommandDelta;
  /** From ready to the end of the first flush that started after it. */
  firstFlush: CommandDelta;
}

interface HealthConnections {
  total: number;
  games: number;
  byState: { connected: number; inGame: number; stale: number };
}

/** Fills Redis with `n` connections of the node (half of them in games) and stops the server with SIGTERM. */
async function fill(env: Record<string, string>, n: number) {
  const server = await startServerProcess(env);
  const request: FillClientsRequest = {
    wsUrl: server.wsUrl,
    sessions: n,
    keepOpen: LIVE_AT_SIGTERM,
    gameSize: GAME_SIZE,
    concurrency: CONCURRENCY,
    userPrefix: `restore-${n}`,
  };
  const clients = spawnIpcChild('bench/fillClients.ts', request);
  const settled = (message: unknown): message is FillClientsMessage =>
    ofType<FillClientsMessage>('filled')(message) || ofType<FillClientsMessage>('failed')(message);
  try {
    const filled = await clients.waitFor(settled, 600_000);
    if (filled.type === 'failed') throw new Error(`filling ${n} sessions failed: ${filled.error}`);
    if (filled.type !== 'filled') throw new Error(`unexpected ${filled.type}`);
    const closed = clients.waitFor(ofType<Extract<FillClientsMessage, { type: 'closed' }>>('closed'), 120_000);
    const stopAt = performance.now();
    const exit = await server.stop(60_000);
    const drainSeconds = (performance.now() - stopAt) / 1000;
    // The drain closed the sockets still open (1012, server restarting).
    const { codes } = await closed;
    // What the server logged at error level (a drain that outlasts its deadline says so).
    const drainErrors = server.logs.filter((line) => line.level >= 50).map((line) => line.msg);
    return { fillSeconds: filled.seconds, drainSeconds, drainExit: exit.code, drainCodes: codes, drainErrors };
  } finally {
    await clients.stop();
    await server.stop();
  }
}

/** Average length of the stored records (JSON), from a sample of the node's hash. */
async function recordBytes(redis: BenchRedis, key: string): Promise<number> {
  const [, fields] = await redis.probe.hscan(key, '0', 'COUNT', 200);
  let bytes = 0;
  let count = 0;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === ':alive') continue;
    bytes += fields[i + 1]?.length ?? 0;
    count++;
  }
  return count ? bytes / count : Number.NaN;
}

/** Polls `/health/ready` from spawn on: when it first answers at all, and when it answers 200. */
async function timeReady(child: ChildProcess, url: string, spawnedAt: number, timeoutMs: number) {
  let listeningMs = Number.NaN;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('the restoring server exited');
    if (performance.now() - spawnedAt > timeoutMs) throw new Error(`not ready ${timeoutMs} ms after spawn`);
    try {
      const response = await fetch(`${url}/health/ready`);
      await response.arrayBuffer();
      const at = performance.now() - spawnedAt;
      if (Number.isNaN(listeningMs)) listeningMs = at;
      if (response.status === 200) return { listeningMs, readyMs: at };
    } catch {
      // Not listening yet.
    }
    await sleep(10);
  }
}

async function fillOne(redis: BenchRedis, n: number, log: (line: string) => void): Promise<Filled> {
  const prefix = redis.prefix();
  const nodeId = `bench-restore-${n}`;
  const key = redisKeys(prefix).node(nodeId);
  // Long grace periods: nothing may expire between the fill and the restore.
  const env = {
    REDIS_URL: redis.url,
    PRESENCED_REDIS_PREFIX: prefix,
    PRESENCED_NODE_ID: nodeId,
    PRESENCED_EXPIRE_MS: '3600000',
  };
  const filled = await fill(env, n);
  const stored = (await redis.probe.hlen(key)) - 1;
  log(
    `  (restore) filled ${fmt(n)} sessions in ${fmt(filled.fillSeconds, 1)} s; SIGTERM → exit ${filled.drainExit} in ${fmt(filled.drainSeconds, 1)} s; ${fmt(stored)} stored`,
  );
  return { n, key, env, ...filled, stored };
}

async function restoreRun(redis: BenchRedis, filled: Filled, log: (line: string) => void): Promise<RestoreRun> {
  const { n, key, env } = filled;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const before = await redis.counters();
  const spawnedAt = performance.now();
  const child = spawnBuiltServer({ ...env, PORT: String(port), LOG_LEVEL: 'info' });
  const logs: LogLine[] = [];
  collectLogs(child, logs);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2_000)));
  try {
    let ready: { listeningMs: number; readyMs: number };
    try {
      ready = await timeReady(child, url, spawnedAt, 120_000);
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}: ${stderr}`);
    }
    const after = await redis.counters();
    // The first flush after the restore: it refreshes the TTL of every key of every restored connection.
    await waitForWholeFlushAfter(redis, key, Date.now());
    const afterFlush = await redis.counters();
    // The log line is written before the server turns ready; its pipe may trail the HTTP answer.
    for (let i = 0; i < 100 && !logs.some((line) => line.msg === 'restored connections'); i++) await sleep(20);
    const line = logs.find((entry) => entry.msg === 'restored connections');
    const health = (await (await fetch(`${url}/health/connections`)).json()) as HealthConnections;
    const run: RestoreRun = {
      ...filled,
      recordBytes: await recordBytes(redis, key),
      ...ready,
      log: line
        ? { restored: Number(line['restored']), skipped: Number(line['skipped']), ms: Number(line['ms']) }
        : null,
      total: health.total,
      stale: health.byState.stale,
      games: health.games,
      rssMb: child.pid === undefined ? Number.NaN : procRssBytes(child.pid) / 1024 / 1024,
      delta: commandDelta(before, after),
      firstFlush: commandDelta(after, afterFlush),
    };
    log(
      `  restore of ${fmt(n)}: ready ${fmt(run.readyMs)} ms after spawn; log: ${line ? `${run.log?.restored} restored in ${run.log?.ms} ms` : 'no line'}`,
    );
    return run;
  } finally {
    // Thrown away: SIGKILL rather than a drain that would rewrite every snapshot.
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null)
      process.kill(child.pid, 'SIGKILL');
    await stopChild(child, 1_000);
  }
}

const commands = (delta: CommandDelta) =>
  delta.byCommand.map(([command, calls]) => `${command} ${fmt(calls)}`).join(', ') || 'none';

/**
 * The scenario's fills (the N sessions and the SIGTERM) start with the suite, in the background,
 * against their own redis-server: `prepare()`. `run()` waits for them, then times each restore
 * alone. Whatever else runs meanwhile waits for `prepare()` before timing anything CPU-bound.
 */
export function redisRestoreScenario() {
  let filling: Promise<{ redis: BenchRedis; filled: Filled[] }> | null = null;
  const fillAll = (options: ScenarioOptions) =>
    (filling ??= (async () => {
      const redis = await startBenchRedis();
      try {
        const filled: Filled[] = [];
        for (const n of options.quick ? [10_000] : [10_000, TARGET_N])
          filled.push(await fillOne(redis, n, options.log));
        return { redis, filled };
      } catch (error) {
        await redis[Symbol.asyncDispose]();
        throw error;
      }
    })());
  return {
    name: 'restore after a restart',
    async prepare(options: ScenarioOptions): Promise<void> {
      buildServer();
      await fillAll(options);
    },
    async run(options: ScenarioOptions): Promise<Section[]> {
      const { redis, filled } = await fillAll(options);
      try {
        const runs: RestoreRun[] = [];
        for (const one of filled) runs.push(await restoreRun(redis, one, options.log));
        return report(runs, options.quick);
      } finally {
        await redis[Symbol.asyncDispose]();
      }
    },
  };
}

function report(runs: RestoreRun[], quick: boolean): Section[] {
  const targets: Section['targets'] = [];
  const rows = runs.map((run) => {
    const complete = run.log?.restored === run.n && run.total === run.n && run.stale === run.n && run.stored === run.n;
    const isTarget = run.n === TARGET_N;
    const ms = run.log?.ms ?? Number.NaN;
    const metMs: Verdict = isTarget ? verdict(ms <= TARGET_MS) : '—';
    const metReady: Verdict = isTarget ? verdict(run.readyMs <= TARGET_MS) : '—';
    if (isTarget) {
      targets.push({
        name: `restore ${fmt(TARGET_N)}: the restore itself (log \`ms\`) ≤ ${TARGET_MS / 1000} s`,
        verdict: metMs,
      });
      targets.push({
        name: `restore ${fmt(TARGET_N)}: spawn to \`/health/ready\` = 200 ≤ ${TARGET_MS / 1000} s (includes process start)`,
        verdict: metReady,
      });
    }
    targets.push({ name: `restore ${fmt(run.n)}: every connection came back`, verdict: verdict(complete) });
    return [
      fmt(run.n),
      `${fmt(ms)}${isTarget ? ` (≤ ${fmt(TARGET_MS)}: ${metMs})` : ''}`,
      `${fmt(run.readyMs)}${isTarget ? ` (≤ ${fmt(TARGET_MS)}: ${metReady})` : ''}`,
      fmt(run.listeningMs),
      `${fmt(run.log?.restored ?? Number.NaN)} / ${fmt(run.log?.skipped ?? Number.NaN)}`,
      `${fmt(run.total)} (${fmt(run.stale)} stale, ${fmt(run.games)} games)`,
      verdict(complete),
      commands(run.delta),
      commands(run.firstFlush),
      fmt(run.rssMb),
      `${fmt(run.fillSeconds, 1)} s; SIGTERM → exit ${run.drainExit} in ${fmt(run.drainSeconds, 1)} s, closing ${Object.entries(
        run.drainCodes,
      )
        .map(([code, count]) => `${fmt(count)} with ${code}`)
        .join(
          ', ',
        )}${run.drainErrors.length ? `; logged: ${[...new Set(run.drainErrors)].map((msg) => `"${msg}"`).join(', ')}` : ''}`,
      fmt(run.recordBytes),
    ];
  });
  return [
    {
      title: 'Restore after a restart',
      method:
        `Fill: \`presenced serve\` (child, REDIS_URL, its own prefix and PRESENCED_NODE_ID, PRESENCED_EXPIRE_MS=3600000) takes N raw sessions (${CONCURRENCY} opening at a time), every other one joins a game of ${GAME_SIZE} (its first call), the others call \`session.info\`; ` +
        `all but the last ${fmt(LIVE_AT_SIGTERM)} then drop their socket (terminate: stale, resumable), then SIGTERM: the server drains (closing the live ones with 1012), flushes and must exit 0. ` +
        'Restore: a new process with the same PRESENCED_NODE_ID on a known free port, LOG_LEVEL=info; `/health/ready` is polled every 10 ms from spawn. ' +
        '"restore (log ms)" is the `ms` field of the server\'s own `restored connections` line (from reading Redis to every connection being back: validated, in presence, its timer armed, its sealed shard in the supervisor; actors are spawned when a connection is woken); "spawn → ready" adds the process start (Node loading the compiled server from dist/, as `npm start` runs it), opening Redis and listening.',
      table: table(
        [
          'connections (N)',
          'restore, log `ms`',
          'spawn → `/health/ready` 200 (ms)',
          'spawn → first HTTP answer (ms)',
          'log: restored / skipped',
          '`/health/connections` total',
          'all back?',
          'Redis commands, spawn → ready',
          'Redis commands, ready → end of the first flush after it (+ one idle flush)',
          'RSS after restore (MB)',
          'fill (N sessions); drain',
          'bytes per stored record',
        ],
        rows,
      ),
      notes: [
        `"all back?" requires: the log's \`restored\` = N, \`/health/connections\` total = N and all of them \`stale\`, and N records in the node's hash after the SIGTERM (HLEN − 1 for \`:alive\`).`,
        "The Redis commands columns count everything the new process sent except PINGs and connection handshakes: from spawn to ready (the node's hash is read with `HSCAN … COUNT 5000`), then until the first flush that started after ready has run whole (seen from the next flush, whose idle `HSET` is included). The first flush after a start refreshes the TTL of every key of every connection the store knows (`EXPIRE` on the node hash and on each user and game set; then again every 20 min, a third of the one-hour TTL).",
        ...(quick ? ['QUICK=1 runs 10,000 only: the 50,000 target is judged by the full run.'] : []),
        "The fills (a server process and a client process, bench/fillClients.ts) ran in the background while the first scenario's lifecycle and paced phases ran against their own redis-servers, so fill times are taken on a busy machine; the restores above ran alone.",
      ],
      targets,
    },
  ];
}

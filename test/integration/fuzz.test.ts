import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CloseCode, type Member } from '../../src/protocol.js';
import { describeCase, runFuzzCase, type Lingering } from '../support/fuzzClient.js';
import { fuzzCase, type FuzzCase } from '../support/fuzzFrames.js';
import { outcome, RawSocket } from '../support/rawSocket.js';
import { spawnServer, type ServerProcess } from '../support/serverProcess.js';

/**
 * Random frames against `presenced serve` in its own process (fast-check). Valid tRPC shapes
 * with random inputs, random bytes, batches, odd connectionParams, sockets reset mid-stream, raw
 * upgrade requests, many subscriptions. Each case must get only well-formed, non-internal answers
 * and leave the process alive; after the run memory is bounded, nothing is left behind, and a
 * normal client works. `npm test` runs a few hundred cases with a fixed seed; `npm run fuzz` runs
 * thousands and writes bench/results/fuzz.md. `FUZZ_SEED` and `FUZZ_RUNS` override both.
 */

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 300);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20_261_204);
const REPORT = process.env['FUZZ_REPORT'];

const MAX_PAYLOAD_BYTES = 65_536;
const RATE_LIMIT = 50;
const AUTH_TIMEOUT_MS = 1_000;
const EXPIRE_MS = 1_500;
/**
 * RSS growth allowed over the run. The server under tsx serves at about 115 MB; a run holds nothing
 * once its sockets are gone, so what remains is V8's heap high-water mark and allocator slack from
 * frames of up to 100 KB: measured 37–39 MB after 300 and after 2,500 cases (peak 210 MB during
 * the 2,500). A leak of one socket's worth per case (tRPC state, an actor, a 64 KB frame) grows with
 * FUZZ_RUNS past this; 150 MB leaves room for GC timing on a busy machine, not for such a leak.
 */
const RSS_GROWTH_LIMIT_BYTES = 150 * 2 ** 20;
/**
 * fast-check's budget: about 60 ms a case on a 2-core machine, so 200 ms a case leaves room for a
 * loaded machine, plus 30 s for shrinking a failure (each shrink step replays cases, and respawns the
 * server when they crash it). Past it, fast-check stops and reports the smallest case found so far.
 */
const CHECK_TIME_LIMIT_MS = RUNS * 200 + 30_000;
/** Shrinking stops this long after the first failure: later shrink steps pass without running. */
const SHRINK_BUDGET_MS = 30_000;
/** A crash after a case shows within this long (the process prints and exits). */
const CRASH_WINDOW_MS = 20;
/** A silent socket may live this much longer than the auth timeout (timer granularity and a loaded machine). */
const SILENT_SOCKET_SLACK_MS = 2_000;

const bounds = { maxPayloadBytes: MAX_PAYLOAD_BYTES, maxBatchSize: RATE_LIMIT * 2 };
const clientBounds = { replyWaitMs: 150, openMs: 2_000 };

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The server, respawned if a case killed it, so that shrinking runs against a live one. */
class FuzzServer {
  readonly crashes: { output: string; exit: string }[] = [];
  constructor(public current: ServerProcess) {}

  static async start() {
    return new FuzzServer(await spawnServer(serverEnv));
  }

  get dead() {
    return this.current.child.exitCode !== null || this.current.child.signalCode !== null;
  }

  /** The live server; a dead one is recorded (the sentinel fails the test for it) and replaced. */
  async alive(): Promise<ServerProcess> {
    if (this.dead) {
      const { exitCode, signalCode } = this.current.child;
      this.crashes.push({
        output: this.current.stderr() + this.current.stdout(),
        exit: String(exitCode ?? signalCode),
      });
      this.current = await spawnServer(serverEnv);
    }
    return this.current;
  }
}

const serverEnv = {
  PRESENCED_AUTH: 'dev',
  PRESENCED_MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD_BYTES),
  PRESENCED_RATE_LIMIT: String(RATE_LIMIT),
  PRESENCED_AUTH_TIMEOUT_MS: String(AUTH_TIMEOUT_MS),
  PRESENCED_EXPIRE_MS: String(EXPIRE_MS),
  PRESENCED_INGAME_EXPIRE_MS: String(EXPIRE_MS),
  PRESENCED_WARN_MS: '500',
};

interface RunResult {
  details: fc.RunDetails<[FuzzCase]> | null;
  durationMs: number;
  rssBaseline: number;
  rssPeak: number;
  rssAfter: number;
  loadBefore: number[];
  loadAfter: number[];
  errors: Map<string, number>;
  silentSockets: number;
  silentOpenTooLong: number;
}

describe('fuzz: random frames against a server process', () => {
  let server: FuzzServer;
  const lingering: Lingering[] = [];
  const run: RunResult = {
    details: null,
    durationMs: 0,
    rssBaseline: 0,
    rssPeak: 0,
    rssAfter: 0,
    loadBefore: loadavg(),
    loadAfter: [],
    errors: new Map(),
    silentSockets: 0,
    silentOpenTooLong: 0,
  };

  beforeAll(async () => {
    server = await FuzzServer.start();
    // Warm up once (module loading, JIT, the first actor) so the baseline is the serving process.
    await normalClientWorks(server.current, 'warm-up');
    run.rssBaseline = server.current.rssBytes();
    run.rssPeak = run.rssBaseline;
  });

  afterAll(async () => {
    for (const { ws } of lingering) ws.terminate();
    if (REPORT) writeReport(REPORT, run, server);
    await server.current.stop();
  });

  it(
    `${RUNS} random cases: every answer is well-formed and not internal, and the process survives each`,
    async () => {
      const started = performance.now();
      let firstFailureAt: number | null = null;
      const runCase = async (c: FuzzCase) => {
        if (server.dead) {
          await server.alive();
          throw new Error('the server was found dead before this case (a late crash from an earlier case)');
        }
        const target = server.current;
        const logged = target.stdout().length;
        const result = await runFuzzCase(target, c, clientBounds, lingering);
        for (const { code, message } of result.errors) {
          const key = `${code}: ${message.slice(0, 100)}`;
          run.errors.set(key, (run.errors.get(key) ?? 0) + 1);
        }
        const died = await Promise.race([target.exited.then(() => true), wait(CRASH_WINDOW_MS).then(() => false)]);
        if (died) {
          const output = target.stderr() + target.stdout();
          await server.alive();
          throw new Error(`the server died:\n${output.slice(-2_000)}`);
        }
        run.rssPeak = Math.max(run.rssPeak, target.rssBytes());
        // Bad input is the client's fault: it must never be logged (or reported to onError) as a server error.
        const errorLines = target
          .stdout()
          .slice(logged)
          .split('\n')
          .filter((line) => line.includes('"level":50'));
        for (const line of errorLines.slice(0, 3))
          result.problems.push(`an error-level log line: ${line.slice(0, 300)}`);
        if (result.problems.length > 0) throw new Error(result.problems.join('\n'));
      };
      const property = fc.asyncProperty(fuzzCase(bounds), async (c) => {
        if (firstFailureAt !== null && performance.now() - firstFailureAt > SHRINK_BUDGET_MS) return;
        try {
          await runCase(c);
        } catch (error) {
          firstFailureAt ??= performance.now();
          throw error;
        }
      });
      run.details = await fc.check(property, {
        seed: SEED,
        numRuns: RUNS,
        interruptAfterTimeLimit: CHECK_TIME_LIMIT_MS,
        markInterruptAsFailure: true,
      });
      run.durationMs = performance.now() - started;
      run.loadAfter = loadavg();
      const { details } = run;
      expect(details.failed, details.failed ? failureText(details) : '').toBe(false);
      expect(server.crashes).toEqual([]);
    },
    CHECK_TIME_LIMIT_MS + 30_000,
  );

  it('sockets that never send their connectionParams are closed after the auth timeout', async () => {
    const silent = lingering.slice();
    run.silentSockets = silent.length;
    expect(silent.length, 'the run opened silent sockets').toBeGreaterThan(0);
    const limit = AUTH_TIMEOUT_MS + SILENT_SOCKET_SLACK_MS;
    const latest = Math.max(...silent.map((s) => s.openedAt));
    // Wait for the youngest one's deadline (or for all of them to be closed).
    await vi.waitFor(
      () => {
        if (performance.now() < latest + limit && silent.some((s) => s.closedAt === null)) throw new Error('waiting');
      },
      { timeout: limit + 1_000, interval: 50 },
    );
    const tooLong = silent.filter((s) => (s.closedAt ?? performance.now()) - s.openedAt > limit);
    run.silentOpenTooLong = tooLong.length;
    expect(tooLong.length, `${tooLong.length} of ${silent.length} silent sockets open longer than ${limit} ms`).toBe(0);
  });

  it('memory is bounded: RSS after the run is within 150 MB of the baseline', () => {
    run.rssAfter = server.current.rssBytes();
    expect(server.crashes).toEqual([]);
    expect(run.rssAfter - run.rssBaseline).toBeLessThan(RSS_GROWTH_LIMIT_BYTES);
  });

  it('a normal client works after the run: heartbeat, join, members, leave', async () => {
    await normalClientWorks(server.current, 'after-fuzz');
  });

  it('nothing is left behind: once every fuzz connection expired, no connection, user or game remains', async () => {
    for (const { ws } of lingering) ws.terminate();
    await vi.waitFor(
      async () => {
        const response = await fetch(`${server.current.url}/health/connections`);
        expect(await response.json()).toEqual({
          total: 0,
          users: 0,
          games: 0,
          byState: { connected: 0, inGame: 0, stale: 0 },
          perGame: {},
        });
      },
      { timeout: EXPIRE_MS + 8_000, interval: 200 },
    );
  });
});

async function normalClientWorks(target: ServerProcess, userId: string) {
  await using socket = await RawSocket.open(target.wsUrl, { userId });
  expect(outcome(await socket.request('mutation', 'session.heartbeat', { clientTime: Date.now() }))).toBe('OK');
  const gameId = `fuzz-${userId}`;
  expect(outcome(await socket.request('mutation', 'game.join', { gameId }))).toBe('OK');
  const members = await socket.request('query', 'presence.members', { gameId });
  expect((members.result?.data as Member[]).map((m) => m.userId)).toEqual([userId]);
  expect(outcome(await socket.request('mutation', 'session.leave'))).toBe('OK');
  await expect(socket.closed).resolves.toMatchObject({ code: CloseCode.left });
}

function failureText(details: fc.RunDetails<[FuzzCase]>): string {
  const example = details.counterexample ? describeCase(details.counterexample[0]) : '(none)';
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
  return (
    `failed after ${details.numRuns} cases and ${details.numShrinks} shrinks ` +
    `(seed ${details.seed}, path "${details.counterexamplePath}"):\n${error}\ncounterexample: ${example}`
  );
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;

function writeReport(path: string, run: RunResult, server: FuzzServer) {
  const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim();
  const dirty = git('status', '--porcelain', '--', 'src', 'test').length > 0 ? ' (with uncommitted changes)' : '';
  const { details } = run;
  const errors = [...run.errors.entries()].sort((a, b) => b[1] - a[1]);
  const lines = [
    '# Fuzz run',
    '',
    `Command: \`FUZZ_RUNS=${RUNS} FUZZ_SEED=${SEED} npm run fuzz\` (vitest, test/integration/fuzz.test.ts, FUZZ_REPORT set)`,
    '',
    '| | |',
    '| --- | --- |',
    `| commit | ${git('rev-parse', '--short', 'HEAD')}${dirty} |`,
    `| date | ${new Date().toISOString()} |`,
    `| seed | ${SEED} |`,
    `| cases run | ${details?.numRuns ?? 0} of ${RUNS}, ${details?.numShrinks ?? 0} shrinks |`,
    `| duration | ${(run.durationMs / 1_000).toFixed(1)} s |`,
    `| RSS baseline / peak / after | ${mb(run.rssBaseline)} / ${mb(run.rssPeak)} / ${mb(run.rssAfter)} (growth ${mb(run.rssAfter - run.rssBaseline)}, limit ${mb(RSS_GROWTH_LIMIT_BYTES)}) |`,
    `| process survived | ${server.crashes.length === 0 && !server.dead ? 'yes' : `no: ${server.crashes.length} crash(es)`} |`,
    `| silent connectionParams sockets | ${run.silentSockets}, ${run.silentOpenTooLong} open longer than ${AUTH_TIMEOUT_MS + SILENT_SOCKET_SLACK_MS} ms |`,
    `| load average (1, 5, 15 min) before / after | ${run.loadBefore.map((l) => l.toFixed(2)).join(', ')} / ${run.loadAfter.map((l) => l.toFixed(2)).join(', ')} |`,
    `| server env | ${Object.entries(serverEnv)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')} |`,
    '',
    '## Failures',
    '',
    details?.failed ? ['```', failureText(details), '```'].join('\n') : 'None.',
    '',
    ...server.crashes.flatMap((crash, i) => [
      `### Crash ${i + 1} (exit ${crash.exit})`,
      '',
      '```',
      crash.output.slice(-3_000),
      '```',
      '',
    ]),
    '## Error replies seen (code: message, count)',
    '',
    ...errors.slice(0, 40).map(([key, count]) => `- \`${key.replace(/[`\n\r]/g, ' ')}\` × ${count}`),
    '',
  ];
  writeFileSync(path, lines.join('\n'));
}

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export const repoRoot = new URL('../../', import.meta.url).pathname;

/**
 * Every process the benchmark starts is registered here and killed by its PID when the benchmark
 * ends, however it ends (normal exit, an exception, Ctrl-C).
 */
const live = new Set<ChildProcess>();

function killAll() {
  for (const child of live) {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) continue;
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // Gone between the check and the kill.
    }
  }
}
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** `command ...args` from the repository root, tracked until it exits. */
export function spawnTracked(command: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(command, args, {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** `node [nodeArgs] --import tsx <script> ...args`, tracked. */
export const spawnTsx = (script: string, args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []) =>
  spawnTracked(process.execPath, [...nodeArgs, '--import', 'tsx', script, ...args], env);

/** Resolves once the child exited: SIGTERM first, SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Clock ticks per second of `/proc/<pid>/stat` times. */
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** utime + stime of `pid` so far, in seconds. */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

export function procRssBytes(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** A server child process whose CPU and memory are read from /proc, stopped by its PID. */
export interface ServerProcess extends AsyncDisposable {
  readonly pid: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** presenced's tRPC endpoint, `ws://127.0.0.1:PORT/trpc` */
  readonly wsUrl: string;
  cpuSeconds(): number;
  rssBytes(): number;
}

/** Resolves with the URL once the child prints `listening on http://…`; its output is drained after. */
function listeningUrl(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => done(new Error(`no "listening on" in ${timeoutMs} ms: ${out}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match?.[1]) done(null, match[1]);
    };
    const onExit = (code: number | null) => done(new Error(`exited (${code}) before listening: ${out}`));
    function done(error: Error | null, url = '') {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(url);
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.once('exit', onExit);
  });
}

/** `node --import tsx <script>`, resolved once it listens; `env` on top of this process's. */
export async function startChildServer(
  script: string,
  args: string[] = [],
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<ServerProcess> {
  const child = spawnTsx(script, args, env, nodeArgs);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${script}`);
  let url: string;
  try {
    url = await listeningUrl(child, 30_000);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  // Keep the pipes drained so a chatty server never blocks on a full pipe.
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    pid,
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/trpc`,
    cpuSeconds: () => procCpuSeconds(pid),
    rssBytes: () => procRssBytes(pid),
    [Symbol.asyncDispose]: () => stopChild(child),
  };
}

/** `presenced serve` through its CLI (`src/tools/cli.ts serve`) on a free loopback port, `env` on top. */
export const startPresenced = (env: Record<string, string> = {}, nodeArgs: string[] = []) =>
  startChildServer(
    'src/tools/cli.ts',
    ['serve'],
    { NODE_ENV: 'development', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    nodeArgs,
  );

/**
 * Runs `script` in a fresh `node --expose-gc --import tsx` process (so no run inherits another's
 * heap or JIT state) with one JSON argument, and resolves with the JSON line it prints last.
 */
export function runJsonWorker<T>(script: string, argument: unknown, timeoutMs: number): Promise<T> {
  const child = spawnTsx(script, [JSON.stringify(argument)], {}, ['--expose-gc']);
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`${script} failed (${signal ?? `exit ${code}`}): ${err.slice(-500)}`));
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`${script} printed no JSON: ${last.slice(0, 200)}`));
      }
    });
  });
}

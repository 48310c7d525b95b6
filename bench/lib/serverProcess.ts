import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { repoRoot, spawnNode, spawnTsx, stopChild, type ChildExit } from './children.js';

/** Clock ticks per second of `/proc/<pid>/stat` times (100 on every Linux we run on, but ask). */
const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** A `presenced serve` child process whose CPU and memory the benchmark reads from /proc. */
export interface ServerProcess extends AsyncDisposable {
  readonly pid: number;
  /** `ws://127.0.0.1:PORT/trpc` */
  readonly wsUrl: string;
  readonly url: string;
  /** utime + stime of the server process so far, in seconds. */
  cpuSeconds(): number;
  /** Resident set size now, in bytes. */
  rssBytes(): number;
  /** `GET /health`'s connection count. */
  connections(): Promise<number>;
  /** Every pino line the server printed so far (JSON lines on stdout), oldest first. */
  readonly logs: LogLine[];
  /** SIGTERM (the server drains and flushes), SIGKILL after `graceMs`; resolves with how it exited. */
  stop(graceMs?: number): Promise<ChildExit>;
}

/** One pino line of the server's stdout. */
export interface LogLine {
  level: number;
  time: number;
  msg: string;
  [field: string]: unknown;
}

/** Collects the server's pino lines (its other lines are plain text) and keeps the pipe drained. */
export function collectLogs(child: ChildProcess, logs: LogLine[]): void {
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // Not a log line after all.
      }
    }
  });
}

export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: count fields after it.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / clockTicks;
}

export function procRssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  if (!match?.[1]) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

function waitForUrl(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(
      () => done(new Error(`server did not start in ${timeoutMs} ms: ${err || out}`)),
      timeoutMs,
    );
    const onOut = (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (match?.[1]) done(null, match[1]);
    };
    const onErr = (chunk: Buffer) => (err += chunk.toString());
    const onExit = (code: number | null) => done(new Error(`server exited (${code}) before listening: ${err || out}`));
    function done(error: Error | null, url?: string) {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      child.off('exit', onExit);
      // Keep draining the pipes so a chatty server never blocks on a full pipe.
      child.stdout?.resume();
      if (error) reject(error);
      else resolve(url ?? '');
    }
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.once('exit', onExit);
  });
}

export interface ChildServerOptions {
  /** The script, relative to the repository root. */
  script: string;
  args?: string[];
  /** On top of this process's environment. */
  env?: Record<string, string>;
  /** Flags for node itself (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
}

/**
 * Starts `node --import tsx <script>` and resolves once it prints `listening on http://…`; its CPU
 * and RSS are read from /proc, and it is stopped (SIGTERM, then SIGKILL) by its PID.
 */
export async function startChildServer(options: ChildServerOptions): Promise<ServerProcess> {
  const child = spawnTsx(options.script, options.args ?? [], {
    env: { ...process.env, ...options.env },
    nodeArgs: options.nodeArgs ?? [],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${options.script}`);
  const logs: LogLine[] = [];
  collectLogs(child, logs);
  let url: string;
  try {
    url = await waitForUrl(child, 30_000);
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  const server: ServerProcess = {
    pid,
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/trpc`,
    cpuSeconds: () => procCpuSeconds(pid),
    rssBytes: () => procRssBytes(pid),
    async connections() {
      const response = await fetch(`${url}/health`);
      const body = (await response.json()) as { connections: number };
      return body.connections;
    },
    logs,
    stop: (graceMs) => stopChild(child, graceMs),
    [Symbol.asyncDispose]: async () => void (await stopChild(child)),
  };
  return server;
}

/**
 * Starts `node --import tsx src/tools/cli.ts serve` on a free loopback port (PORT=0) with `env` on top of
 * the defaults, and resolves once it prints where it listens.
 */
export function startServerProcess(env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<ServerProcess> {
  return startChildServer({
    script: 'src/tools/cli.ts',
    args: ['serve'],
    env: { NODE_ENV: 'development', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    nodeArgs,
  });
}

/**
 * Compiles the server as `npm start` runs it (`npm run build`: dist/), once per benchmark process, so
 * that what is timed from spawn is the shipped JavaScript, not tsx compiling the sources.
 */
let built = false;
export function buildServer(): void {
  if (built) return;
  execFileSync(process.execPath, [`${repoRoot}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'], {
    cwd: repoRoot,
    stdio: 'inherit',
  });
  built = true;
}

/** `node dist/src/tools/cli.js serve` (see `buildServer`) with `env` on top of the defaults (PORT=0, loopback, warn). */
export function spawnBuiltServer(env: Record<string, string> = {}): ChildProcess {
  buildServer();
  return spawnNode(['dist/src/tools/cli.js', 'serve'], {
    env: { ...process.env, NODE_ENV: 'development', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
  });
}

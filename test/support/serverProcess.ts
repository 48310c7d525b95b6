import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { vi } from 'vitest';
import { freePort } from './redis.js';
import { watchProcess } from './sentinel.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

export interface ServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** `presenced serve` as its own process, as users run it, watched by the crash sentinel. */
export interface ServerProcess extends AsyncDisposable {
  readonly child: ChildProcessWithoutNullStreams;
  readonly port: number;
  /** `http://127.0.0.1:port` */
  readonly url: string;
  /** `ws://127.0.0.1:port/trpc` */
  readonly wsUrl: string;
  /** Everything it printed so far. */
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<ServerExit>;
  /** When it printed that it listens (and so has restored). */
  readonly readyAt: number;
  /** Resident memory now, from /proc (Linux). */
  rssBytes(): number;
  /** Sends `signal` and waits for the exit; the sentinel then expects the exit. */
  stop(signal?: NodeJS.Signals): Promise<ServerExit>;
}

export interface SpawnOptions {
  /** Wait for the `listening on` line. @default true */
  waitForListening?: boolean;
  /** @default 15000 */
  startTimeoutMs?: number;
  /** Node options for the server process, e.g. `--max-old-space-size=128`. */
  nodeArgs?: string[];
}

/**
 * Starts `presenced serve` (through tsx, on a free port unless `env.PORT` names one) with only the
 * given environment (plus PATH), and registers it with the crash sentinel: the test fails if the
 * process exits without `stop()` or prints an uncaught exception or unhandled rejection.
 */
export async function spawnServer(
  env: Record<string, string> = {},
  options: SpawnOptions = {},
): Promise<ServerProcess> {
  const port = env['PORT'] === undefined ? await freePort() : Number(env['PORT']);
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', 'src/tools/cli.ts', 'serve'], {
    cwd: root,
    env: {
      PATH: process.env['PATH'] ?? '',
      LOG_LEVEL: 'warn',
      // The test run's setting (the integration-slow-paths project sets `false`), unless `env` names one.
      PRESENCED_FAST_PATHS: process.env['PRESENCED_FAST_PATHS'] ?? 'true',
      ...env,
      PORT: String(port),
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<ServerExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const watch = watchProcess(`presenced serve (port ${port})`, child, () => stdout + stderr);
  if (options.waitForListening ?? true) {
    await vi.waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`presenced exited with ${child.exitCode}: ${stderr}`);
        if (!stdout.includes('listening on')) throw new Error('not listening yet');
      },
      { timeout: options.startTimeoutMs ?? 15_000, interval: 20 },
    );
  }
  const stop = async (signal: NodeJS.Signals = 'SIGKILL') => {
    watch.expectExit();
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/trpc`,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    readyAt: Date.now(),
    rssBytes() {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
      if (kb === undefined) throw new Error('no VmRSS');
      return Number(kb) * 1024;
    },
    stop,
    async [Symbol.asyncDispose]() {
      await stop('SIGKILL');
    },
  };
}

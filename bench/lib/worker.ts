import { spawnTsx, trackPid, untrackPid } from './children.js';

export interface WorkerOptions {
  /** Receives the worker's progress lines (`bench-log <line>` on its stderr). */
  log?: (line: string) => void;
}

/**
 * Runs `script` in a fresh `node --expose-gc --import tsx` process with one JSON argument and
 * resolves with the JSON it prints last. Killed (by PID) if it runs longer than `timeoutMs`; the
 * processes it reported starting (`bench-pid +N`, see children.ts) are killed when it exits.
 */
export function runJsonWorker<TResult>(
  script: string,
  argument: unknown,
  timeoutMs: number,
  options: WorkerOptions = {},
): Promise<TResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTsx(script, [JSON.stringify(argument)], {
      nodeArgs: ['--expose-gc'],
      env: { ...process.env, BENCH_REPORT_PIDS: '1' },
    });
    let out = '';
    let err = '';
    let partial = '';
    const pids = new Set<number>();
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const pid = /^bench-pid ([+-])(\d+)$/.exec(line);
        if (pid) {
          const id = Number(pid[2]);
          if (pid[1] === '+') {
            pids.add(id);
            trackPid(id);
          } else {
            pids.delete(id);
            untrackPid(id);
          }
        } else if (line.startsWith('bench-log ')) options.log?.(line.slice('bench-log '.length));
        else err += `${line}\n`;
      }
    });
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      err += partial;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
        untrackPid(pid);
      }
      const last = out.trim().split('\n').at(-1) ?? '';
      if (code !== 0) {
        const why = signal
          ? `killed by ${signal}${signal === 'SIGKILL' ? ` after ${timeoutMs} ms` : ''}`
          : `exit ${code}`;
        return reject(new Error(`${script} failed (${why}): ${err.trim().slice(-500)}`));
      }
      try {
        resolve(JSON.parse(last) as TResult);
      } catch {
        reject(new Error(`${script} printed no JSON result: ${last.slice(0, 200)}`));
      }
    });
  });
}

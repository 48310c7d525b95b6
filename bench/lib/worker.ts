import { spawnTsx } from './children.js';

/**
 * Runs `script` in a fresh `node --expose-gc --import tsx` process with one JSON argument and
 * resolves with the JSON it prints last. Killed (by PID) if it runs longer than `timeoutMs`.
 */
export function runJsonWorker<TResult>(script: string, argument: unknown, timeoutMs: number): Promise<TResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTsx(script, [JSON.stringify(argument)], { nodeArgs: ['--expose-gc'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
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

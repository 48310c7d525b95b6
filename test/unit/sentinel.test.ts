import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { takeCrashes, watchProcess } from '../support/sentinel.js';

/** A child process that does what a crashing server does, watched as `spawnServer` watches one. */
async function run(script: string, options: { expectExit: boolean }) {
  const child = spawn(process.execPath, ['-e', script]);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const watch = watchProcess('child', child, () => output);
  if (options.expectExit) watch.expectExit();
  await new Promise((resolve) => child.once('close', resolve));
}

describe('crash sentinel', () => {
  it('reports a child process that died of an uncaught exception', async () => {
    await run('setTimeout(() => { throw new Error("boom") }, 1)', { expectExit: false });
    const crashes = takeCrashes();
    expect(crashes.join('\n')).toContain('boom');
    expect(crashes.some((c) => c.includes('exited unexpectedly'))).toBe(true);
  });

  it('reports an unhandled rejection printed by a process that was stopped on purpose', async () => {
    await run('Promise.reject(new Error("lost"))', { expectExit: true });
    expect(takeCrashes().join('\n')).toContain('lost');
  });

  it('stays quiet for a process that exits cleanly when told to', async () => {
    await run('console.log("bye")', { expectExit: true });
    expect(takeCrashes()).toEqual([]);
  });
});

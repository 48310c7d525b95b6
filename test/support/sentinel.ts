import type { ChildProcess } from 'node:child_process';

/**
 * The crash sentinel. A server under test must never crash: not in this process (`startServer`),
 * where an uncaught exception or unhandled rejection is recorded here, and not as a child process
 * (`spawnServer`), which must not exit unless the test stopped it and must never print an uncaught
 * exception or unhandled rejection. `test/support/sentinelHooks.ts` checks after every test of the
 * integration and model projects.
 */

/**
 * What a process prints when it dies of an uncaught exception or unhandled rejection (Node ends the
 * report with its version line), and pino's `fatal` level.
 */
export const CRASH_PATTERN = /^Node\.js v\d+\.\d+\.\d+$|uncaughtException|unhandledRejection|"level":60/m;

interface Watched {
  name: string;
  child: ChildProcess;
  output: () => string;
  expected: boolean;
}

const crashes: string[] = [];
const watched = new Set<Watched>();

/** Called once per test process by the hooks file. */
export function installSentinel(): void {
  process.on('uncaughtExceptionMonitor', (error) => crashes.push(`uncaught exception: ${describe(error)}`));
  process.on('unhandledRejection', (reason) => crashes.push(`unhandled rejection: ${describe(reason)}`));
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

/** Watches a child process; `expectExit()` before stopping it on purpose. */
export function watchProcess(name: string, child: ChildProcess, output: () => string): { expectExit(): void } {
  const entry: Watched = { name, child, output, expected: false };
  watched.add(entry);
  return {
    expectExit() {
      entry.expected = true;
    },
  };
}

/** Every crash seen since the last call (and forgets the processes that are gone). */
export function takeCrashes(): string[] {
  const found = crashes.splice(0);
  for (const entry of watched) {
    const output = entry.output();
    if (CRASH_PATTERN.test(output)) found.push(`${entry.name} printed a crash:\n${output.slice(-4000)}`);
    const gone = entry.child.exitCode !== null || entry.child.signalCode !== null;
    if (gone && !entry.expected) {
      found.push(`${entry.name} exited unexpectedly (${entry.child.exitCode ?? entry.child.signalCode}):\n${output}`);
    }
    if (gone || entry.expected) watched.delete(entry);
  }
  return found;
}

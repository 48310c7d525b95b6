import type { ChildProcess } from 'node:child_process';
import { spawnTsx, stopChild, type ChildExit } from './children.js';

/**
 * A benchmark helper process (`node --import tsx <script> '<JSON argument>'`) with an IPC channel:
 * clients that must not share the benchmark's event loop or heap. Tracked and killed by PID like
 * every child; the scripts exit by themselves when the channel closes (their parent went away).
 */
export interface IpcChild {
  readonly child: ChildProcess;
  send(message: unknown): void;
  /** The next message that `match` accepts (messages that arrived before the call do not count). */
  waitFor<TMessage>(match: (message: unknown) => message is TMessage, timeoutMs: number): Promise<TMessage>;
  /** SIGTERM, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<ChildExit>;
}

export function spawnIpcChild(script: string, argument: unknown): IpcChild {
  const child = spawnTsx(script, [JSON.stringify(argument)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let stderr = '';
  child.stdout?.resume();
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2_000)));
  const waiters = new Set<{
    match: (message: unknown) => boolean;
    settle: (error: Error | null, message?: unknown) => void;
  }>();
  child.on('message', (message: unknown) => {
    for (const waiter of waiters) if (waiter.match(message)) waiter.settle(null, message);
  });
  child.once('exit', (code, signal) => {
    for (const waiter of waiters) waiter.settle(new Error(`${script} exited (${code ?? signal}): ${stderr.trim()}`));
  });
  return {
    child,
    send(message) {
      if (child.connected) child.send(message as object);
    },
    waitFor<TMessage>(match: (message: unknown) => message is TMessage, timeoutMs: number) {
      return new Promise<TMessage>((resolve, reject) => {
        const waiter = {
          match,
          settle(error: Error | null, message?: unknown) {
            clearTimeout(timer);
            waiters.delete(waiter);
            if (error) reject(error);
            else resolve(message as TMessage);
          },
        };
        const timer = setTimeout(
          () => waiter.settle(new Error(`${script}: no expected message in ${timeoutMs} ms`)),
          timeoutMs,
        );
        if (child.exitCode !== null || child.signalCode !== null)
          waiter.settle(new Error(`${script} has exited: ${stderr.trim()}`));
        else waiters.add(waiter);
      });
    },
    stop: (graceMs = 2_000) => stopChild(child, graceMs),
  };
}

/** For the scripts: sends a message and resolves once it is handed to the channel. */
export function sendToParent(message: unknown): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/** A type guard for `{ type }` messages. */
export const ofType =
  <TMessage extends { type: string }>(type: TMessage['type']) =>
  (message: unknown): message is TMessage =>
    typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;

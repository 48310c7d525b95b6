import type { RawSession } from './rawSession.js';

/** Heartbeats so far; read twice and subtract for a window. */
export interface HeartbeatCounts {
  sent: number;
  answered: number;
  errors: number;
}

export interface Paced {
  readonly counts: HeartbeatCounts;
  /** Stops sending and resolves once every heartbeat in flight is answered or failed. */
  stop(): Promise<void>;
}

/**
 * Each session sends `session.heartbeat` every `intervalMs`, like the typed client at the server's
 * `heartbeatMs`, from a random phase so the load is spread evenly over the interval. Open loop: the
 * next heartbeat goes out on time whether or not the previous one was answered.
 */
export function startPaced(sessions: readonly RawSession[], intervalMs: number): Paced {
  const counts: HeartbeatCounts = { sent: 0, answered: 0, errors: 0 };
  const inFlight = new Set<Promise<void>>();
  const timers: NodeJS.Timeout[] = [];
  let stopped = false;
  const beat = (session: RawSession) => {
    if (stopped) return;
    counts.sent++;
    const call: Promise<void> = session.heartbeat().then(
      () => void counts.answered++,
      () => void counts.errors++,
    );
    inFlight.add(call);
    void call.finally(() => inFlight.delete(call));
  };
  for (const session of sessions) {
    const first = setTimeout(() => {
      beat(session);
      timers.push(setInterval(() => beat(session), intervalMs));
    }, Math.random() * intervalMs);
    timers.push(first);
  }
  return {
    counts,
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      await Promise.allSettled([...inFlight]);
    },
  };
}

/** Every session heartbeats back to back (next call when the previous is answered) for `ms`. */
export async function closedLoop(sessions: readonly RawSession[], ms: number): Promise<HeartbeatCounts> {
  const counts: HeartbeatCounts = { sent: 0, answered: 0, errors: 0 };
  const until = performance.now() + ms;
  await Promise.all(
    sessions.map(async (session) => {
      while (performance.now() < until) {
        counts.sent++;
        try {
          await session.heartbeat();
          counts.answered++;
        } catch {
          counts.errors++;
          if (!session.open) return;
        }
      }
    }),
  );
  return counts;
}

export const countsDelta = (before: HeartbeatCounts, after: HeartbeatCounts): HeartbeatCounts => ({
  sent: after.sent - before.sent,
  answered: after.answered - before.answered,
  errors: after.errors - before.errors,
});

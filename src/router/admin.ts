import { PresenceError } from '../errors.js';
import { input, type AdminStats, type HistoryEntry } from '../protocol.js';
import type { HistoryRecord, PresenceStore } from '../store/types.js';
import type { Services } from '../services.js';
import { adminProcedure, router, subscriptionSlot } from './trpc.js';

type HistoryQuery = Parameters<PresenceStore['history']>[0];

/** `admin.watch` sends at most this often. */
const WATCH_INTERVAL_MS = 100;

function stats(services: Services): AdminStats {
  return { nodeId: services.config.nodeId, ...services.presence.stats(), nodes: [services.config.nodeId] };
}

/** Resolves when `presence` reports a change or `signal` aborts. */
function nextChange(services: Services, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      off();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const off = services.presence.onStats(done);
    signal.addEventListener('abort', done);
  });
}

/**
 * The store's history. While the store is unreachable that is UNAVAILABLE, to be retried, and not
 * its client's error (the store logs the outage itself); any other failure is unexpected, and is
 * logged and answered as such.
 */
async function storedHistory(store: PresenceStore, query: HistoryQuery): Promise<HistoryRecord[]> {
  try {
    return await store.history(query);
  } catch (error) {
    if (store.status() === 'down')
      throw new PresenceError('UNAVAILABLE', 'history is unavailable while the store is unreachable; try again later');
    throw error;
  }
}

export const adminRouter = router({
  stats: adminProcedure.query(({ ctx }) => stats(ctx.services)),

  connections: adminProcedure
    .input(input.connectionsQuery)
    .query(({ ctx, input }) =>
      ctx.services.connections.list({ userId: input?.userId, gameId: input?.gameId, limit: input?.limit ?? 100 }),
    ),

  // Answered once the end is stored: a crash right after this reply cannot bring the session back.
  kick: adminProcedure.input(input.kick).mutation(async ({ ctx, input }) => {
    const { connections } = ctx.services;
    const kicked = connections.kick(input.connectionId);
    await connections.whenEnded(input.connectionId);
    return { kicked };
  }),

  history: adminProcedure.input(input.history).query(async ({ ctx, input }): Promise<HistoryEntry[]> => {
    const records = await storedHistory(ctx.services.store, { userId: input?.userId, limit: input?.limit ?? 100 });
    return records.map((r) => ({ ...r, connectedAt: new Date(r.connectedAt), endedAt: new Date(r.endedAt) }));
  }),

  watch: adminProcedure.use(subscriptionSlot).subscription(async function* ({ ctx, signal }) {
    const abort = signal ?? new AbortController().signal;
    let last = stats(ctx.services);
    yield last;
    while (!abort.aborted) {
      await nextChange(ctx.services, abort);
      // Coalesce bursts: wait out the interval, then send the value as it is by then.
      await new Promise((resolve) => setTimeout(resolve, WATCH_INTERVAL_MS));
      if (abort.aborted) return;
      const current = stats(ctx.services);
      if (JSON.stringify(current) === JSON.stringify(last)) continue;
      last = current;
      yield current;
    }
  }),
});

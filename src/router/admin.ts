import { PresenceError } from '../errors.js';
import { input, type HistoryEntry } from '../protocol.js';
import type { HistoryRecord, PresenceStore } from '../store/types.js';
import { adminProcedure, router, subscriptionSlot } from './trpc.js';

type HistoryQuery = Parameters<PresenceStore['history']>[0];

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
  stats: adminProcedure.query(({ ctx }) => ctx.services.feeds.statsNow()),

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

  // The value now, then whenever it changes, at most once per 100 ms.
  watch: adminProcedure.use(subscriptionSlot).subscription(({ ctx, signal }) => ctx.services.feeds.adminStats(signal)),
});

import type { ConnectionHandle } from '../connections/registry.js';
import { input, type HeartbeatResult } from '../protocol.js';
import { router, sessionProcedure, subscriptionSlot, type Services } from './trpc.js';

/** What `session.heartbeat` answers, once the call has been counted as activity. */
export function heartbeatResult(services: Services, session: ConnectionHandle): HeartbeatResult {
  return {
    serverTime: new Date(services.clock.now()),
    state: session.sessionState,
    staleAt: new Date(session.context.staleAt),
  };
}

export const sessionRouter = router({
  info: sessionProcedure.query(({ ctx }) => ctx.services.connections.info(ctx.session)),

  // The typed contract of the hot path. Well-formed heartbeats of a live session are answered before
  // tRPC, byte for byte as here (src/wire/heartbeatFastPath.ts); this procedure answers the rest, errors
  // included. The `authed` middleware already sent the activity to the actor.
  heartbeat: sessionProcedure.input(input.heartbeat).mutation(({ ctx }) => heartbeatResult(ctx.services, ctx.session)),

  // Answered once the end is stored: a crash right after this reply cannot bring the session back.
  leave: sessionProcedure.mutation(async ({ ctx }) => {
    const { connections } = ctx.services;
    connections.end(ctx.session, 'left');
    await connections.whenEnded(ctx.session.connectionId);
    return { ok: true as const };
  }),

  // Ends after the session's last event (`expired`): its topic closes when the session ends.
  events: sessionProcedure
    .use(subscriptionSlot)
    .subscription(({ ctx, signal }) => ctx.services.feeds.session(ctx.session.connectionId, signal)),
});

import { input } from '../protocol.js';
import { heartbeatResult } from '../services.js';
import { router, sessionProcedure, subscriptionSlot } from './trpc.js';

export const sessionRouter = router({
  info: sessionProcedure.query(({ ctx }) => ctx.services.connections.info(ctx.session)),

  // The typed contract of the hot path. With fast paths on, the wire answers well-formed heartbeats of
  // a live session before any procedure call, byte for byte as here; this procedure answers the rest,
  // errors included. The `authed` middleware already sent the activity to the actor.
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

import { on } from 'node:events';
import { input, type HeartbeatResult, type SessionEvent } from '../protocol.js';
import { router, sessionProcedure } from './trpc.js';

export const sessionRouter = router({
  info: sessionProcedure.query(({ ctx }) => ctx.services.connections.info(ctx.session)),

  // The hot path: the `authed` middleware already sent the activity to the actor.
  heartbeat: sessionProcedure.input(input.heartbeat).mutation(({ ctx }): HeartbeatResult => ({
    serverTime: new Date(ctx.services.clock.now()),
    state: ctx.session.sessionState,
    staleAt: new Date(ctx.session.context.staleAt),
  })),

  leave: sessionProcedure.mutation(({ ctx }) => {
    ctx.services.connections.end(ctx.session, 'left');
    return { ok: true as const };
  }),

  events: sessionProcedure.subscription(async function* ({ ctx, signal }) {
    const events = on(ctx.session.events, 'event', { signal }) as AsyncIterable<[SessionEvent]>;
    for await (const [event] of events) {
      yield event;
      if (event.type === 'expired') return;
    }
  }),
});

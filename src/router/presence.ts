import { tracked } from '@trpc/server';
import { input, type Member } from '../protocol.js';
import { router, sessionProcedure, subscriptionSlot } from './trpc.js';

export const presenceRouter = router({
  // Every subscriber of the game gets the same event object (never changed once emitted), in a stream
  // the wire may redirect (src/streams.ts): it can then serialise each event once for all of them.
  game: sessionProcedure
    .use(subscriptionSlot)
    .input(input.presenceGame)
    .subscription(({ ctx, input, signal }) =>
      ctx.services.feeds.game(input.gameId, {
        lastEventId: input.lastEventId,
        signal,
        wrap: ({ id, data }) => tracked(id, data),
      }),
    ),

  user: sessionProcedure
    .use(subscriptionSlot)
    .input(input.user)
    .subscription(({ ctx, input, signal }) => ctx.services.feeds.user(input.userId, signal)),

  isOnline: sessionProcedure
    .input(input.user)
    .query(({ ctx, input }) => ctx.services.presence.user(input.userId).status === 'online'),

  members: sessionProcedure.input(input.game).query(({ ctx, input }) => ctx.services.presence.members(input.gameId)),

  opponent: sessionProcedure
    .input(input.game)
    .query(
      ({ ctx, input }): Member | null =>
        ctx.services.presence.members(input.gameId).find((member) => member.userId !== ctx.session.userId) ?? null,
    ),
});

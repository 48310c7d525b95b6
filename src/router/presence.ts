import { tracked } from '@trpc/server';
import { input, type Member } from '../protocol.js';
import { writeDirectlyAfterFirst } from '../wire/directEvents.js';
import { requestOf, shareable } from '../wire/encoding.js';
import { router, sessionProcedure, subscriptionSlot } from './trpc.js';

export const presenceRouter = router({
  // Every subscriber of the game gets the same event object, serialised once for all of them. The
  // `sync` (or the replay) goes out through tRPC, after its `started`; once tRPC asks for the next
  // value, it has sent those, and the later events are written straight to the socket, in order,
  // as they happen, instead of each making its way through tRPC's loop (src/wire/directEvents.ts).
  game: sessionProcedure
    .use(subscriptionSlot)
    .use(async ({ getRawInput, next }) => next({ ctx: { request: requestOf(await getRawInput()) } }))
    .input(input.presenceGame)
    .subscription(({ ctx, input, signal }) => {
      const events = ctx.services.feeds.game(input.gameId, {
        lastEventId: input.lastEventId,
        signal: signal,
        wrap: ({ id, data }) => tracked(id, shareable(data)),
      });
      return ctx.request ? writeDirectlyAfterFirst(events, ctx.socket, ctx.request) : events;
    }),

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

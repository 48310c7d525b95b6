import { tracked } from '@trpc/server';
import { input, type Member } from '../protocol.js';
import { shareable } from '../sharedEncoding.js';
import { router, sessionProcedure } from './trpc.js';

export const presenceRouter = router({
  // Every subscriber of the game gets the same event object: serialised once for all of them.
  game: sessionProcedure
    .input(input.presenceGame)
    .subscription(({ ctx, input, signal }) =>
      ctx.services.presence.subscribeGame(
        input.gameId,
        input.lastEventId,
        signal ?? new AbortController().signal,
        ({ id, event }) => tracked(id, shareable(event)),
      ),
    ),

  user: sessionProcedure.input(input.user).subscription(async function* ({ ctx, input, signal }) {
    yield* ctx.services.presence.subscribeUser(input.userId, signal ?? new AbortController().signal);
  }),

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

import { input } from '../protocol.js';
import { router, sessionProcedure } from './trpc.js';

export const gameRouter = router({
  join: sessionProcedure.input(input.game).mutation(({ ctx, input }) => ({
    gameId: input.gameId,
    members: ctx.services.connections.join(ctx.session, input.gameId),
  })),

  leave: sessionProcedure.mutation(({ ctx }) => ({
    gameId: ctx.services.connections.leaveGame(ctx.session),
  })),
});

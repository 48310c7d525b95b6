import { adminRouter } from './admin.js';
import { gameRouter } from './game.js';
import { presenceRouter } from './presence.js';
import { sessionRouter } from './session.js';
import { router } from './trpc.js';

export const appRouter = router({
  session: sessionRouter,
  game: gameRouter,
  presence: presenceRouter,
  admin: adminRouter,
});

/** The type typed clients are built on: `createTRPCClient<AppRouter>`. */
export type AppRouter = typeof appRouter;

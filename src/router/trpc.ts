import { initTRPC } from '@trpc/server';
import type { Clock } from '../clock.js';
import type { ResolvedConfig } from '../config.js';
import type { ConnectionHandle, Connections } from '../connections.js';
import { clientMessage, PresenceError, toTRPCError } from '../errors.js';
import type { PresenceIndex } from '../presence.js';
import type { RateLimiter } from '../rateLimit.js';
import { sharingTransformer } from '../sharedEncoding.js';
import type { PresenceStore } from '../store/types.js';

/** What every procedure can reach. One per server, shared by every socket. */
export interface Services {
  config: ResolvedConfig;
  connections: Connections;
  presence: PresenceIndex;
  store: PresenceStore;
  clock: Clock;
}

/** Per socket: created once by `createContext` when the socket authenticates (or fails to). */
export interface Context {
  services: Services;
  /** `null` when the connection was refused; `refusal` says why. */
  session: ConnectionHandle | null;
  refusal: PresenceError | null;
  limiter: RateLimiter;
  /** This context's socket, for frames written to it directly (presence events). */
  socket: ContextSocket;
  /** Called once a refused socket's call has been answered: the transport closes it then. */
  onRefused(): void;
}

/** The part of a socket that frames are written to. */
export interface ContextSocket {
  readonly readyState: number;
  send(data: string): void;
}

// `isDev: false`: stack traces go to the logs, never to clients, and so does the text of anything
// unexpected (`clientMessage`). The transformer is superjson, with presence events serialised once
// for all their subscribers (src/sharedEncoding.ts).
const t = initTRPC.context<Context>().create({
  transformer: sharingTransformer,
  isDev: false,
  errorFormatter: ({ shape, error }) => ({ ...shape, message: clientMessage(error) }),
});

export const router = t.router;

/** Our errors become tRPC errors here and nowhere else. */
const errors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof PresenceError) throw toTRPCError(result.error.cause);
  return result;
});

const rateLimited = t.middleware(({ ctx, next }) => {
  if (!ctx.limiter.take()) {
    throw new PresenceError('TOO_MANY_REQUESTS', `more than ${ctx.services.config.rateLimit} calls per second`);
  }
  return next();
});

/** Every call is activity: it refreshes `lastSeen` and brings a stale connection back. */
const authed = t.middleware(({ ctx, next }) => {
  if (!ctx.session) {
    ctx.onRefused();
    throw ctx.refusal ?? new PresenceError('UNAUTHORIZED', 'not authenticated');
  }
  ctx.services.connections.touch(ctx.session);
  return next({ ctx: { session: ctx.session } });
});

const adminOnly = t.middleware(({ ctx, next }) => {
  if (ctx.session?.role !== 'admin') throw new PresenceError('FORBIDDEN', 'admin role required');
  return next();
});

export const publicProcedure = t.procedure.use(errors).use(rateLimited);
export const sessionProcedure = publicProcedure.use(authed);
export const adminProcedure = sessionProcedure.use(adminOnly);

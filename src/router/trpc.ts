import { initTRPC } from '@trpc/server';
import { clientMessage, PresenceError, toTRPCError } from '../errors.js';
import type { Context } from '../services.js';
import { isDirectStream } from '../streams.js';
import { transformer } from '../transformer.js';

// `isDev: false`: stack traces go to the logs, never to clients, and so does the text of anything
// unexpected (`clientMessage`). The transformer is superjson, with inputs read defensively.
const t = initTRPC.context<Context>().create({
  transformer,
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

/**
 * `data` (a subscription's async iterable) that calls `release` once when it ends: done, failed, or
 * stopped (`return()`, on `subscription.stop`, on close, on error). A stream that can be redirected
 * (src/streams.ts) stays one: whoever serves it may take its events without `next()`.
 */
function releasing(data: unknown, release: () => void): unknown {
  if (typeof data !== 'object' || data === null || !(Symbol.asyncIterator in data)) {
    release();
    return data;
  }
  const source = (data as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  let held = true;
  const once = () => {
    if (!held) return;
    held = false;
    release();
  };
  const iterator: AsyncIterableIterator<unknown> & { redirect?: (write: (value: unknown) => void) => void } = {
    next: () =>
      source.next().then(
        (result) => {
          if (result.done) once();
          return result;
        },
        (error: unknown) => {
          once();
          throw error;
        },
      ),
    return: (value?: unknown) => {
      once();
      return source.return ? source.return(value) : Promise.resolve({ done: true, value });
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  if (isDirectStream(source)) iterator.redirect = (write) => source.redirect(write);
  return iterator;
}

/**
 * Every open subscription holds one of its connection's `maxSubscriptions` slots until it ends.
 * Without a cap, 20,000 `presence.game` subscriptions on one socket grew the server by 250 MB.
 */
export const subscriptionSlot = t.middleware(async ({ ctx, next }) => {
  const { maxSubscriptions } = ctx.services.config;
  if (ctx.subscriptions.open >= maxSubscriptions) {
    throw new PresenceError('TOO_MANY_REQUESTS', `at most ${maxSubscriptions} subscriptions per connection`);
  }
  ctx.subscriptions.open++;
  const release = () => void ctx.subscriptions.open--;
  const result = await next();
  if (!result.ok) {
    release();
    return result;
  }
  return { ...result, data: releasing(result.data, release) };
});

export const publicProcedure = t.procedure.use(errors).use(rateLimited);
export const sessionProcedure = publicProcedure.use(authed);
export const adminProcedure = sessionProcedure.use(adminOnly);

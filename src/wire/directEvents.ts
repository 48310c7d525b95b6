import type { TrackedEnvelope } from '@trpc/server';
import { WebSocket } from 'ws';
import type { ContextSocket } from '../router/trpc.js';
import { subscriptionFrame, type SubscriptionRequest } from './encoding.js';

/** A subscription's events that can be handed over as they happen instead of through `next()`. */
interface RedirectableEvents<T> extends AsyncIterableIterator<T> {
  redirect(write: (value: T) => void): void;
}

/**
 * A subscription's events after the first, written straight to its socket.
 *
 * Through tRPC, every event of every subscriber passes its loop: a promise race, three object
 * spreads to transform the reply, the encoder, several promise hops. With 200 members that made a
 * join reach the last of them later than a Socket.IO room broadcast (bench/results/peers-fixes.md).
 * tRPC still starts the subscription, sends `started` and the first value, stops it on
 * `subscription.stop`, on close or on error, and sends `stopped`; from its second `next()` on (the
 * first value has been sent by then) the values it would have sent go out here instead, the same
 * bytes tRPC writes (a test compares them), and that `next()` resolves only at the end.
 */
export function writeDirectlyAfterFirst<TData extends object>(
  events: RedirectableEvents<TrackedEnvelope<TData>>,
  socket: ContextSocket,
  request: SubscriptionRequest,
): AsyncIterableIterator<TrackedEnvelope<TData>> {
  let first = true;
  const write = ([id, data]: TrackedEnvelope<TData>) => {
    // As tRPC's `respond`: nothing is written to a socket that is closing.
    if (socket.readyState === WebSocket.OPEN) socket.send(subscriptionFrame(request, id, data));
  };
  const iterator: AsyncIterableIterator<TrackedEnvelope<TData>> = {
    next() {
      if (first) first = false;
      else events.redirect(write);
      return events.next();
    },
    return: () => events.return?.() ?? Promise.resolve({ done: true, value: undefined }),
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

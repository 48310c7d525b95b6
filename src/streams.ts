/**
 * A subscription's event stream that can hand its events to a writer instead of `next()`. A
 * procedure returns one as its async iterator; whoever serves the subscription decides whether to
 * read it with `next()` (plain tRPC) or to take the events as they are pushed (`redirect`), which
 * saves each event the trip through an iteration loop per subscriber.
 */
export interface DirectStream<T> extends AsyncIterableIterator<T> {
  /**
   * From now on every value goes to `write` as it is pushed (queued ones first, synchronously)
   * instead of to `next()`, which stays pending until the stream ends and then resolves done.
   */
  redirect(write: (value: T) => void): void;
}

/** Whether `value` is an async iterator that can be redirected. */
export function isDirectStream(value: unknown): value is DirectStream<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    Symbol.asyncIterator in value &&
    typeof (value as { redirect?: unknown }).redirect === 'function' &&
    typeof (value as { next?: unknown }).next === 'function'
  );
}

import type { DirectStream } from '../streams.js';

/**
 * An async iterator fed by `push`: what a subscription hands tRPC. Every presence event reaches each
 * subscriber of its game, so the hops between `emit` and tRPC's send are paid per subscriber:
 * `events.on()` read by an async generator re-yielded by another took several promise hops per value
 * where this takes one (a waiting `next()` is resolved by `push`) or none (queued values).
 */
export interface PushIterator<T> extends DirectStream<T> {
  push(value: T): void;
  /** No more values: a waiting `next()` and every later one resolve done; `onEnd` runs once. */
  end(): void;
  /** The consumer is done: `end()`. */
  return(): Promise<IteratorResult<T>>;
}

/** One `next()` at a time, as tRPC and `for await` call it. */
export function createPushIterator<T>(onEnd: () => void): PushIterator<T> {
  const queue: T[] = [];
  let waiting: ((result: IteratorResult<T>) => void) | null = null;
  let writer: ((value: T) => void) | null = null;
  let ended = false;
  const done: IteratorReturnResult<undefined> = { done: true, value: undefined };

  const iterator: PushIterator<T> = {
    push(value) {
      if (ended) return;
      if (writer) writer(value);
      else if (waiting) {
        const resolve = waiting;
        waiting = null;
        resolve({ done: false, value });
      } else queue.push(value);
    },
    redirect(write) {
      writer = write;
      for (const value of queue.splice(0)) write(value);
    },
    end() {
      if (ended) return;
      ended = true;
      queue.length = 0;
      waiting?.(done);
      waiting = null;
      onEnd();
    },
    next() {
      if (queue.length > 0) return Promise.resolve({ done: false, value: queue.shift() as T });
      if (ended) return Promise.resolve(done);
      return new Promise((resolve) => (waiting = resolve));
    },
    return() {
      iterator.end();
      return Promise.resolve(done);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

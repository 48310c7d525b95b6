import { describe, expect, it } from 'vitest';
import { createPushIterator } from '../../src/presence/pushIterator.js';

describe('push iterator', () => {
  it('hands values to next() in order, queued or awaited', async () => {
    const events = createPushIterator<number>(() => undefined);
    events.push(1);
    events.push(2);
    expect(await events.next()).toEqual({ done: false, value: 1 });
    expect(await events.next()).toEqual({ done: false, value: 2 });
    const waiting = events.next();
    events.push(3);
    expect(await waiting).toEqual({ done: false, value: 3 });
  });

  it('redirected, writes queued values and then every push, and next() waits for the end', async () => {
    const written: number[] = [];
    let ended = 0;
    const events = createPushIterator<number>(() => ended++);
    events.push(1);
    events.push(2);
    events.redirect((value) => written.push(value));
    events.push(3);
    expect(written).toEqual([1, 2, 3]);
    const last = events.next();
    events.end();
    expect(await last).toEqual({ done: true, value: undefined });
    events.push(4);
    events.end();
    expect(written).toEqual([1, 2, 3]);
    expect(ended).toBe(1);
  });

  it('return() ends it: queued values are dropped and onEnd runs once', async () => {
    let ended = 0;
    const events = createPushIterator<string>(() => ended++);
    events.push('a');
    expect(await events.return()).toEqual({ done: true, value: undefined });
    expect(await events.next()).toEqual({ done: true, value: undefined });
    await events.return();
    expect(ended).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { Topics, type TopicName } from '../../src/presence/feeds.js';
import { LocalBus, type TopicEvent } from '../../src/presence/topic.js';

const name = 'test:a' as TopicName<number>;
const dataOf = (event: TopicEvent<number>) => event.data;
const live = () => new AbortController().signal;

describe('topic', () => {
  it('hands events to next() in order, queued or awaited', async () => {
    const topics = new Topics(new LocalBus(0));
    const events = topics.hold(name).subscribe({ signal: live(), wrap: dataOf });
    topics.publish(name, 1);
    topics.publish(name, 2);
    expect(await events.next()).toEqual({ done: false, value: 1 });
    expect(await events.next()).toEqual({ done: false, value: 2 });
    const waiting = events.next();
    topics.publish(name, 3);
    expect(await waiting).toEqual({ done: false, value: 3 });
  });

  it('ids increase as strings across a restart of the process (a later epoch)', () => {
    const ids: string[] = [];
    for (const startedAt of [1_000, 2_000]) {
      const topics = new Topics(new LocalBus(startedAt));
      topics.hold(name).subscribe({ signal: live(), wrap: (event) => ids.push(event.id) });
      for (let i = 0; i < 11; i++) topics.publish(name, i);
    }
    expect(ids).toHaveLength(22);
    expect([...ids].sort()).toEqual(ids);
  });

  it('redirected, writes queued values and then every event, and next() waits for the end', async () => {
    const topics = new Topics(new LocalBus(0));
    const written: number[] = [];
    const events = topics.hold(name).subscribe({ signal: live(), wrap: dataOf });
    topics.publish(name, 1);
    events.redirect((value) => written.push(value));
    topics.publish(name, 2);
    const end = events.next();
    topics.publish(name, 3);
    expect(written).toEqual([1, 2, 3]);
    topics.release(name);
    expect(await end).toEqual({ done: true, value: undefined });
  });

  it('replays what followed lastEventId while it is retained, and starts with `first` otherwise', async () => {
    const topics = new Topics(new LocalBus(0));
    const topic = topics.hold(name, { retain: 3 });
    const ids: string[] = [];
    topic.subscribe({ signal: live(), wrap: (event) => ids.push(event.id) });
    for (let i = 1; i <= 5; i++) topics.publish(name, i);

    const replayed = topic.subscribe({ lastEventId: ids[2], signal: live(), wrap: dataOf, first: () => 0 });
    expect([await replayed.next(), await replayed.next()].map((r) => r.value)).toEqual([4, 5]);

    // Event 1 is no longer retained (3 are): a fresh start, whose id is the newest retained one.
    const fresh = topic.subscribe({ lastEventId: ids[0], signal: live(), wrap: (e) => e, first: () => 0 });
    expect((await fresh.next()).value).toEqual({ id: ids[4], data: 0 });
  });

  it('a subscription whose signal aborts ends and leaves; the topic goes with its last subscriber', async () => {
    const topics = new Topics(new LocalBus(0));
    const controller = new AbortController();
    const events = topics.hold(name).subscribe({ signal: controller.signal, wrap: dataOf });
    const waiting = events.next();
    expect(topics.size).toBe(1);
    controller.abort();
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(topics.size).toBe(0);
  });

  it('released, a subscription still hands out what it had queued, then ends', async () => {
    const topics = new Topics(new LocalBus(0));
    const events = topics.hold(name).subscribe({ signal: live(), wrap: dataOf });
    topics.publish(name, 7);
    topics.release(name);
    expect(await events.next()).toEqual({ done: false, value: 7 });
    expect(await events.next()).toEqual({ done: true, value: undefined });
  });

  it('return() ends at once, dropping what was queued, and is idempotent', async () => {
    const topics = new Topics(new LocalBus(0));
    const events = topics.hold(name).subscribe({ signal: live(), wrap: dataOf });
    topics.publish(name, 1);
    await events.return();
    await events.return();
    expect(await events.next()).toEqual({ done: true, value: undefined });
    expect(topics.size).toBe(0);
  });

  it('publishing to a topic nobody holds delivers nothing and keeps nothing', () => {
    const topics = new Topics(new LocalBus(0));
    topics.publish(name, 1);
    expect(topics.size).toBe(0);
  });
});

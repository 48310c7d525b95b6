import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { Feeds, Topics } from '../../src/presence/feeds.js';
import { PresenceIndex, type ConnectionView } from '../../src/presence/presenceIndex.js';
import { LocalBus, type TopicEvent } from '../../src/presence/topic.js';

const clock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};

function setup() {
  const topics = new Topics(new LocalBus(0));
  const presence = new PresenceIndex({ topics, retain: 4 });
  const feeds = new Feeds({
    topics,
    presence,
    clock,
    stats: () => ({ nodeId: 'n', ...presence.stats(), nodes: ['n'] }),
  });
  return { topics, presence, feeds };
}

const view = (connectionId: string, gameId: string | null, state: ConnectionView['state'] = 'inGame') => ({
  connectionId,
  userId: `user-${connectionId}`,
  state,
  gameId,
  joinedAt: 1,
  lastSeen: () => 1,
});

const live = () => new AbortController().signal;
const whole = <T>(event: TopicEvent<T>) => event;

afterEach(() => vi.useRealTimers());

describe('feeds: every stream is a topic', () => {
  it('a game topic is held while the game has members or subscribers, with its retained events', async () => {
    const { topics, presence, feeds } = setup();
    presence.update(view('c1', 'g'));
    expect(topics.size).toBe(1);
    const controller = new AbortController();
    const events = feeds.game('g', { signal: controller.signal, wrap: whole });
    expect((await events.next()).value?.data).toMatchObject({ type: 'sync', members: [{ connectionId: 'c1' }] });
    presence.remove('c1', 'left');
    expect((await events.next()).value?.data).toMatchObject({ type: 'leave', reason: 'left' });
    // No member left, one subscriber: still held.
    expect(topics.size).toBe(1);
    controller.abort();
    expect(topics.size).toBe(0);
  });

  it('a re-subscriber to a game gets exactly what it missed, in order', async () => {
    const { presence, feeds } = setup();
    presence.update(view('c1', 'g'));
    const first = feeds.game('g', { signal: live(), wrap: whole });
    const sync = (await first.next()).value;
    presence.update(view('c2', 'g'));
    presence.update(view('c2', 'g', 'stale'));
    const again = feeds.game('g', { lastEventId: sync?.id, signal: live(), wrap: whole });
    const missed = [(await again.next()).value?.data.type, (await again.next()).value?.data.type];
    expect(missed).toEqual(['join', 'update']);
  });

  it('a user topic starts with the value now, sends changes only, and goes with its last subscriber', async () => {
    const { topics, presence, feeds } = setup();
    const controller = new AbortController();
    const events = feeds.user('user-c1', controller.signal);
    expect((await events.next()).value).toMatchObject({ status: 'offline', connections: 0 });
    presence.update(view('c1', null, 'connected'));
    presence.update(view('c1', 'g', 'inGame'));
    presence.update(view('c1', 'g', 'stale'));
    expect((await events.next()).value).toMatchObject({ status: 'online', connections: 1 });
    expect((await events.next()).value).toMatchObject({ status: 'away', connections: 1 });
    controller.abort();
    presence.remove('c1', 'expired');
    expect(topics.size).toBe(0);
  });

  it('session events reach the session subscriber; ending the session ends the stream after them', async () => {
    const { topics, feeds } = setup();
    const events = feeds.session('c1', live());
    feeds.publishSession('c1', { type: 'warning', expiresAt: new Date(5) });
    feeds.publishSession('c1', { type: 'expired', reason: 'expired' });
    feeds.endSession('c1');
    expect(topics.size).toBe(0);
    const seen = [await events.next(), await events.next(), await events.next()];
    expect(seen.map((r) => (r.done ? 'done' : r.value.type))).toEqual(['warning', 'expired', 'done']);
  });

  it('admin stats: the value now, then changes coalesced to one per interval, never the same twice', async () => {
    vi.useFakeTimers();
    const { presence, feeds } = setup();
    const events = feeds.adminStats(live());
    expect((await events.next()).value).toMatchObject({ connections: 0 });
    for (let i = 0; i < 20; i++) presence.update(view(`c${i}`, 'g'));
    const next = events.next();
    await vi.advanceTimersByTimeAsync(100);
    expect((await next).value).toMatchObject({ connections: 20, perGame: { g: 20 } });
    // Back and forth within one interval: nothing changed by the time it is sent, nothing is sent.
    presence.update(view('c0', 'g', 'stale'));
    presence.update(view('c0', 'g', 'inGame'));
    await vi.advanceTimersByTimeAsync(100);
    const late = feeds.adminStats(live());
    expect((await late.next()).value).toMatchObject({ connections: 20 });
    presence.remove('c1', 'left');
    await vi.advanceTimersByTimeAsync(100);
    expect((await events.next()).value).toMatchObject({ connections: 19 });
    expect((await late.next()).value).toMatchObject({ connections: 19 });
    feeds.close();
  });
});

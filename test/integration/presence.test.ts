import { describe, expect, it, vi } from 'vitest';
import type { PresenceClient } from '../../src/client/index.js';
import { CloseCode, type PresenceEvent, type SessionEvent, type UserPresence } from '../../src/protocol.js';
import { collect, startServer } from '../support/server.js';

/** One `presence.game` value as the typed client hands it over: tRPC `tracked()` data. */
interface TrackedEvent {
  id: string;
  data: PresenceEvent;
}

function watchGame(client: PresenceClient, gameId: string, lastEventId?: string) {
  const input = lastEventId === undefined ? { gameId } : { gameId, lastEventId };
  return collect<TrackedEvent>((push) =>
    client.api.presence.game.subscribe(input, { onData: (value) => push({ id: value.id, data: value.data }) }),
  );
}

function closeCodes(client: PresenceClient): number[] {
  const codes: number[] = [];
  client.on('close', (close) => codes.push(close.code));
  return codes;
}

function sessionEvents(client: PresenceClient): SessionEvent[] {
  const events: SessionEvent[] = [];
  client.on('event', (event) => events.push(event));
  return events;
}

const types = (events: TrackedEvent[]) => events.map((event) => event.data.type);

/** Ids increase per game (as strings: they carry a process epoch so they keep increasing across restarts). */
function expectIncreasingIds(events: TrackedEvent[]) {
  const ids = events.map((event) => event.id);
  for (const id of ids) expect(id).toMatch(/^[0-9a-z]+-\d+$/);
  for (let i = 1; i < ids.length; i++) expect((ids[i] ?? '') > (ids[i - 1] ?? '')).toBe(true);
}

describe('game membership', () => {
  it('join returns the members with the caller, members() has Dates, leave returns the gameId', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const bob = t.client('bob');
    const [aliceInfo, bobInfo] = await Promise.all([alice.ready, bob.ready]);

    const bobJoin = await bob.api.game.join.mutate({ gameId: 'g1' });
    expect(bobJoin.gameId).toBe('g1');
    expect(bobJoin.members.map((m) => m.connectionId)).toEqual([bobInfo.connectionId]);

    const aliceJoin = await alice.api.game.join.mutate({ gameId: 'g1' });
    expect(aliceJoin.gameId).toBe('g1');
    expect(aliceJoin.members.map((m) => m.connectionId).sort()).toEqual(
      [aliceInfo.connectionId, bobInfo.connectionId].sort(),
    );
    expect(aliceJoin.members.find((m) => m.connectionId === aliceInfo.connectionId)).toMatchObject({
      userId: 'alice',
      state: 'active',
    });

    const members = await bob.api.presence.members.query({ gameId: 'g1' });
    expect(members).toHaveLength(2);
    for (const member of members) {
      expect(member.joinedAt).toBeInstanceOf(Date);
      expect(member.lastSeen).toBeInstanceOf(Date);
      expect(member.state).toBe('active');
    }
    expect(members.map((m) => m.userId).sort()).toEqual(['alice', 'bob']);

    await expect(alice.api.game.leave.mutate()).resolves.toEqual({ gameId: 'g1' });
    await expect(alice.api.game.leave.mutate()).resolves.toEqual({ gameId: null });
    const after = await bob.api.presence.members.query({ gameId: 'g1' });
    expect(after.map((m) => m.userId)).toEqual(['bob']);
    expect((await alice.api.session.info.query()).gameId).toBeNull();
  });

  it('members see join, then leave with reason left', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const bob = t.client('bob');
    const [aliceInfo] = await Promise.all([alice.ready, bob.ready]);
    const seen = watchGame(bob, 'g1');
    await vi.waitFor(() => expect(types(seen.values)).toEqual(['sync']));
    expect(seen.values[0]?.data).toEqual({ type: 'sync', gameId: 'g1', members: [] });

    await alice.api.game.join.mutate({ gameId: 'g1' });
    await alice.api.game.leave.mutate();
    await vi.waitFor(() => expect(types(seen.values)).toEqual(['sync', 'join', 'leave']));
    expect(seen.values[1]?.data).toMatchObject({
      type: 'join',
      gameId: 'g1',
      member: { userId: 'alice', connectionId: aliceInfo.connectionId, state: 'active' },
    });
    expect(seen.values[2]?.data).toMatchObject({
      type: 'leave',
      gameId: 'g1',
      member: { userId: 'alice', connectionId: aliceInfo.connectionId },
      reason: 'left',
    });
    expectIncreasingIds(seen.values.slice(1));
    seen.unsubscribe();
  });

  it('a connection is in at most one game: joining g2 leaves g1 with reason moved', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const bob = t.client('bob');
    const [aliceInfo] = await Promise.all([alice.ready, bob.ready]);
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const g1 = watchGame(bob, 'g1');
    const g2 = watchGame(bob, 'g2');
    await vi.waitFor(() => {
      expect(types(g1.values)).toEqual(['sync']);
      expect(types(g2.values)).toEqual(['sync']);
    });

    const joined = await alice.api.game.join.mutate({ gameId: 'g2' });
    expect(joined.members.map((m) => m.connectionId)).toEqual([aliceInfo.connectionId]);

    await vi.waitFor(() => {
      expect(types(g1.values)).toEqual(['sync', 'leave']);
      expect(types(g2.values)).toEqual(['sync', 'join']);
    });
    expect(g1.values[1]?.data).toMatchObject({
      type: 'leave',
      gameId: 'g1',
      member: { connectionId: aliceInfo.connectionId },
      reason: 'moved',
    });
    expect(g2.values[1]?.data).toMatchObject({
      type: 'join',
      gameId: 'g2',
      member: { connectionId: aliceInfo.connectionId },
    });
    expect((await alice.api.session.info.query()).gameId).toBe('g2');
    expect(await bob.api.presence.members.query({ gameId: 'g1' })).toEqual([]);
    g1.unsubscribe();
    g2.unsubscribe();
  });
});

describe('presence.game subscription', () => {
  it('starts with a sync of the current members, events are tracked with increasing ids', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const bob = t.client('bob');
    const carol = t.client('carol');
    const [aliceInfo, , carolInfo] = await Promise.all([alice.ready, bob.ready, carol.ready]);
    await alice.api.game.join.mutate({ gameId: 'g1' });

    const seen = watchGame(bob, 'g1');
    await vi.waitFor(() => expect(seen.values).toHaveLength(1));
    const sync = seen.values[0];
    expect(sync?.id).toEqual(expect.any(String));
    expect(sync?.data.type).toBe('sync');
    if (sync?.data.type !== 'sync') throw new Error('expected a sync first');
    expect(sync.data.gameId).toBe('g1');
    expect(sync.data.members).toHaveLength(1);
    expect(sync.data.members[0]).toMatchObject({ userId: 'alice', connectionId: aliceInfo.connectionId });
    expect(sync.data.members[0]?.joinedAt).toBeInstanceOf(Date);

    await carol.api.game.join.mutate({ gameId: 'g1' });
    await carol.api.game.leave.mutate();
    await alice.api.game.leave.mutate();
    await vi.waitFor(() => expect(types(seen.values)).toEqual(['sync', 'join', 'leave', 'leave']));
    for (const value of seen.values) expect(value.id).toEqual(expect.any(String));
    expectIncreasingIds(seen.values);
    expect(seen.values[1]?.data).toMatchObject({ type: 'join', member: { connectionId: carolInfo.connectionId } });
    seen.unsubscribe();
  });

  it('heartbeats never produce presence events', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const bob = t.client('bob');
    const carol = t.client('carol');
    const [, , carolInfo] = await Promise.all([alice.ready, bob.ready, carol.ready]);
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const seen = watchGame(bob, 'g1');
    await vi.waitFor(() => expect(types(seen.values)).toEqual(['sync']));

    for (let i = 0; i < 40; i++) {
      const beat = await alice.api.session.heartbeat.mutate({ clientTime: Date.now() });
      expect(beat.state).toBe('inGame');
    }
    // A marker event: the stream is ordered, so anything the heartbeats caused would come before it.
    await carol.api.game.join.mutate({ gameId: 'g1' });
    await vi.waitFor(() => expect(seen.values.at(-1)?.data).toMatchObject({ type: 'join' }));
    expect(types(seen.values)).toEqual(['sync', 'join']);
    expect(seen.values[1]?.data).toMatchObject({ member: { connectionId: carolInfo.connectionId } });
    seen.unsubscribe();
  });

  it('re-subscribing with lastEventId replays exactly the missed events, without a sync', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const bob = t.client('bob');
    const carol = t.client('carol');
    const dave = t.client('dave');
    const erin = t.client('erin');
    const [, , carolInfo, daveInfo, erinInfo] = await Promise.all([
      alice.ready,
      bob.ready,
      carol.ready,
      dave.ready,
      erin.ready,
    ]);
    // alice stays in the game throughout, so it keeps its event log.
    await alice.api.game.join.mutate({ gameId: 'g1' });

    const first = watchGame(bob, 'g1');
    await vi.waitFor(() => expect(types(first.values)).toEqual(['sync']));
    await carol.api.game.join.mutate({ gameId: 'g1' });
    await vi.waitFor(() => expect(types(first.values)).toEqual(['sync', 'join']));
    const lastEventId = first.values[1]?.id;
    expect(lastEventId).toEqual(expect.any(String));
    first.unsubscribe();

    await dave.api.game.join.mutate({ gameId: 'g1' });
    await carol.api.game.leave.mutate();
    await dave.api.game.leave.mutate();

    const again = watchGame(bob, 'g1', lastEventId);
    await vi.waitFor(() => expect(again.values).toHaveLength(3));
    // A marker after the replay: whatever came before it is all the replay sent.
    await erin.api.game.join.mutate({ gameId: 'g1' });
    await vi.waitFor(() => expect(again.values).toHaveLength(4));

    expect(again.values.map((v) => v.data)).toMatchObject([
      { type: 'join', member: { connectionId: daveInfo.connectionId } },
      { type: 'leave', member: { connectionId: carolInfo.connectionId }, reason: 'left' },
      { type: 'leave', member: { connectionId: daveInfo.connectionId }, reason: 'left' },
      { type: 'join', member: { connectionId: erinInfo.connectionId } },
    ]);
    expect(types(again.values)).not.toContain('sync');
    expectIncreasingIds([...first.values.slice(1), ...again.values]);
    again.unsubscribe();
  });

  it('re-subscribing with an unknown lastEventId starts with a sync', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const bob = t.client('bob');
    const [aliceInfo] = await Promise.all([alice.ready, bob.ready]);
    await alice.api.game.join.mutate({ gameId: 'g1' });

    const seen = watchGame(bob, 'g1', 'no-such-event');
    await vi.waitFor(() => expect(seen.values.length).toBeGreaterThanOrEqual(1));
    expect(seen.values[0]?.data).toMatchObject({
      type: 'sync',
      gameId: 'g1',
      members: [{ connectionId: aliceInfo.connectionId }],
    });
    seen.unsubscribe();
  });
});

describe('presence queries', () => {
  it('opponent is the first member of another user, or null', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const alice2 = t.client('alice');
    const bob = t.client('bob');
    const carol = t.client('carol');
    const [, , bobInfo] = await Promise.all([alice.ready, alice2.ready, bob.ready, carol.ready]);

    await alice.api.game.join.mutate({ gameId: 'g1' });
    await expect(alice.api.presence.opponent.query({ gameId: 'g1' })).resolves.toBeNull();
    // Another connection of the same user is not an opponent.
    await alice2.api.game.join.mutate({ gameId: 'g1' });
    await expect(alice.api.presence.opponent.query({ gameId: 'g1' })).resolves.toBeNull();

    await bob.api.game.join.mutate({ gameId: 'g1' });
    await carol.api.game.join.mutate({ gameId: 'g1' });
    const opponent = await alice.api.presence.opponent.query({ gameId: 'g1' });
    expect(opponent).toMatchObject({ userId: 'bob', connectionId: bobInfo.connectionId, state: 'active' });
    expect(opponent?.joinedAt).toBeInstanceOf(Date);
    // From bob's side the first member of another user is alice's first connection.
    const members = await bob.api.presence.members.query({ gameId: 'g1' });
    const expected = members.find((m) => m.userId !== 'bob');
    await expect(bob.api.presence.opponent.query({ gameId: 'g1' })).resolves.toEqual(expected);
    // Nobody in the game: null.
    await expect(alice.api.presence.opponent.query({ gameId: 'empty' })).resolves.toBeNull();
  });

  it('isOnline and presence.user: online, away when stale, offline after leave', async () => {
    await using t = await startServer({ staleMs: 250, expireMs: 10_000, heartbeatMs: 50 });
    const bob = t.client('bob');
    await bob.ready;
    const seen = collect<UserPresence>((push) =>
      bob.api.presence.user.subscribe({ userId: 'alice' }, { onData: push }),
    );
    await vi.waitFor(() => expect(seen.values).toHaveLength(1));
    expect(seen.values[0]).toEqual({ userId: 'alice', status: 'offline', connections: 0, lastSeen: null });
    await expect(bob.api.presence.isOnline.query({ userId: 'alice' })).resolves.toBe(false);

    const alice = t.client('alice', { heartbeat: false });
    await alice.ready;
    await alice.api.session.heartbeat.mutate();
    await expect(bob.api.presence.isOnline.query({ userId: 'alice' })).resolves.toBe(true);
    await vi.waitFor(() => expect(seen.values.map((v) => v.status)).toEqual(['offline', 'online']));
    expect(seen.values[1]).toMatchObject({ userId: 'alice', status: 'online', connections: 1 });
    expect(seen.values[1]?.lastSeen).toBeInstanceOf(Date);

    await vi.waitFor(() => expect(seen.values.map((v) => v.status)).toEqual(['offline', 'online', 'away']), {
      timeout: 3_000,
    });
    expect(seen.values[2]).toMatchObject({ status: 'away', connections: 1 });
    await expect(bob.api.presence.isOnline.query({ userId: 'alice' })).resolves.toBe(false);

    // session.leave is a call (activity) before it ends the session: online, then offline.
    await alice.api.session.leave.mutate();
    await vi.waitFor(() => expect(seen.values.at(-1)).toMatchObject({ status: 'offline', connections: 0 }));
    expect(seen.values.map((v) => v.status)).toEqual(['offline', 'online', 'away', 'online', 'offline']);
    await expect(bob.api.presence.isOnline.query({ userId: 'alice' })).resolves.toBe(false);
    seen.unsubscribe();
  });

  it('presence.user counts connections and yields the current value first', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const alice2 = t.client('alice');
    const bob = t.client('bob');
    await Promise.all([alice.ready, alice2.ready, bob.ready]);

    const seen = collect<UserPresence>((push) =>
      bob.api.presence.user.subscribe({ userId: 'alice' }, { onData: push }),
    );
    await vi.waitFor(() => expect(seen.values).toHaveLength(1));
    expect(seen.values[0]).toMatchObject({ userId: 'alice', status: 'online', connections: 2 });
    expect(seen.values[0]?.lastSeen).toBeInstanceOf(Date);

    await alice2.api.session.leave.mutate();
    await vi.waitFor(() => expect(seen.values).toHaveLength(2));
    expect(seen.values[1]).toMatchObject({ status: 'online', connections: 1 });
    await expect(bob.api.presence.isOnline.query({ userId: 'alice' })).resolves.toBe(true);

    await alice.api.session.leave.mutate();
    await vi.waitFor(() => expect(seen.values).toHaveLength(3));
    expect(seen.values[2]).toMatchObject({ status: 'offline', connections: 0 });
    seen.unsubscribe();
  });
});

describe('user policies', () => {
  it('replace: a second connection ends the first (replaced event, close 4001, leave replaced)', async () => {
    await using t = await startServer({ userPolicy: 'replace' });
    const bob = t.client('bob');
    const alice = t.client('alice');
    const [, firstInfo] = await Promise.all([bob.ready, alice.ready]);
    const firstCloses = closeCodes(alice);
    const firstEvents = sessionEvents(alice);
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const seen = watchGame(bob, 'g1');
    await vi.waitFor(() => expect(types(seen.values)).toEqual(['sync']));

    const second = t.client('alice');
    const secondInfo = await second.ready;
    expect(secondInfo.connectionId).not.toBe(firstInfo.connectionId);

    await vi.waitFor(() => expect(firstCloses).toEqual([CloseCode.replaced]));
    expect(firstEvents).toContainEqual({ type: 'replaced', by: secondInfo.connectionId });
    await vi.waitFor(() => expect(types(seen.values)).toEqual(['sync', 'leave']));
    expect(seen.values[1]?.data).toMatchObject({
      type: 'leave',
      gameId: 'g1',
      member: { userId: 'alice', connectionId: firstInfo.connectionId },
      reason: 'replaced',
    });

    const info = await second.api.session.info.query();
    expect(info).toMatchObject({ connectionId: secondInfo.connectionId, state: 'connected' });
    const presence = collect<UserPresence>((push) =>
      bob.api.presence.user.subscribe({ userId: 'alice' }, { onData: push }),
    );
    await vi.waitFor(() => expect(presence.values[0]).toMatchObject({ status: 'online', connections: 1 }));
    presence.unsubscribe();
    seen.unsubscribe();
  });

  it('multi: past maxConnectionsPerUser the new connection is refused with TOO_MANY_REQUESTS and 4429', async () => {
    await using t = await startServer({ userPolicy: 'multi', maxConnectionsPerUser: 2 });
    const first = t.client('alice');
    const second = t.client('alice');
    const [firstInfo, secondInfo] = await Promise.all([first.ready, second.ready]);
    const firstCloses = closeCodes(first);
    const secondCloses = closeCodes(second);

    const third = t.client('alice');
    const thirdCloses = closeCodes(third);
    await expect(third.ready).rejects.toMatchObject({ data: { code: 'TOO_MANY_REQUESTS' } });
    await vi.waitFor(() => expect(thirdCloses).toEqual([CloseCode.tooManyConnections]));

    await expect(first.api.session.info.query()).resolves.toMatchObject({
      connectionId: firstInfo.connectionId,
      state: 'connected',
    });
    await expect(second.api.session.info.query()).resolves.toMatchObject({
      connectionId: secondInfo.connectionId,
      state: 'connected',
    });
    await expect(first.api.game.join.mutate({ gameId: 'g1' })).resolves.toMatchObject({ gameId: 'g1' });
    expect(firstCloses).toEqual([]);
    expect(secondCloses).toEqual([]);
    const presence = collect<UserPresence>((push) =>
      first.api.presence.user.subscribe({ userId: 'alice' }, { onData: push }),
    );
    await vi.waitFor(() => expect(presence.values[0]).toMatchObject({ status: 'online', connections: 2 }));
    presence.unsubscribe();
  });
});

describe('expiry', () => {
  it('warns, expires, closes with 4000, members see leave expired, history records it', async () => {
    await using t = await startServer({ staleMs: 100, expireMs: 300, warnMs: 150, heartbeatMs: 30 });
    const admin = t.client('bob', { role: 'admin' });
    const alice = t.client('alice', { heartbeat: false });
    const [, aliceInfo] = await Promise.all([admin.ready, alice.ready]);
    const closes = closeCodes(alice);
    const events = sessionEvents(alice);
    const seen = watchGame(admin, 'g1');
    await vi.waitFor(() => expect(types(seen.values)).toEqual(['sync']));
    await alice.api.game.join.mutate({ gameId: 'g1' });

    await vi.waitFor(() => expect(closes).toEqual([CloseCode.expired]), { timeout: 5_000 });
    const kinds = events.map((event) => event.type);
    expect(kinds).toContain('warning');
    expect(kinds).toContain('expired');
    expect(kinds.indexOf('warning')).toBeLessThan(kinds.indexOf('expired'));
    const warning = events.find((event) => event.type === 'warning');
    if (warning?.type !== 'warning') throw new Error('expected a warning');
    expect(warning.expiresAt).toBeInstanceOf(Date);
    expect(events.find((event) => event.type === 'expired')).toEqual({ type: 'expired', reason: 'expired' });

    await vi.waitFor(() => expect(types(seen.values)).toEqual(['sync', 'join', 'update', 'leave']));
    expect(seen.values[2]?.data).toMatchObject({ type: 'update', member: { state: 'stale' } });
    expect(seen.values[3]?.data).toMatchObject({
      type: 'leave',
      gameId: 'g1',
      member: { userId: 'alice', connectionId: aliceInfo.connectionId },
      reason: 'expired',
    });

    const history = await admin.api.admin.history.query({ userId: 'alice' });
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({
      connectionId: aliceInfo.connectionId,
      userId: 'alice',
      reason: 'expired',
      games: ['g1'],
    });
    expect(history[0]?.endedAt).toBeInstanceOf(Date);
    // Timers may fire a millisecond early after rounding.
    expect(history[0]?.endedAt.getTime()).toBeGreaterThanOrEqual(warning.expiresAt.getTime() - 5);
    seen.unsubscribe();
  });
});

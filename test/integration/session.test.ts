import { describe, expect, it, vi } from 'vitest';
import type { PresenceEvent, SessionEvent } from '../../src/protocol.js';
import { collect, startServer } from '../support/server.js';

describe('session over a real socket', () => {
  it('connects, reports session info with Dates, heartbeats', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const info = await alice.ready;
    expect(info.userId).toBe('alice');
    expect(info.state).toBe('connected');
    expect(info.connectedAt).toBeInstanceOf(Date);
    expect(info.resumed).toBe(false);
    expect(info.resumeToken.length).toBeGreaterThanOrEqual(22);
    expect(info.nodeId).toBe(t.server.nodeId);
    const beat = await alice.api.session.heartbeat.mutate({ clientTime: Date.now() });
    expect(beat.serverTime).toBeInstanceOf(Date);
    expect(beat.state).toBe('connected');
  });

  it('goes stale after silence, members see update not leave, and a call brings it back', async () => {
    await using t = await startServer({ staleMs: 150, expireMs: 5_000, heartbeatMs: 60_000 });
    const alice = t.client('alice', { heartbeat: false });
    const bob = t.client('bob');
    await Promise.all([alice.ready, bob.ready]);
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const seen = collect<PresenceEvent>((push) =>
      bob.api.presence.game.subscribe({ gameId: 'g1' }, { onData: (e) => push(e.data) }),
    );
    await vi.waitFor(() => expect(seen.values.map((e) => e.type)).toContain('sync'));
    await vi.waitFor(() =>
      expect(seen.values.find((e) => e.type === 'update')).toMatchObject({
        member: { userId: 'alice', state: 'stale' },
      }),
    );
    expect(seen.values.some((e) => e.type === 'leave')).toBe(false);
    const info = await alice.api.session.info.query();
    expect(info.state).toBe('inGame');
    await vi.waitFor(() =>
      expect(seen.values.at(-1)).toMatchObject({ type: 'update', member: { userId: 'alice', state: 'active' } }),
    );
    seen.unsubscribe();
  });

  it('session.leave ends the session and the server closes with 4003', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    await alice.ready;
    const closes: number[] = [];
    alice.on('close', (c) => closes.push(c.code));
    const events: SessionEvent[] = [];
    alice.on('event', (e) => events.push(e));
    await expect(alice.api.session.leave.mutate()).resolves.toEqual({ ok: true });
    await vi.waitFor(() => expect(closes).toEqual([4003]));
    const history = t.server.services.store.history({ limit: 10 });
    await expect(history).resolves.toMatchObject([{ userId: 'alice', reason: 'left' }]);
  });
});

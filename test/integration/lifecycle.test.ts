import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { CloseCode, type PresenceEvent, type SessionInfo } from '../../src/protocol.js';
import { collect, startServer, type TestServer } from '../support/server.js';

/** Drops the server side of a connection's socket without a close handshake, as a lost network does. */
function dropSocket(t: TestServer, connectionId: string) {
  const socket = t.server.services.connections.get(connectionId)?.socket;
  if (!(socket instanceof WebSocket)) throw new Error(`no socket attached to ${connectionId}`);
  socket.terminate();
}

describe('connection lifecycle over real sockets', () => {
  it('a dropped socket makes the connection stale at once; members see update, not leave', async () => {
    await using t = await startServer({ staleMs: 60_000, expireMs: 60_000 });
    const alice = t.client('alice', { retryBaseMs: 60_000 });
    const bob = t.client('bob');
    const info = await alice.ready;
    await bob.ready;
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const seen = collect<PresenceEvent>((push) =>
      bob.api.presence.game.subscribe({ gameId: 'g1' }, { onData: (e) => push(e.data) }),
    );
    await vi.waitFor(() => expect(seen.values[0]?.type).toBe('sync'));

    dropSocket(t, info.connectionId);

    await vi.waitFor(() =>
      expect(seen.values.at(-1)).toMatchObject({ type: 'update', member: { userId: 'alice', state: 'stale' } }),
    );
    expect(seen.values.filter((e) => e.type === 'leave')).toEqual([]);
    const [row] = await bob.api.presence.members
      .query({ gameId: 'g1' })
      .then((m) => m.filter((x) => x.userId === 'alice'));
    expect(row?.state).toBe('stale');
    seen.unsubscribe();
  });

  it('the client resumes with its token: same connectionId and game, resumed, members see update back to active', async () => {
    await using t = await startServer({ staleMs: 60_000, expireMs: 60_000 });
    const alice = t.client('alice');
    const bob = t.client('bob');
    const first = await alice.ready;
    await bob.ready;
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const seen = collect<PresenceEvent>((push) =>
      bob.api.presence.game.subscribe({ gameId: 'g1' }, { onData: (e) => push(e.data) }),
    );
    await vi.waitFor(() => expect(seen.values[0]?.type).toBe('sync'));
    const sessions: SessionInfo[] = [];
    alice.on('session', (s) => sessions.push(s));

    dropSocket(t, first.connectionId);

    await vi.waitFor(() => expect(sessions.at(-1)?.resumed).toBe(true));
    const resumed = sessions.at(-1);
    expect(resumed?.connectionId).toBe(first.connectionId);
    expect(resumed?.gameId).toBe('g1');
    expect(resumed?.state).toBe('inGame');
    await vi.waitFor(() =>
      expect(seen.values.at(-1)).toMatchObject({ type: 'update', member: { userId: 'alice', state: 'active' } }),
    );
    expect(seen.values.map((e) => e.type)).toEqual(['sync', 'update', 'update']);
    expect(t.server.services.connections.size).toBe(2);
    seen.unsubscribe();
  });

  it('a resume token dies with its session: presenting it afterwards gives a fresh session', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    const first = await alice.ready;
    await alice.api.session.leave.mutate();
    await vi.waitFor(() => expect(t.server.services.connections.size).toBe(0));
    const again = t.client('alice', { heartbeat: false });
    const ws = new WebSocket(`${t.wsUrl}?connectionParams=1`);
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify({ method: 'connectionParams', data: { userId: 'alice', resume: first.resumeToken } }));
    ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'session.info', input: { json: null } } }));
    const reply = await new Promise<string>((resolve) =>
      ws.once('message', (data: Buffer) => resolve(data.toString())),
    );
    const info = (JSON.parse(reply) as { result: { data: { json: SessionInfo } } }).result.data.json;
    expect(info.connectionId).not.toBe(first.connectionId);
    expect(info.resumed).toBe(false);
    ws.close();
    expect((await again.ready).resumed).toBe(false);
  });

  it('transport ping/pong is not activity: a client that only answers pings goes stale and is closed at expiry', async () => {
    await using t = await startServer({ pingMs: 30, pongWaitMs: 200, staleMs: 150, expireMs: 300, warnMs: 0 });
    const ws = new WebSocket(`${t.wsUrl}?connectionParams=1`);
    const pings: number[] = [];
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.on('message', (data: Buffer) => {
      if (data.toString() === 'PING') {
        pings.push(Date.now());
        ws.send('PONG');
      }
    });
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify({ method: 'connectionParams', data: { userId: 'quiet' } }));
    await vi.waitFor(() => expect(t.server.services.connections.size).toBe(1));
    const [conn] = t.server.services.connections.list({ limit: 1 });
    await vi.waitFor(() => expect(t.server.services.connections.get(conn?.connectionId ?? '')?.state).toBe('stale'));
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(await closed).toBe(CloseCode.expired);
    expect(pings.length).toBeGreaterThan(3);
  });

  it('a client that answers no ping is dropped by keep-alive and goes stale', async () => {
    await using t = await startServer({ pingMs: 30, pongWaitMs: 60, staleMs: 60_000 });
    const ws = new WebSocket(`${t.wsUrl}?connectionParams=1`);
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify({ method: 'connectionParams', data: { userId: 'deaf' } }));
    await vi.waitFor(() => expect(t.server.services.connections.size).toBe(1));
    const code = await new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
    expect(code).toBe(1006);
    await vi.waitFor(() => expect(t.server.services.connections.list({ limit: 1 })[0]?.state).toBe('stale'));
  });
});

describe('node limits and shutdown', () => {
  it('past maxConnections a new socket is closed with 1013', async () => {
    await using t = await startServer({ maxConnections: 2 });
    await Promise.all([t.client('a').ready, t.client('b').ready]);
    const ws = new WebSocket(`${t.wsUrl}?connectionParams=1`);
    const code = await new Promise<number>((resolve) => ws.once('close', (c) => resolve(c)));
    expect(code).toBe(CloseCode.atCapacity);
    expect(t.server.services.connections.size).toBe(2);
  });

  it('drain tells clients to reconnect (1012), flips readiness, and refuses new sockets', async () => {
    await using t = await startServer();
    const alice = t.client('alice', { retryBaseMs: 60_000 });
    await alice.ready;
    const closes: number[] = [];
    alice.on('close', (c) => closes.push(c.code));
    expect((await fetch(`${t.url}/health/ready`)).status).toBe(200);
    await t.server.drain();
    await vi.waitFor(() => expect(closes).toEqual([CloseCode.serverRestarting]));
    expect((await fetch(`${t.url}/health/ready`)).status).toBe(503);
    const ws = new WebSocket(t.wsUrl);
    const failed = await new Promise<string>((resolve) => ws.once('error', (e) => resolve(e.message)));
    expect(failed).toMatch(/503/);
  });
});

describe('http', () => {
  it('serves /health, /health/ready and /health/connections without user ids', async () => {
    await using t = await startServer();
    const alice = t.client('alice');
    await alice.ready;
    await alice.api.game.join.mutate({ gameId: 'g1' });
    const health = (await (await fetch(`${t.url}/health`)).json()) as Record<string, unknown>;
    expect(health).toEqual({
      status: 'ok',
      nodeId: t.server.nodeId,
      store: 'memory',
      connections: 1,
      sockets: { authenticated: 1, pending: 0 },
    });
    const res = await fetch(`${t.url}/health/connections`);
    const body = await res.text();
    expect(JSON.parse(body)).toEqual({
      total: 1,
      users: 1,
      games: 1,
      byState: { connected: 0, inGame: 1, stale: 0 },
      perGame: { g1: 1 },
    });
    expect(body).not.toContain('alice');
    expect((await fetch(`${t.url}/nope`)).status).toBe(404);
  });
});

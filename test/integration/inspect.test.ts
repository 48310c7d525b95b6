import { createWebSocketReceiver, type StatelyInspectionEvent } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { signToken } from '../../src/wire/auth.js';
import { freePort } from '../support/redis.js';
import { startServer } from '../support/server.js';

const SECRET = 'inspector-test-secret-0123456789';

describe('Stately inspector', () => {
  it('sends actor events to a relay, without heartbeats and without secrets', async () => {
    const port = await freePort();
    const relay = createInspectorServer({ port, autoOpen: false });
    const received: StatelyInspectionEvent[] = [];
    const receiver = createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` });
    const subscription = receiver.subscribe((event) => received.push(event));
    try {
      await using t = await startServer({ jwtSecret: SECRET, inspect: `ws://127.0.0.1:${port}` });
      const token = await signToken({ secret: SECRET, userId: 'alice', ttl: '5m' });
      const alice = t.client('ignored', { userId: undefined, token });
      const info = await alice.ready;
      await alice.api.game.join.mutate({ gameId: 'g1' });
      for (let i = 0; i < 20; i++) await alice.api.session.heartbeat.mutate();
      // A drop and a resume put the resume token on the wire; a leave ends it.
      const socket = t.server.services.connections.get(info.connectionId)?.socket;
      if (!(socket instanceof WebSocket)) throw new Error('no socket');
      socket.terminate();
      await vi.waitFor(() => expect(alice.session()?.resumed).toBe(true));
      await alice.api.session.leave.mutate();

      const types = () =>
        received.flatMap((e) => (e.type === '@xstate.event' || e.type === '@xstate.snapshot' ? [e.event.type] : []));
      await vi.waitFor(
        () =>
          expect(types()).toEqual(expect.arrayContaining(['CONNECT', 'JOIN_GAME', 'SOCKET_CLOSED', 'RESUME', 'END'])),
        {
          timeout: 10_000,
        },
      );
      // Each connection actor is announced under its id, with the connection machine's definition.
      const announced = received.find((e) => e.type === '@xstate.actor' && e.name === info.connectionId);
      expect(announced?.type === '@xstate.actor' && announced.definition).toContain('"id":"connection"');
      expect(types()).not.toContain('HEARTBEAT');

      const wire = JSON.stringify(received);
      expect(wire).not.toContain(token);
      expect(wire).not.toContain(info.resumeToken);
      expect(wire).not.toContain(SECRET);
      expect(wire).not.toContain('127.0.0.1');
      expect(wire).toContain(info.connectionId);
    } finally {
      subscription.unsubscribe();
      relay.stop();
    }
  });
});

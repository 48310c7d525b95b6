import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { expect, vi } from 'vitest';
import type { PresenceClient } from '../../src/client/index.js';
import { type SessionEvent, type SessionInfo } from '../../src/protocol.js';
import {
  createPresenceServer,
  type Listening,
  type PresenceServer,
  type PresenceServerOptions,
} from '../../src/server.js';
import { createRedisStore } from '../../src/store/redis.js';
import { freePort, type TestRedis } from '../support/redis.js';
import { closeCodeFor, gameIdOf, games, other, presenceEffects } from './connectionExpectations.js';
import { eventsOf } from './paths.js';
import {
  type AbstractGame,
  type ConnectionModelEventType,
  type ConnectionModelPath,
  type ConnectionModelSnapshot,
} from './connectionModel.js';
import { dropSocket, heldStore, presenceClient, socketGate, watchGame, type GameStream } from './serverSupport.js';

/**
 * Timeouts for the server runs, in real milliseconds: short enough that a path takes about a second,
 * long enough that a step's own calls and checks (a few ms each) never let a live connection go stale
 * by accident on a loaded machine. `inGameExpireMs` differs from `expireMs` so the wrong one shows.
 */
export const serverTiming = { staleMs: 300, expireMs: 700, inGameExpireMs: 900, warnMs: 0 } as const;
/** How late an expiry may come (timer latency on a busy machine); it must never come early. */
const EXPIRY_LATENESS_MS = 1_000;

const SUBJECT = 'subject';
const OBSERVER = 'observer';

/** Checks that should hold at once but are read over the network: polled briefly. */
const settle = { timeout: 3_000, interval: 10 } as const;

export interface ServerRunOptions {
  /** A real redis-server: the server persists there, and `RESTART` restarts it on the same port. */
  redis?: TestRedis;
  /**
   * When the clients may reconnect to the restarted process. `'after'`: once it has restored (the
   * observer's reconnects are held back until then, so every run is the same). `'during'`: while it
   * is still restoring, as happens whenever reading the store takes longer than a reconnect delay —
   * the new process is held in its restore until one of the observer's reconnects has reached it.
   * @default 'after'
   */
  reconnect?: 'after' | 'during';
}

interface Running {
  server: PresenceServer;
  listening: Promise<Listening>;
  release(): void;
}

/**
 * Runs one path of the abstract connection model against a real presenced server (in process, real
 * sockets): the subject is a typed client (no heartbeats, reconnects through a gate the test opens),
 * the observer an admin client subscribed to both games. Every step is checked through
 * `admin.connections`, `admin.history`, `session.info` (when the subject has a socket and is not
 * stale, since a call would bring it back), the observer's presence streams and the subject's session
 * events and close codes.
 */
export async function runOnServer(path: ConnectionModelPath, options: ServerRunOptions = {}) {
  const events = eventsOf(path);
  const redis = options.redis;
  if (events.includes('RESTART') && !redis) throw new Error('RESTART needs a redis-server');
  const logger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const nodeId = `model-${randomUUID().slice(0, 8)}`;
  const prefix = redis?.prefix();
  // Same port after a restart, so the clients' own reconnects find the new process.
  const port = redis ? await freePort() : 0;
  const serverOptions: PresenceServerOptions = {
    ...serverTiming,
    port,
    nodeId,
    logger,
    // The observer polls admin.connections every few ms while it waits.
    rateLimit: 100_000,
    userPolicy: events.includes('REPLACE') ? 'replace' : 'multi',
    flushIntervalMs: 50,
  };
  const servers: Running[] = [];
  function boot(hold: boolean): Running {
    const redisStore = redis ? createRedisStore({ url: redis.url, prefix, nodeId, logger }) : undefined;
    const held = redisStore && hold ? heldStore(redisStore) : undefined;
    const store = held?.store ?? redisStore;
    const server = createPresenceServer({ ...serverOptions, ...(store ? { store } : {}) });
    const listening = server.listen();
    // Awaited by the step that needs it. A server closed while it restores never serves, and its
    // listen() rejects (a TypeError today: http.address() is null by then).
    listening.catch(() => undefined);
    const running = { server, listening, release: held?.release ?? (() => undefined) };
    servers.push(running);
    return running;
  }

  const clients: PresenceClient[] = [];
  await using subjectGate = await socketGate();
  await using observerGate = await socketGate();
  try {
    let current = boot(false);
    const { wsUrl } = await current.listening;
    const track = (client: PresenceClient) => (clients.push(client), client);

    const observer = track(presenceClient(wsUrl, OBSERVER, { role: 'admin', WebSocket: observerGate.WebSocket }));
    const observerSessions: SessionInfo[] = [];
    observer.on('session', (info) => observerSessions.push(info));
    await observer.ready;
    const streams: Record<AbstractGame, GameStream> = {
      A: watchGame(observer, games.A),
      B: watchGame(observer, games.B),
    };
    await vi.waitFor(() => expect([streams.A.syncs, streams.B.syncs]).toEqual([1, 1]), settle);

    const subject = track(presenceClient(wsUrl, SUBJECT, { WebSocket: subjectGate.WebSocket }));
    const closes: number[] = [];
    const sessionEvents: SessionEvent[] = [];
    const sessions: SessionInfo[] = [];
    subject.on('close', (close) => closes.push(close.code));
    subject.on('event', (event) => sessionEvents.push(event));
    subject.on('session', (info) => sessions.push(info));
    const first = await subject.ready;
    const connectionId = first.connectionId;
    expect(first).toMatchObject({ userId: SUBJECT, state: 'connected', gameId: null, resumed: false });

    const expected: Record<AbstractGame, Pick<GameStream, 'syncs' | 'members' | 'events'>> = {
      A: { syncs: 1, members: [], events: [] },
      B: { syncs: 1, members: [], events: [] },
    };
    let previous: ConnectionModelSnapshot | undefined;
    let resumed = false;
    /** Games the connection was in, for its history record. */
    const visited = new Set<string>();
    /** `expiresAt` as last read while stale: a stale connection keeps it (drops, restarts). */
    let previousExpiresAt: number | null = null;
    /** Set by SILENCE: the connection went stale on its own deadline, so `expiresAt` is exact. */
    let staleBySilence = false;
    /** Set by RESTART from a live state: stale since the drain, somewhere in this window. */
    let drainedWithin: [number, number] | null = null;

    const adminRow = async () =>
      (await observer.api.admin.connections.query({ userId: SUBJECT })).find(
        (row) => row.connectionId === connectionId,
      );

    const executors: Record<ConnectionModelEventType, (next: ConnectionModelSnapshot) => Promise<void>> = {
      HEARTBEAT: async (next) => {
        const result = await subject.api.session.heartbeat.mutate();
        expect(result.state).toBe(next.value);
      },
      JOIN: async () => {
        const result = await subject.api.game.join.mutate({ gameId: games.A });
        expect(result.gameId).toBe(games.A);
        expect(result.members.map((m) => m.connectionId)).toContain(connectionId);
      },
      MOVE: async () => {
        const gameId = games[other(previous?.context.game ?? null)];
        const result = await subject.api.game.join.mutate({ gameId });
        expect(result.members.map((m) => m.connectionId)).toContain(connectionId);
      },
      LEAVE_GAME: async () => {
        const result = await subject.api.game.leave.mutate();
        expect(result).toEqual({ gameId: gameIdOf(previous?.context.game ?? null) });
      },
      SOCKET_DROP: async () => {
        const before = closes.length;
        // The client's reconnects go nowhere until RESUME opens the gate.
        subjectGate.open = false;
        dropSocket(current.server, connectionId);
        await vi.waitFor(() => expect(closes.slice(before)).toContain(1006), settle);
      },
      RESUME: async (next) => {
        const before = sessions.length;
        subjectGate.open = true;
        await vi.waitFor(() => expect(sessions.slice(before).some((s) => s.resumed)).toBe(true), settle);
        const info = sessions.at(-1);
        expect(info).toMatchObject({
          connectionId,
          resumed: true,
          state: next.value,
          gameId: gameIdOf(next.context.game),
        });
        resumed = true;
      },
      SILENCE: async () => {
        // Nothing but the clock: wait until the server says stale.
        await vi.waitFor(async () => expect((await adminRow())?.state).toBe('stale'), {
          timeout: serverTiming.staleMs + 5_000,
          interval: 10,
        });
        staleBySilence = true;
      },
      GRACE_ELAPSED: async () => {
        await vi.waitFor(async () => expect(await adminRow()).toBeUndefined(), {
          timeout: serverTiming.inGameExpireMs + 5_000,
          interval: 10,
        });
      },
      KICK: async () => {
        expect(await observer.api.admin.kick.mutate({ connectionId })).toEqual({ kicked: true });
      },
      REPLACE: async () => {
        const replacement = track(presenceClient(wsUrl, SUBJECT));
        const info = await replacement.ready;
        expect(info.connectionId).not.toBe(connectionId);
        expect(info.resumed).toBe(false);
        if (previous?.context.socket) {
          await vi.waitFor(
            () => expect(sessionEvents).toContainEqual({ type: 'replaced', by: info.connectionId }),
            settle,
          );
        }
      },
      LEAVE: async () => {
        expect(await subject.api.session.leave.mutate()).toEqual({ ok: true });
      },
      RESTART: async () => {
        // The subject's client must not come back on its own: the model says it is away until RESUME.
        subjectGate.open = false;
        if (options.reconnect !== 'during') observerGate.open = false;
        const observerSessionsBefore = observerSessions.length;
        const drainStart = Date.now();
        await current.server.drain();
        drainedWithin = previous?.value === 'stale' ? null : [drainStart, Date.now()];
        await current.server.close();
        const answeredBefore = observerGate.answered;
        current = boot(options.reconnect === 'during');
        if (options.reconnect === 'during') {
          // The new process is held in its restore until one of the observer's reconnects has reached it.
          await vi.waitFor(() => expect(observerGate.answered).toBeGreaterThan(answeredBefore), settle);
          current.release();
        }
        expect(await current.listening).toMatchObject({ port });
        observerGate.open = true;
        // The observer reconnects and resumes by itself; its streams start again with a sync.
        await vi.waitFor(
          () => expect(observerSessions.slice(observerSessionsBefore).some((s) => s.resumed)).toBe(true),
          settle,
        );
      },
    };

    function expectPresence(event: ConnectionModelEventType, from: ConnectionModelSnapshot) {
      if (event === 'RESTART') {
        for (const game of ['A', 'B'] as const) {
          expected[game] = {
            syncs: expected[game].syncs + 1,
            members: from.context.game === game ? [{ connectionId, state: 'stale' }] : [],
            events: [],
          };
        }
        return;
      }
      for (const [game, seen] of presenceEffects(from, event, connectionId)) expected[game].events.push(seen);
    }

    async function checkState(state: ConnectionModelSnapshot) {
      const value = state.value;
      const gameId = gameIdOf(state.context.game);
      if (gameId) visited.add(gameId);
      let expiresAt: number | null = null;
      // admin.connections: state, game, and a deadline exactly while stale.
      await vi.waitFor(async () => {
        const row = await adminRow();
        if (value === 'expired') {
          expect(row).toBeUndefined();
          return;
        }
        expect(row).toMatchObject({ userId: SUBJECT, nodeId, state: value, gameId });
        if (value !== 'stale') {
          expect(row?.expiresAt).toBeNull();
          return;
        }
        expiresAt = row?.expiresAt?.getTime() ?? null;
        const lastSeen = row?.lastSeen.getTime() ?? 0;
        // expiresAt = staleSince + (inGame)expireMs.
        const expireMs = gameId === null ? serverTiming.expireMs : serverTiming.inGameExpireMs;
        if (previous?.value === 'stale') {
          // Still stale (its socket dropped, or a restart): the deadline neither moves nor shrinks.
          expect(expiresAt).toBe(previousExpiresAt);
        } else if (staleBySilence) {
          expect(expiresAt).toBe(lastSeen + serverTiming.staleMs + expireMs);
        } else if (drainedWithin) {
          // Restarted while live: stale since the drain, and that deadline survived the restart.
          expect(expiresAt).toBeGreaterThanOrEqual(drainedWithin[0] + expireMs);
          expect(expiresAt).toBeLessThanOrEqual(drainedWithin[1] + expireMs);
        } else {
          // The socket dropped: stale since the server saw it go, after the last call.
          expect(expiresAt).toBeGreaterThanOrEqual(lastSeen + expireMs);
          expect(expiresAt).toBeLessThanOrEqual(Date.now() + expireMs);
        }
      }, settle);

      // session.info, over the subject's own socket; not while stale (the call would bring it back).
      if (value === 'connected' || value === 'inGame') {
        expect(await subject.api.session.info.query()).toMatchObject({
          connectionId,
          userId: SUBJECT,
          nodeId,
          state: value,
          gameId,
          expiresAt: null,
          resumed,
        });
      }

      // The observer's view of both games: exactly the expected events since the last sync.
      await vi.waitFor(() => {
        for (const game of ['A', 'B'] as const) {
          expect(streams[game].syncs).toBeGreaterThanOrEqual(expected[game].syncs);
          expect({ game, members: streams[game].members, events: streams[game].events }).toEqual({
            game,
            members: expected[game].members,
            events: expected[game].events,
          });
        }
      }, settle);

      if (value === 'expired') {
        const reason = state.context.reason ?? 'expired';
        // One history record, with the reason and every game it was in.
        await vi.waitFor(async () => {
          const history = await observer.api.admin.history.query({ userId: SUBJECT });
          const record = history.find((entry) => entry.connectionId === connectionId);
          expect(record).toMatchObject({ reason, games: [...visited].sort() });
          // An expiry happens on its deadline: not before it (Node fires a timer up to 1 ms early by
          // Date.now(), and endedAt is read from the clock), and not long after.
          if (reason === 'expired' && previousExpiresAt !== null) {
            expect(record?.endedAt.getTime()).toBeGreaterThanOrEqual(previousExpiresAt - 1);
            expect(record?.endedAt.getTime()).toBeLessThan(previousExpiresAt + EXPIRY_LATENESS_MS);
          }
        }, settle);
        // With a socket attached, the client is told why, then closed with the matching code.
        if (previous?.context.socket) {
          await vi.waitFor(() => {
            expect(sessionEvents).toContainEqual({ type: 'expired', reason });
            expect(closes.at(-1)).toBe(closeCodeFor[reason]);
          }, settle);
        }
      }
      if (value !== 'stale') {
        staleBySilence = false;
        drainedWithin = null;
      }
      previousExpiresAt = expiresAt;
      previous = state;
    }

    const stepExecutors = Object.fromEntries(
      Object.entries(executors).map(([type, exec]) => [
        type,
        async (step: { state: ConnectionModelSnapshot }) => {
          const from = previous;
          if (!from) throw new Error('no previous state');
          await exec(step.state);
          expectPresence(type as ConnectionModelEventType, from);
        },
      ]),
    );
    await path.test({ events: stepExecutors, states: { '*': checkState } });
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    for (const running of servers) {
      await running.server.close();
      running.release();
    }
  }
}

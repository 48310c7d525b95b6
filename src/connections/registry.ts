import { randomBytes, randomUUID } from 'node:crypto';
import type { ConnectionTiming } from '../../machines/connection.js';
import { PresenceError } from '../errors.js';
import { CloseCode } from '../protocol.js';
import { closeFirmly } from '../closeSocket.js';
import { Connection, hashToken } from './connection.js';
import { ConnectionDirectory } from './directory.js';
import { ConnectionEffects } from './effects.js';
import { Supervisor } from './lifecycle.js';
import { restoreConnections } from './restore.js';
import { MachineRunner } from './runner.js';
import type { Connections, ConnectionsOptions } from './types.js';
import { applyUserPolicy } from './userPolicy.js';

export { Connection, type ConnectionHandle } from './connection.js';
export type { Connections, ConnectionsOptions, OpenRequest, RestorableRecord, SocketLike } from './types.js';

/**
 * The connections of this node, wired: the directory (by id, by token), the machine runner and its
 * effects on presence, the store and hooks, the supervisor, the user policy and the restore.
 */
export function createConnections(options: ConnectionsOptions): Connections {
  const { config, store, presence, clock } = options;
  const directory = new ConnectionDirectory();
  const effects = new ConnectionEffects({ ...options, directory, endTimeoutMs: options.endTimeoutMs ?? 2_000 });
  const report = (error: unknown, where: string) => effects.logError(error, where);
  const supervisor = new Supervisor({
    clock,
    shardCapacity: options.shardCapacity ?? 64,
    inspect: options.inspect,
    report,
  });
  const liveActors = options.liveActors ?? options.inspect !== undefined;
  const runner = new MachineRunner({
    clock,
    effects,
    actors: liveActors
      ? { spawn: (input) => supervisor.spawn(input), wake: (id, snapshot) => supervisor.wake(id, snapshot) }
      : null,
  });
  const timing: ConnectionTiming = {
    staleMs: config.staleMs,
    expireMs: config.expireMs,
    inGameExpireMs: config.inGameExpireMs,
    warnMs: config.warnMs,
  };

  // Redis came back, possibly empty: hand every live connection to the store again.
  store.onReconnect(() => {
    for (const connection of directory.values()) effects.persist(connection);
  });

  function live(connection: Connection): Connection {
    if (connection.ended) {
      throw new PresenceError('SESSION_ENDED', `this session has ended (${connection.ended})`);
    }
    return connection;
  }

  function resume(existing: Connection, request: Parameters<Connections['open']>[0], at: number): Connection {
    const old = existing.socket;
    existing.socket = request.socket;
    existing.resumed = true;
    existing.resumeToken = request.resume ?? null;
    existing.role = request.role;
    if (old && old !== request.socket) effects.closeSoon(old, CloseCode.replaced, 'resumed on another socket');
    runner.deliver(existing, { type: 'RESUME', at });
    return existing;
  }

  return {
    get supervisor() {
      return supervisor.actor;
    },

    get size() {
      return directory.size;
    },

    get asleep() {
      return runner.asleep;
    },

    start(records = [], lostAt = clock.now()) {
      const at = clock.now();
      const restored = restoreConnections({
        records,
        lostAt: Math.min(lostAt, at),
        directory,
        presence,
        effects,
        runner,
      });
      supervisor.start(runner.logic, { ids: restored.map((c) => c.connectionId), actors: liveActors });
      return restored.length;
    },

    open(request) {
      supervisor.running();
      const now = clock.now();
      if (request.resume) {
        // A token works only for the user it was issued to; anything else silently gets a fresh session.
        const existing = directory.byResume(hashToken(request.resume), request.userId);
        if (existing) return resume(existing, request, now);
      }
      const connectionId = randomUUID();
      const replacing = applyUserPolicy(
        { config, presence, directory, runner },
        { userId: request.userId, connectionId, at: now },
      );
      const token = randomBytes(16).toString('base64url');
      const connection = new Connection({
        connectionId,
        userId: request.userId,
        role: request.role,
        ip: request.ip,
        userAgent: request.userAgent,
        resumeToken: token,
        resumeTokenHash: hashToken(token),
        socket: request.socket,
      });
      directory.add(connection);
      try {
        runner.start(connection, { connectionId, userId: request.userId, at: now, timing });
      } catch (error) {
        directory.delete(connection);
        throw error;
      }
      connection.replacing = replacing;
      return connection;
    },

    get(connectionId) {
      return directory.get(connectionId);
    },

    touch(connection) {
      runner.deliver(live(connection), { type: 'HEARTBEAT', at: clock.now() });
    },

    join(connection, gameId) {
      runner.deliver(live(connection), { type: 'JOIN_GAME', gameId, at: clock.now() });
      return presence.members(gameId);
    },

    leaveGame(connection) {
      const gameId = live(connection).context.gameId;
      runner.deliver(connection, { type: 'LEAVE_GAME', at: clock.now() });
      return gameId;
    },

    end(connection, reason) {
      runner.deliver(live(connection), { type: 'END', reason, at: clock.now() });
    },

    kick(connectionId) {
      const connection = directory.get(connectionId);
      if (!connection || connection.ended) return false;
      runner.deliver(connection, { type: 'END', reason: 'kicked', at: clock.now() });
      return true;
    },

    whenEnded(connectionId) {
      return effects.endings.get(connectionId) ?? Promise.resolve();
    },

    async settled() {
      while (effects.endings.size > 0) await Promise.all(effects.endings.values());
    },

    socketClosed(connection, socket) {
      if (connection.socket !== socket || connection.ended) return;
      connection.socket = null;
      runner.deliver(connection, { type: 'SOCKET_CLOSED', at: clock.now() });
    },

    info(connection) {
      return live(connection).info(config.nodeId, config.heartbeatMs);
    },

    list(query) {
      return directory.list(query, config.nodeId);
    },

    persistAll() {
      for (const connection of directory.values()) effects.persist(connection);
    },

    /**
     * Each connection loses its socket now, not when the close handshake ends, so the snapshots
     * flushed next are `stale` since this moment and a restart keeps exactly the grace period they
     * had left.
     */
    drain() {
      supervisor.drain();
      const at = clock.now();
      for (const connection of directory.values()) {
        const socket = connection.socket;
        if (!socket) continue;
        connection.socket = null;
        runner.deliver(connection, { type: 'SOCKET_CLOSED', at });
        effects.safely('socket close', () => closeFirmly(socket, CloseCode.serverRestarting, 'server restarting'));
      }
    },

    stop() {
      runner.dispose();
      supervisor.stop();
      for (const connection of directory.values()) options.feeds.endSession(connection.connectionId);
      directory.clear();
    },
  };
}

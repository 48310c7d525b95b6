import { restoredSnapshot } from '../../machines/connection.js';
import type { PresenceIndex } from '../presence/presenceIndex.js';
import { Connection } from './connection.js';
import type { ConnectionDirectory } from './directory.js';
import type { ConnectionEffects } from './effects.js';
import type { MachineRunner } from './runner.js';
import type { RestorableRecord } from './types.js';

export interface RestoreOptions {
  records: RestorableRecord[];
  /** When the previous process was last known alive: the restored sockets are gone since then. */
  lostAt: number;
  directory: ConnectionDirectory;
  presence: PresenceIndex;
  effects: ConnectionEffects;
  runner: MachineRunner;
}

/**
 * Brings back this node's connections from the store. Each comes back `stale` (its socket is gone
 * until it resumes, lost at `lostAt` at the latest) with its game and its original deadlines, and
 * takes `RESTORED` only when something happens to it: a resume, a kick, or its deadline (one
 * scheduler for all of them; restoring 50,000 running machines at once took seconds, and most
 * restored connections either resume or expire long after).
 */
export function restoreConnections(options: RestoreOptions): Connection[] {
  const { records, lostAt, directory, presence, effects, runner } = options;
  const restored: Connection[] = [];
  presence.quietly(() => {
    for (const record of records) {
      const snapshot = restoredSnapshot(record.snapshot, lostAt);
      const connection = new Connection({
        connectionId: record.connectionId,
        userId: record.userId,
        role: 'user',
        ip: record.ip,
        userAgent: record.userAgent,
        resumeToken: null,
        resumeTokenHash: record.resumeTokenHash,
        socket: null,
      });
      const { context } = snapshot;
      connection.restored = snapshot;
      connection.opened = true;
      connection.persistedStaleAt = context.staleAt;
      if (context.gameId) connection.noteGame(context.gameId);
      directory.add(connection);
      presence.update(effects.viewOf(connection, context, 'stale'));
      // What the restore changed (a connection that was live at a crash is `stale` now) must be
      // stored, or a second restart would count its grace period from a later moment.
      if (record.snapshot.value !== 'stale' || record.snapshot.context.socket) effects.persist(connection);
      runner.sleep(connection, context.expiresAt ?? context.staleAt);
      restored.push(connection);
    }
  });
  return restored;
}

import { systemClock, type Clock } from '../clock.js';
import { connectionRecordSchema } from './record.js';
import type { ConnectionRecord, FlushResult, HistoryRecord, LoadResult, PresenceStore } from './types.js';
import { WriteBehind } from './writeBehind.js';

export interface MemoryStoreOptions {
  /** @default 'local' */
  nodeId?: string;
  /** How many ended connections `history` keeps. @default 1000 */
  historyLimit?: number;
  /** The time a flush stamps as the node's last sign of life. @default systemClock */
  clock?: Pick<Clock, 'now'>;
}

function addTo(index: Map<string, Set<string>>, key: string, id: string) {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(id);
}

function removeFrom(index: Map<string, Set<string>>, key: string, id: string) {
  const set = index.get(key);
  if (!set) return;
  set.delete(id);
  if (set.size === 0) index.delete(key);
}

/** The embedded store: everything in this process. The default when `REDIS_URL` is unset. */
export function createMemoryStore(options: MemoryStoreOptions = {}): PresenceStore {
  const nodeId = options.nodeId ?? 'local';
  const historyLimit = options.historyLimit ?? 1000;
  const clock = options.clock ?? systemClock;
  const queue = new WriteBehind();
  const records = new Map<string, ConnectionRecord>();
  const byUser = new Map<string, Set<string>>();
  const byGame = new Map<string, Set<string>>();
  // A ring: `history[next]` is the oldest entry once full.
  const history: HistoryRecord[] = [];
  let next = 0;
  const alive = new Map<string, number>();

  function write(record: ConnectionRecord) {
    const previous = records.get(record.connectionId);
    if (previous?.gameId !== record.gameId && previous?.gameId) {
      removeFrom(byGame, previous.gameId, record.connectionId);
    }
    records.set(record.connectionId, record);
    addTo(byUser, record.userId, record.connectionId);
    if (record.gameId) addTo(byGame, record.gameId, record.connectionId);
  }

  function erase(connectionId: string): boolean {
    const previous = records.get(connectionId);
    if (!previous) return false;
    records.delete(connectionId);
    removeFrom(byUser, previous.userId, connectionId);
    if (previous.gameId) removeFrom(byGame, previous.gameId, connectionId);
    return true;
  }

  function append(record: HistoryRecord) {
    if (history.length < historyLimit) history.push(structuredClone(record));
    else history[next] = structuredClone(record);
    next = (next + 1) % historyLimit;
  }

  return {
    kind: 'memory',
    nodeId,
    open: () => Promise.resolve(),
    status: () => 'up',
    // Process memory does not go away while the process lives.
    onReconnect: () => undefined,
    persist: (id, read) => queue.persist(id, read),
    pending: () => queue.size,
    pendingHistory: () => 0,
    // Process memory answers at once: stored before the caller announces anything.
    end(id, record) {
      queue.forget(id);
      erase(id);
      append(record);
      return Promise.resolve('stored');
    },
    flush() {
      const result: FlushResult = { written: 0, removed: 0 };
      alive.set(nodeId, clock.now());
      for (const [id, read] of queue.take()) {
        if (read) {
          write(read());
          result.written++;
        } else if (erase(id)) {
          result.removed++;
        }
      }
      return Promise.resolve(result);
    },
    loadNode(owner) {
      const result: LoadResult = { records: [], skipped: [], lastAlive: alive.get(owner) ?? null };
      for (const record of records.values()) {
        if (record.nodeId !== owner) continue;
        const parsed = connectionRecordSchema.safeParse(structuredClone(record));
        if (parsed.success) result.records.push(parsed.data);
        else result.skipped.push({ key: record.connectionId, reason: parsed.error.issues[0]?.message ?? 'invalid' });
      }
      return Promise.resolve(result);
    },
    connectionsOfUser: (userId) => Promise.resolve([...(byUser.get(userId) ?? [])]),
    connectionsOfGame: (gameId) => Promise.resolve([...(byGame.get(gameId) ?? [])]),
    appendHistory(record) {
      append(record);
      return Promise.resolve();
    },
    history({ userId, limit }) {
      const out: HistoryRecord[] = [];
      for (let i = 1; i <= history.length && out.length < limit; i++) {
        const entry = history[(next - i + history.length * 2) % history.length];
        if (entry && (userId === undefined || entry.userId === userId)) out.push(structuredClone(entry));
      }
      return Promise.resolve(out);
    },
    close: () => Promise.resolve(),
  };
}

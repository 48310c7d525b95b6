import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../clock.js';
import { parseConnectionRecord, parseHistoryRecord } from './record.js';
import type { EndResult, FlushResult, HistoryRecord, LoadResult, PresenceStore } from './types.js';
import { WriteBehind, type Mark } from './writeBehind.js';

export interface RedisStoreOptions {
  /** `redis://…` */
  url: string;
  /** Key prefix. @default 'presenced' */
  prefix?: string;
  nodeId: string;
  logger: Logger;
  /**
   * How long keys live without being refreshed: a safety net for a node that dies and never comes
   * back, never what correctness rests on. Refreshed at a third of it.
   * @default 3_600_000
   */
  ttlMs?: number;
  /** A PING that takes longer marks Redis down (and a connection that looks open is replaced). @default 1000 */
  pingTimeoutMs?: number;
  /** How often Redis is PINGed. @default 1000 */
  pingIntervalMs?: number;
  historyLimit?: number;
  /**
   * The time a flush stamps as the node's last sign of life (restored deadlines are computed from
   * it, in the server clock's time) and that paces the TTL refresh. @default systemClock
   */
  clock?: Pick<Clock, 'now'>;
}

/** The field of a node's hash that holds its last flush time: connection ids are UUIDs, never this. */
const ALIVE_FIELD = ':alive';

/**
 * Keys, all hash-tagged so that one node's, one user's or one game's keys share a Cluster slot:
 * - `P:{node:N}:conns`  HASH connectionId → record JSON, plus `:alive` → last flush (epoch ms)
 * - `P:{user:U}:conns`  SET of connection ids
 * - `P:{game:G}:conns`  SET of connection ids
 * - `P:{history}`       ZSET of ended-connection JSON scored by end time (ZADD is idempotent; LPUSH is not)
 */
export function redisKeys(prefix: string) {
  return {
    node: (nodeId: string) => `${prefix}:{node:${nodeId}}:conns`,
    user: (userId: string) => `${prefix}:{user:${userId}}:conns`,
    game: (gameId: string) => `${prefix}:{game:${gameId}}:conns`,
    history: `${prefix}:{history}`,
  };
}

/**
 * Where an ended connection is (see `end`):
 * - `storing`: its direct end is under way;
 * - `stored`: written, but a flush that was already under way still holds its older `persist`: that
 *   flush must neither count it written nor, should it fail, put the `persist` back;
 * - `queued`: Redis did not answer; its removal waits in the write-behind queue.
 * An entry goes away once nothing can write the connection again, so there are never more entries
 * than connections ending now, plus queued removals.
 */
type Ending = 'storing' | 'stored' | 'queued';

/** What this store last wrote for a connection: enough to move or clear its index entries. */
interface Written {
  userId: string;
  gameId: string | null;
  /** False after Redis came back: the next write re-adds the index entries even if unchanged. */
  confirmed: boolean;
}

export function createRedisStore(options: RedisStoreOptions): PresenceStore {
  const { nodeId, logger } = options;
  const keys = redisKeys(options.prefix ?? 'presenced');
  const ttlMs = options.ttlMs ?? 3_600_000;
  const pingTimeoutMs = options.pingTimeoutMs ?? 1000;
  const historyLimit = options.historyLimit ?? 1000;
  const clock = options.clock ?? systemClock;
  const queue = new WriteBehind();
  const written = new Map<string, Written>();
  const ending = new Map<string, Ending>();
  /** The flush under way: what it took, and what each connection's index entries become if it succeeds. */
  let inFlight: { taken: Map<string, Mark>; next: Map<string, Written | null> } | null = null;
  const reconnectListeners: (() => void)[] = [];
  /**
   * Ended connections not yet in Redis, oldest first: history goes out with the next flush, in its
   * pipeline, like everything else (and stays here, bounded, while Redis is down).
   */
  let unwrittenHistory: HistoryRecord[] = [];
  /** Taken by the flush under way and not confirmed yet: still served by `history`. */
  let writingHistory: HistoryRecord[] = [];
  let up = false;
  let everUp = false;
  let flushing: Promise<FlushResult> | null = null;
  // The first refresh comes 10 s after start, not in the first flush: right after a restore that flush
  // already rewrites every record, and refreshing every set too (50k sets: 48k EXPIREs) held up
  // readiness. The previous process refreshed them within the last third of the TTL anyway.
  let lastTtlRefresh = clock.now() - ttlMs / 3 + 10_000;
  let closed = false;

  // Deliberate settings (measured: the defaults made a queued command fail only after 73 s):
  // - no offline queue: while disconnected a command fails at once; our write-behind queue keeps the
  //   data, coalesced per connection, and nothing piles up per heartbeat;
  // - one retry per request, a command timeout, and reconnecting forever with a short backoff;
  // - every write is idempotent (HSET, HDEL, SADD, SREM, ZADD), since ioredis resends commands that
  //   were sent but unanswered when the connection dropped.
  const redisOptions: RedisOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1_000),
  };
  const redis = new Redis(options.url, redisOptions);

  function markDown(reason: string) {
    if (up) logger.warn({ reason }, 'redis down: serving from memory, writes queued');
    up = false;
  }

  function markUp() {
    if (up) return;
    const wasDown = everUp;
    up = true;
    everUp = true;
    if (wasDown) {
      logger.info({ pending: queue.size }, 'redis back: rebuilding the stored state');
      for (const entry of written.values()) entry.confirmed = false;
      for (const listener of reconnectListeners) listener();
    }
  }

  redis.on('error', (error: Error) => markDown(error.message));
  redis.on('close', () => markDown('connection closed'));
  redis.on('ready', () => markUp());

  // An idle connection can die silently (a NAT, a paused server): only a PING with a deadline tells.
  const pinger = setInterval(() => {
    if (closed || redis.status !== 'ready') return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`PING took over ${pingTimeoutMs} ms`)), pingTimeoutMs);
    });
    Promise.race([redis.ping(), timeout])
      .then(() => markUp())
      .catch((error: unknown) => {
        markDown(error instanceof Error ? error.message : 'ping failed');
        // The socket may look open while nothing answers (half-open): replace it.
        if (!closed) redis.disconnect(true);
      })
      .finally(() => clearTimeout(timer));
  }, options.pingIntervalMs ?? 1000);
  pinger.unref();

  function indexChanges(pipeline: ReturnType<Redis['pipeline']>, id: string, next: Written | null) {
    const previous = written.get(id);
    const fresh = !previous?.confirmed;
    if (previous && (!next || previous.userId !== next.userId)) pipeline.srem(keys.user(previous.userId), id);
    if (next && (fresh || previous?.userId !== next.userId)) pipeline.sadd(keys.user(next.userId), id);
    if (previous?.gameId && (!next || previous.gameId !== next.gameId)) pipeline.srem(keys.game(previous.gameId), id);
    if (next?.gameId && (fresh || previous?.gameId !== next.gameId)) pipeline.sadd(keys.game(next.gameId), id);
  }

  async function write(): Promise<FlushResult> {
    const result: FlushResult = { written: 0, removed: 0 };
    if (!up) return result;
    const taken = queue.take();
    const now = clock.now();
    const pipeline = redis.pipeline();
    const fields: string[] = [];
    const removed: string[] = [];
    const nextWritten = new Map<string, Written | null>();
    for (const [id, read] of taken) {
      const record = read ? read() : null;
      const next = record ? { userId: record.userId, gameId: record.gameId, confirmed: true } : null;
      indexChanges(pipeline, id, next);
      nextWritten.set(id, next);
      if (record) {
        fields.push(id, JSON.stringify(record));
        result.written++;
      } else {
        removed.push(id);
        if (written.has(id)) result.removed++;
      }
    }
    // One HSET carries every changed record and the node's proof of life.
    pipeline.hset(keys.node(nodeId), ...fields, ALIVE_FIELD, String(now));
    if (removed.length > 0) pipeline.hdel(keys.node(nodeId), ...removed);
    if (now - lastTtlRefresh > ttlMs / 3) refreshTtls(pipeline, nextWritten);
    const history = unwrittenHistory;
    unwrittenHistory = [];
    writingHistory = history;
    for (const record of history) pipeline.zadd(keys.history, record.endedAt, JSON.stringify(record));
    if (history.length > 0) pipeline.zremrangebyrank(keys.history, 0, -historyLimit - 1);
    inFlight = { taken, next: nextWritten };
    try {
      await execAll(pipeline);
    } catch (error) {
      inFlight = null;
      // A connection that ended meanwhile gets neither its older `persist` back nor, once its end is
      // stored, a tombstone any longer; a queued removal keeps its place.
      queue.restore(taken, (id) => {
        const stage = ending.get(id);
        if (stage === 'stored') ending.delete(id);
        return stage === undefined || stage === 'queued';
      });
      unwrittenHistory = [...history, ...unwrittenHistory].slice(-historyLimit);
      writingHistory = [];
      // A write that failed on our side may still have reached Redis (a paused server runs what was
      // sent once it wakes): a connection it carried counts as one Redis may hold, so its end queues
      // a removal, unconfirmed, so that its next write adds its index entries again.
      for (const [id, next] of nextWritten) {
        if (next && !written.has(id) && !ending.has(id)) written.set(id, { ...next, confirmed: false });
      }
      markDown(error instanceof Error ? error.message : 'write failed');
      return { written: 0, removed: 0 };
    }
    inFlight = null;
    writingHistory = [];
    if (now - lastTtlRefresh > ttlMs / 3) lastTtlRefresh = now;
    for (const [id, next] of nextWritten) {
      const stage = ending.get(id);
      // Its end went out after this flush and removed what the flush wrote (one connection to
      // Redis, so the end's HDEL and SREMs ran after this HSET and SADDs).
      if (stage === 'stored') {
        ending.delete(id);
        continue;
      }
      if (next) written.set(id, next);
      else {
        written.delete(id);
        if (stage === 'queued') ending.delete(id);
      }
    }
    return result;
  }

  async function execAll(pipeline: ReturnType<Redis['pipeline']>) {
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([error]) => error);
    if (failed?.[0]) throw failed[0];
  }

  function queueHistory(record: HistoryRecord) {
    unwrittenHistory.push(record);
    if (unwrittenHistory.length > historyLimit) unwrittenHistory.shift();
  }

  async function end(id: string, record: HistoryRecord): Promise<EndResult> {
    queue.forget(id);
    ending.set(id, 'storing');
    const pipeline = redis.pipeline();
    pipeline.hdel(keys.node(nodeId), id);
    pipeline.srem(keys.user(record.userId), id);
    // The game sets it was last written to, and the one a flush under way is adding it to: that
    // flush's SADD reaches Redis before this SREM (same connection, sent earlier).
    const games = new Set([written.get(id)?.gameId, inFlight?.next.get(id)?.gameId]);
    for (const gameId of games) if (gameId) pipeline.srem(keys.game(gameId), id);
    pipeline.zadd(keys.history, record.endedAt, JSON.stringify(record));
    pipeline.zremrangebyrank(keys.history, 0, -historyLimit - 1);
    try {
      // Without an offline queue this fails at once while disconnected, and after the command
      // timeout (2 s) when Redis does not answer.
      await execAll(pipeline);
    } catch (error) {
      // Only a connection Redis may hold needs its removal queued: one written before, or in the
      // flush under way. Any other (opened during an outage, say) leaves nothing behind, so the queue
      // stays bounded by live connections plus those Redis held, however many end meanwhile.
      if (written.has(id) || inFlight?.taken.has(id)) {
        // What the flush under way is adding: the queued removal must take those index entries too.
        const adding = inFlight?.next.get(id);
        if (!written.has(id) && adding) written.set(id, { ...adding, confirmed: false });
        queue.remove(id);
        ending.set(id, 'queued');
      } else {
        ending.delete(id);
      }
      queueHistory(record);
      markDown(error instanceof Error ? error.message : 'end failed');
      return 'queued';
    }
    written.delete(id);
    if (inFlight?.taken.has(id)) ending.set(id, 'stored');
    else ending.delete(id);
    return 'stored';
  }

  function refreshTtls(pipeline: ReturnType<Redis['pipeline']>, pending: Map<string, Written | null>) {
    const seconds = Math.ceil(ttlMs / 1000);
    const sets = new Set<string>();
    const live = new Map(written);
    for (const [id, next] of pending) {
      if (next) live.set(id, next);
      else live.delete(id);
    }
    for (const entry of live.values()) {
      sets.add(keys.user(entry.userId));
      if (entry.gameId) sets.add(keys.game(entry.gameId));
    }
    pipeline.expire(keys.node(nodeId), seconds);
    for (const key of sets) pipeline.expire(key, seconds);
  }

  return {
    kind: 'redis',
    nodeId,

    async open() {
      if (redis.status === 'wait') await redis.connect();
      // After a failed first connect ioredis keeps reconnecting by itself; the store is open once that
      // succeeded (the caller retries), never just because connect() was called once.
      else if (redis.status !== 'ready') throw new Error(`redis is ${redis.status}`);
      markUp();
    },

    status: () => (up ? 'up' : 'down'),

    onReconnect(listener) {
      reconnectListeners.push(listener);
    },

    persist(id, read) {
      if (!ending.has(id)) queue.persist(id, read);
    },
    end,
    pending: () => queue.size,
    pendingHistory: () => unwrittenHistory.length + writingHistory.length,

    flush() {
      // One flush at a time: a second caller waits for the running one, then writes what came since.
      const run = (flushing ?? Promise.resolve({ written: 0, removed: 0 })).then(() => write());
      flushing = run.finally(() => {
        if (flushing === run) flushing = null;
      });
      return run;
    },

    async loadNode(owner) {
      const result: LoadResult = { records: [], skipped: [], lastAlive: null };
      const scan = (cursor: string) => redis.hscan(keys.node(owner), cursor, 'COUNT', 5000);
      // The next batch is asked for before this one is validated: Redis and the parsing overlap.
      for (let pending = scan('0'); ;) {
        const [cursor, chunk] = await pending;
        if (cursor !== '0') pending = scan(cursor);
        for (let i = 0; i < chunk.length; i += 2) {
          const field = chunk[i] ?? '';
          const value = chunk[i + 1] ?? '';
          if (field === ALIVE_FIELD) {
            const at = Number(value);
            result.lastAlive = Number.isSafeInteger(at) && at > 0 ? at : null;
            continue;
          }
          const parsed = parseConnectionRecord(value);
          if (!parsed.ok) result.skipped.push({ key: field, reason: parsed.reason });
          else if (parsed.value.connectionId !== field || parsed.value.nodeId !== owner) {
            result.skipped.push({ key: field, reason: 'record of another connection or node' });
          } else {
            result.records.push(parsed.value);
            if (owner === nodeId) {
              written.set(field, { userId: parsed.value.userId, gameId: parsed.value.gameId, confirmed: true });
            }
          }
        }
        if (cursor === '0') return result;
      }
    },

    connectionsOfUser: (userId) => redis.smembers(keys.user(userId)),
    connectionsOfGame: (gameId) => redis.smembers(keys.game(gameId)),

    appendHistory(record) {
      queueHistory(record);
      return Promise.resolve();
    },

    async history({ userId, limit }) {
      // Newest first: what no flush has confirmed yet (taken before the read, which a flush finishing
      // meanwhile may already include: hence the ids), then what Redis holds.
      const pending = [...writingHistory, ...unwrittenHistory].reverse();
      const seen = new Set(pending.map((record) => record.connectionId));
      const stored = await redis.zrevrange(keys.history, 0, historyLimit - 1);
      const out: HistoryRecord[] = [];
      for (const record of pending) {
        if (userId !== undefined && record.userId !== userId) continue;
        out.push(record);
        if (out.length >= limit) return out;
      }
      for (const text of stored) {
        const parsed = parseHistoryRecord(text);
        if (!parsed.ok || seen.has(parsed.value.connectionId)) continue;
        if (userId !== undefined && parsed.value.userId !== userId) continue;
        out.push(parsed.value);
        if (out.length >= limit) break;
      }
      return out;
    },

    async close() {
      closed = true;
      clearInterval(pinger);
      await flushing?.catch(() => undefined);
      redis.disconnect();
    },
  };
}

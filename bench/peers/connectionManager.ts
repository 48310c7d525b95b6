/**
 * The Redis connection manager that hand-rolled Socket.IO presence servers carry, as users write it
 * before they replace it: one awaited command at a time, a key per connection, per user and per game,
 * each with a one-hour TTL, and a periodic SCAN for stale connections. Deliberately not optimised —
 * it is the pattern being compared against, not a strawman: every step is one users' managers do.
 */
import type { Redis } from 'ioredis';

const TTL_SECONDS = 3600;

const connKey = (sid: string) => `conn:${sid}`;
const userKey = (userId: string) => `user_conn:${userId}`;
const gameKey = (gameId: string) => `game_conns:${gameId}`;

export interface MemberRow {
  sid: string;
  userId: string;
  lastSeen: number;
}

export function createConnectionManager(redis: Redis) {
  async function removeFromGame(sid: string) {
    const gameId = await redis.hget(connKey(sid), 'game_id');
    if (gameId) await redis.srem(gameKey(gameId), sid);
  }

  return {
    /** GET user_conn, clean up an old sid if any, HSET conn, EXPIRE, SET user_conn, EXPIRE. */
    async register(sid: string, userId: string) {
      const old = await redis.get(userKey(userId));
      if (old && old !== sid) {
        await removeFromGame(old);
        await redis.del(connKey(old));
      }
      const now = String(Date.now());
      await redis.hset(connKey(sid), 'user_id', userId, 'game_id', '', 'connected_at', now, 'last_seen', now);
      await redis.expire(connKey(sid), TTL_SECONDS);
      await redis.set(userKey(userId), sid);
      await redis.expire(userKey(userId), TTL_SECONDS);
    },

    /** EXISTS, HSET last_seen, EXPIRE conn, HGET user_id, EXPIRE user_conn. */
    async heartbeat(sid: string): Promise<boolean> {
      if (!(await redis.exists(connKey(sid)))) return false;
      await redis.hset(connKey(sid), 'last_seen', String(Date.now()));
      await redis.expire(connKey(sid), TTL_SECONDS);
      const userId = await redis.hget(connKey(sid), 'user_id');
      if (userId) await redis.expire(userKey(userId), TTL_SECONDS);
      return true;
    },

    /** EXISTS, HGET game_id, SREM the old set if different, HSET game_id, SADD, EXPIRE. */
    async join(sid: string, gameId: string): Promise<boolean> {
      if (!(await redis.exists(connKey(sid)))) return false;
      const current = await redis.hget(connKey(sid), 'game_id');
      if (current && current !== gameId) await redis.srem(gameKey(current), sid);
      await redis.hset(connKey(sid), 'game_id', gameId);
      await redis.sadd(gameKey(gameId), sid);
      await redis.expire(gameKey(gameId), TTL_SECONDS);
      return true;
    },

    /** HGET game_id, SREM, HSET game_id. */
    async leave(sid: string): Promise<string | null> {
      const gameId = await redis.hget(connKey(sid), 'game_id');
      if (gameId) await redis.srem(gameKey(gameId), sid);
      await redis.hset(connKey(sid), 'game_id', '');
      return gameId || null;
    },

    /** SMEMBERS, then HGETALL per sid. */
    async members(gameId: string): Promise<MemberRow[]> {
      const rows: MemberRow[] = [];
      for (const sid of await redis.smembers(gameKey(gameId))) {
        const hash = await redis.hgetall(connKey(sid));
        if (hash['user_id']) rows.push({ sid, userId: hash['user_id'], lastSeen: Number(hash['last_seen']) });
      }
      return rows;
    },

    /** On disconnect: HGET game_id + SREM, GET user_conn (DEL if still ours), DEL conn. */
    async unregister(sid: string, userId: string) {
      await removeFromGame(sid);
      if ((await redis.get(userKey(userId))) === sid) await redis.del(userKey(userId));
      await redis.del(connKey(sid));
    },

    /** The stale sweep: SCAN conn:* and HGETALL each, removing those not seen for `staleMs`. */
    async sweep(staleMs: number): Promise<number> {
      let cursor = '0';
      let removed = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', 'conn:*', 'COUNT', 100);
        cursor = next;
        for (const key of keys) {
          const hash = await redis.hgetall(key);
          if (Date.now() - Number(hash['last_seen'] ?? 0) > staleMs) {
            const sid = key.slice('conn:'.length);
            await removeFromGame(sid);
            await redis.del(key);
            removed++;
          }
        }
      } while (cursor !== '0');
      return removed;
    },
  };
}

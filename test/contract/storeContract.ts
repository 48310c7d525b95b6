import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initialContext } from '../../machines/connection.js';
import type { ConnectionRecord, HistoryRecord, PresenceStore } from '../../src/store/types.js';

const NODE = 'node-a';

/**
 * One suite for every store. A store factory gets a fresh, isolated namespace per test (for Redis:
 * its own key prefix); `reopen` opens a second store on the same namespace (another process).
 */
export interface StoreFixture {
  store: PresenceStore;
  reopen(): Promise<PresenceStore>;
  dispose(): Promise<void>;
}

/** A record as the server writes it: a real persisted snapshot of the connection machine. */
export function record(overrides: Partial<ConnectionRecord> & { connectionId: string }): ConnectionRecord {
  const userId = overrides.userId ?? 'alice';
  const lastSeen = overrides.lastSeen ?? 1_700_000_000_000;
  const gameId = overrides.gameId ?? null;
  const context = {
    ...initialContext({
      connectionId: overrides.connectionId,
      userId,
      at: lastSeen,
      timing: { staleMs: 1000, expireMs: 5000, inGameExpireMs: 5000, warnMs: 0 },
    }),
    gameId,
  };
  return {
    v: 1,
    userId,
    nodeId: NODE,
    state: gameId ? 'inGame' : 'connected',
    gameId,
    lastSeen,
    expiresAt: null,
    resumeTokenHash: 'c2hhMjU2LW9mLWEtcmVzdW1lLXRva2Vu',
    ip: '127.0.0.1',
    userAgent: 'test',
    snapshot: {
      status: 'active',
      value: gameId ? 'inGame' : 'connected',
      historyValue: {},
      context,
      children: {},
    },
    ...overrides,
  };
}

async function loaded(store: PresenceStore, connectionId: string): Promise<ConnectionRecord | null> {
  const { records } = await store.loadNode(NODE);
  return records.find((r) => r.connectionId === connectionId) ?? null;
}

function ended(connectionId: string, userId: string, endedAt: number): HistoryRecord {
  return {
    connectionId,
    userId,
    nodeId: 'node-a',
    ip: null,
    userAgent: null,
    connectedAt: endedAt - 1000,
    endedAt,
    reason: 'expired',
    games: ['g1'],
  };
}

export function describeStoreContract(name: string, open: () => Promise<StoreFixture>) {
  describe(`store contract: ${name}`, () => {
    let fixture: StoreFixture;
    let store: PresenceStore;
    beforeEach(async () => {
      fixture = await open();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.dispose();
    });

    it('writes nothing until flushed, then the latest version', async () => {
      store.persist('c1', () => record({ connectionId: 'c1' }));
      expect(store.pending()).toBe(1);
      expect(await loaded(store, 'c1')).toBeNull();
      await store.flush();
      expect(store.pending()).toBe(0);
      expect(await loaded(store, 'c1')).toEqual(record({ connectionId: 'c1' }));
    });

    it('coalesces: many puts of one connection are one write, read once, at flush time', async () => {
      let reads = 0;
      let lastSeen = 0;
      for (let i = 0; i < 1000; i++) {
        lastSeen = 1_700_000_000_000 + i;
        store.persist('c1', () => {
          reads++;
          return record({ connectionId: 'c1', lastSeen });
        });
      }
      expect(store.pending()).toBe(1);
      const result = await store.flush();
      expect(result.written).toBe(1);
      expect(reads).toBe(1);
      expect((await loaded(store, 'c1'))?.lastSeen).toBe(1_700_000_000_999);
    });

    it('a flush with nothing marked writes nothing', async () => {
      expect(await store.flush()).toEqual({ written: 0, removed: 0 });
    });

    it('is idempotent: writing the same record twice leaves one copy in every index', async () => {
      const r = record({ connectionId: 'c1', gameId: 'g1' });
      store.persist('c1', () => r);
      await store.flush();
      store.persist('c1', () => r);
      await store.flush();
      expect(await store.connectionsOfGame('g1')).toEqual(['c1']);
      expect(await store.connectionsOfUser('alice')).toEqual(['c1']);
    });

    it('keeps indexes by user and by game that follow a move', async () => {
      store.persist('c1', () => record({ connectionId: 'c1', userId: 'alice', gameId: 'g1' }));
      store.persist('c2', () => record({ connectionId: 'c2', userId: 'alice', gameId: null }));
      store.persist('c3', () => record({ connectionId: 'c3', userId: 'bob', gameId: 'g1' }));
      await store.flush();
      expect((await store.connectionsOfUser('alice')).sort()).toEqual(['c1', 'c2']);
      expect((await store.connectionsOfGame('g1')).sort()).toEqual(['c1', 'c3']);
      store.persist('c1', () => record({ connectionId: 'c1', userId: 'alice', gameId: 'g2' }));
      await store.flush();
      expect(await store.connectionsOfGame('g1')).toEqual(['c3']);
      expect(await store.connectionsOfGame('g2')).toEqual(['c1']);
    });

    it('loads the records of its node, as written, and when the node was last alive', async () => {
      const before = Date.now();
      store.persist('c1', () => record({ connectionId: 'c1', state: 'stale', expiresAt: 5 }));
      await store.flush();
      const result = await store.loadNode(NODE);
      expect(result.records).toEqual([record({ connectionId: 'c1', state: 'stale', expiresAt: 5 })]);
      expect(result.skipped).toEqual([]);
      expect(result.lastAlive).toBeGreaterThanOrEqual(before);
      expect(result.lastAlive).toBeLessThanOrEqual(Date.now());
      expect((await store.loadNode('node-b')).records).toEqual([]);
    });

    it('a record that fails validation is skipped with a reason, never thrown', async () => {
      const good = record({ connectionId: 'good' });
      store.persist('good', () => good);
      store.persist('bad', () => ({ ...record({ connectionId: 'bad' }), v: 2 }) as unknown as ConnectionRecord);
      store.persist('alien', () => ({ ...record({ connectionId: 'alien' }), snapshot: { value: 'flying' } }));
      store.persist('swapped', () => ({ ...record({ connectionId: 'swapped' }), snapshot: good.snapshot }));
      await store.flush();
      const result = await store.loadNode(NODE);
      expect(result.records.map((r) => r.connectionId)).toEqual(['good']);
      expect(result.skipped.map((s) => s.key).sort()).toEqual(['alien', 'bad', 'swapped']);
      for (const skipped of result.skipped) expect(skipped.reason).not.toBe('');
    });

    it('reports itself up and opens without error', async () => {
      await store.open();
      expect(store.status()).toBe('up');
      expect(store.nodeId).toBe(NODE);
    });

    it('a record read back cannot be changed by mutating it', async () => {
      store.persist('c1', () => record({ connectionId: 'c1' }));
      await store.flush();
      const first = await loaded(store, 'c1');
      if (first) first.userId = 'mallory';
      expect((await loaded(store, 'c1'))?.userId).toBe('alice');
    });

    it('history is newest first, filtered by user and limited', async () => {
      for (let i = 0; i < 5; i++) {
        await store.appendHistory(ended(`c${i}`, i % 2 ? 'bob' : 'alice', 1_700_000_000_000 + i));
      }
      expect((await store.history({ limit: 10 })).map((h) => h.connectionId)).toEqual(['c4', 'c3', 'c2', 'c1', 'c0']);
      expect((await store.history({ limit: 2 })).map((h) => h.connectionId)).toEqual(['c4', 'c3']);
      expect((await store.history({ userId: 'bob', limit: 10 })).map((h) => h.connectionId)).toEqual(['c3', 'c1']);
      expect(await store.history({ userId: 'nobody', limit: 10 })).toEqual([]);
    });

    it('history is bounded', async () => {
      for (let i = 0; i < 1100; i++) await store.appendHistory(ended(`c${i}`, 'alice', 1_700_000_000_000 + i));
      const all = await store.history({ limit: 10_000 });
      expect(all.length).toBe(1000);
      expect(all[0]?.connectionId).toBe('c1099');
      expect(all.at(-1)?.connectionId).toBe('c100');
    });

    it('end removes the record and its index entries and appends its history, without a flush', async () => {
      store.persist('c1', () => record({ connectionId: 'c1', gameId: 'g1' }));
      store.persist('c2', () => record({ connectionId: 'c2', gameId: 'g1' }));
      await store.flush();
      expect(await store.end('c1', ended('c1', 'alice', 1_700_000_000_000))).toBe('stored');
      expect(store.pending()).toBe(0);
      expect(await loaded(store, 'c1')).toBeNull();
      expect(await store.connectionsOfGame('g1')).toEqual(['c2']);
      expect(await store.connectionsOfUser('alice')).toEqual(['c2']);
      expect((await store.history({ limit: 10 })).map((h) => h.connectionId)).toEqual(['c1']);
      const other = await fixture.reopen();
      expect(await loaded(other, 'c1')).toBeNull();
      expect((await other.history({ limit: 10 })).map((h) => h.connectionId)).toEqual(['c1']);
    });

    it('end drops a pending put: no later flush writes the ended connection again', async () => {
      store.persist('c1', () => record({ connectionId: 'c1', gameId: 'g1' }));
      await store.flush();
      store.persist('c1', () => record({ connectionId: 'c1', gameId: 'g2' }));
      await store.end('c1', ended('c1', 'alice', 1_700_000_000_000));
      expect(store.pending()).toBe(0);
      expect(await store.flush()).toEqual({ written: 0, removed: 0 });
      expect(await loaded(store, 'c1')).toBeNull();
      expect(await store.connectionsOfGame('g1')).toEqual([]);
      expect(await store.connectionsOfGame('g2')).toEqual([]);
    });

    it('end while a flush is writing the connection: the flush cannot bring it back', async () => {
      store.persist('c1', () => record({ connectionId: 'c1', gameId: 'g1' }));
      await store.flush();
      // The flush takes a move to g2; the end comes while it is under way.
      store.persist('c1', () => record({ connectionId: 'c1', gameId: 'g2' }));
      const flushing = store.flush();
      const ending = store.end('c1', ended('c1', 'alice', 1_700_000_000_000));
      await Promise.all([flushing, ending]);
      expect(await ending).toBe('stored');
      await store.flush();
      expect(await loaded(store, 'c1')).toBeNull();
      expect(await store.connectionsOfGame('g1')).toEqual([]);
      expect(await store.connectionsOfGame('g2')).toEqual([]);
      expect(await store.connectionsOfUser('alice')).toEqual([]);
      expect(await store.history({ limit: 10 })).toHaveLength(1);
    });

    it('end of a connection never written leaves nothing queued, only its history', async () => {
      store.persist('c1', () => record({ connectionId: 'c1' }));
      expect(await store.end('c1', ended('c1', 'alice', 1_700_000_000_000))).toBe('stored');
      expect(store.pending()).toBe(0);
      expect(store.pendingHistory()).toBe(0);
      await store.flush();
      expect(await loaded(store, 'c1')).toBeNull();
      expect((await store.history({ limit: 10 })).map((h) => h.connectionId)).toEqual(['c1']);
    });

    it('another store on the same namespace sees what was flushed', async () => {
      store.persist('c1', () => record({ connectionId: 'c1', gameId: 'g1' }));
      await store.appendHistory(ended('c0', 'alice', 1_700_000_000_000));
      await store.flush();
      const other = await fixture.reopen();
      expect((await other.history({ limit: 10 })).map((h) => h.connectionId)).toEqual(['c0']);
      expect(await loaded(other, 'c1')).toEqual(record({ connectionId: 'c1', gameId: 'g1' }));
      expect(await other.connectionsOfGame('g1')).toEqual(['c1']);
    });
  });
}

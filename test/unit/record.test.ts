import { describe, expect, expectTypeOf, it } from 'vitest';
import type { z } from 'zod';
import type { ConnectionContext, PersistedConnection } from '../../machines/connection.js';
import { endReasons } from '../../src/protocol.js';
import { connectionRecordSchema, historyRecordSchema, parseHistoryRecord, type Same } from '../../src/store/record.js';
import type { HistoryRecord } from '../../src/store/types.js';

const record = (games: string[], reason = 'left') =>
  JSON.stringify({
    connectionId: 'c1',
    userId: 'alice',
    nodeId: 'n1',
    ip: null,
    userAgent: null,
    connectedAt: 1,
    endedAt: 2,
    reason,
    games,
  });

describe('history records read back from a store', () => {
  it('keep the 32 most recent games of a record written before the bound, instead of skipping it', () => {
    const games = Array.from({ length: 40 }, (_, i) => `g${i}`);
    const parsed = parseHistoryRecord(record(games));
    expect(parsed).toEqual({ ok: true, value: expect.objectContaining({ games: games.slice(-32) }) as unknown });
  });

  it('refuse a record whose games are not game ids', () => {
    expect(parsed(record(['not a game id!']))).toBe(false);
  });
});

describe('stored records and the machine agree, as the compiler sees them', () => {
  // tsc checks these (npm test runs it over test/): a field added to the machine's context and not
  // to the schema, or the other way round, fails the typecheck.
  it('a record read back holds exactly the persisted snapshot of a connection machine', () => {
    type Snapshot = z.output<typeof connectionRecordSchema>['snapshot'];
    expectTypeOf<Snapshot>().toEqualTypeOf<PersistedConnection>();
    expectTypeOf<Snapshot['context']>().toEqualTypeOf<ConnectionContext>();
    expectTypeOf<z.output<typeof historyRecordSchema>>().toEqualTypeOf<HistoryRecord>();
  });

  it('`Same` tells apart a type with one more field, even an optional one, in either direction', () => {
    expectTypeOf<Same<{ a: number }, { a: number }>>().toEqualTypeOf<true>();
    expectTypeOf<Same<{ a: number }, { a: number; b?: number }>>().toEqualTypeOf<false>();
    expectTypeOf<Same<{ a: number; b: number }, { a: number }>>().toEqualTypeOf<false>();
    expectTypeOf<Same<{ a: number }, { a: number | null }>>().toEqualTypeOf<false>();
  });

  it('take every end reason and nothing else', () => {
    for (const reason of endReasons) expect(parsed(record(['g1'], reason))).toBe(true);
    expect(parsed(record(['g1'], 'moved'))).toBe(false);
  });
});

function parsed(text: string): boolean {
  return parseHistoryRecord(text).ok;
}

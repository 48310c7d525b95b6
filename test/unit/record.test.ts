import { describe, expect, it } from 'vitest';
import { parseHistoryRecord } from '../../src/store/record.js';

const record = (games: string[]) =>
  JSON.stringify({
    connectionId: 'c1',
    userId: 'alice',
    nodeId: 'n1',
    ip: null,
    userAgent: null,
    connectedAt: 1,
    endedAt: 2,
    reason: 'left',
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

function parsed(text: string): boolean {
  return parseHistoryRecord(text).ok;
}

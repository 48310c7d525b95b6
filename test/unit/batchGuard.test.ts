import { describe, expect, it } from 'vitest';
import { isBatchLargerThan } from '../../src/wire/batchGuard.js';

const frame = (text: string) => Buffer.from(text, 'utf8');
const batch = (n: number) => frame(JSON.stringify(Array.from({ length: n }, (_, id) => ({ id, method: 'query' }))));

describe('isBatchLargerThan', () => {
  it('counts the calls of a batch', () => {
    expect(isBatchLargerThan(batch(100), 100)).toBe(false);
    expect(isBatchLargerThan(batch(101), 100)).toBe(true);
    expect(isBatchLargerThan(batch(1), 1)).toBe(false);
    expect(isBatchLargerThan(batch(2), 1)).toBe(true);
    expect(isBatchLargerThan(frame('[]'), 1)).toBe(false);
    expect(isBatchLargerThan(frame(' \n[{"id":1},{"id":2}]'), 1)).toBe(true);
  });

  it('does not count commas inside strings, objects or nested arrays', () => {
    const call = { id: 1, params: { path: 'a,b', input: { json: [1, 2, 3, '[,],{,}', 'q"u\\"o,te'] } } };
    expect(isBatchLargerThan(frame(JSON.stringify([call, call])), 2)).toBe(false);
    expect(isBatchLargerThan(frame(JSON.stringify([call, call, call])), 2)).toBe(true);
  });

  it('leaves anything that is not an array to tRPC', () => {
    expect(isBatchLargerThan(frame('{"id":1,"a":[1,2,3,4,5]}'), 2)).toBe(false);
    expect(isBatchLargerThan(frame('not json,,,,'), 2)).toBe(false);
    expect(isBatchLargerThan(frame(''), 2)).toBe(false);
  });

  it('stops at the first call over the limit: 100,000 calls cost no more than 101', () => {
    const huge = frame(`[${'{"id":1},'.repeat(100_000)}{"id":1}]`);
    const started = performance.now();
    for (let i = 0; i < 100; i++) expect(isBatchLargerThan(huge, 100)).toBe(true);
    expect(performance.now() - started).toBeLessThan(50);
  });
});

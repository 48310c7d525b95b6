import { describe, expect, it } from 'vitest';
import { retryDelay } from '../../src/client/index.js';

describe('client reconnect delay', () => {
  it('doubles per attempt up to the ceiling, with jitter between half and all of it', () => {
    const low = () => 0;
    const high = () => 0.999_999;
    expect([0, 1, 2, 3].map((attempt) => retryDelay(attempt, 250, 10_000, high))).toEqual([250, 500, 1000, 2000]);
    expect([0, 1, 2, 3].map((attempt) => retryDelay(attempt, 250, 10_000, low))).toEqual([125, 250, 500, 1000]);
    expect(retryDelay(20, 250, 10_000, high)).toBe(10_000);
    expect(retryDelay(20, 250, 10_000, low)).toBe(5_000);
  });

  it('spreads clients that reconnect at the same attempt', () => {
    const delays = new Set(Array.from({ length: 50 }, () => retryDelay(4)));
    expect(delays.size).toBeGreaterThan(10);
    for (const delay of delays) expect(delay).toBeGreaterThanOrEqual(2_000);
  });
});

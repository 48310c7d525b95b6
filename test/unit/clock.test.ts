import { describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../src/store/memory.js';

/** A clock that says what the test tells it. */
const clockAt = (now: number) => ({ now: () => now });

describe('the injected clock is where stored times come from', () => {
  it("a flush stamps the node's last sign of life with the store's clock", async () => {
    // Restored deadlines are computed from that stamp and the records' own times, which the
    // server's clock wrote: both must come from the same clock.
    const store = createMemoryStore({ nodeId: 'n1', clock: clockAt(1_234_567) });
    await store.open();
    await store.flush();
    expect((await store.loadNode('n1')).lastAlive).toBe(1_234_567);
    await store.close();
  });
});

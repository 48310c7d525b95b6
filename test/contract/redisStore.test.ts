import { pino } from 'pino';
import { afterAll, beforeAll } from 'vitest';
import { createRedisStore } from '../../src/store/redis.js';
import type { PresenceStore } from '../../src/store/types.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { describeStoreContract } from './storeContract.js';

let redis: TestRedis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis[Symbol.asyncDispose]();
});

describeStoreContract('redis', async () => {
  const prefix = redis.prefix();
  const opened: PresenceStore[] = [];
  const open = async () => {
    const store = createRedisStore({ url: redis.url, prefix, nodeId: 'node-a', logger: pino({ level: 'silent' }) });
    await store.open();
    opened.push(store);
    return store;
  };
  return {
    store: await open(),
    reopen: open,
    dispose: () => Promise.all(opened.map((s) => s.close())).then(() => undefined),
  };
});

import { createMemoryStore } from '../../src/store/memory.js';
import { describeStoreContract } from './storeContract.js';

describeStoreContract('memory', () => {
  const store = createMemoryStore({ nodeId: 'node-a' });
  return Promise.resolve({
    store,
    // The embedded store lives in this process: a second handle on the namespace is the same store.
    reopen: () => Promise.resolve(store),
    dispose: () => store.close(),
  });
});

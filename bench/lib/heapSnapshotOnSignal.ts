/**
 * Preloaded into a benchmark child (`node --import tsx --import …/heapSnapshotOnSignal.ts`): on
 * SIGUSR2 it writes a heap snapshot to `heapSnapshotPath(pid, n)` for the n-th signal, under a
 * temporary name first, so the file appears only once it is complete.
 */
import { renameSync } from 'node:fs';
import { writeHeapSnapshot } from 'node:v8';
import { heapSnapshotPath } from './heap.js';

let taken = 0;
process.on('SIGUSR2', () => {
  const path = heapSnapshotPath(process.pid, ++taken);
  renameSync(writeHeapSnapshot(`${path}.partial`), path);
});

/**
 * Scenario (full run only): what an idle connection keeps on the heap, by part. bare ws and presenced
 * (memory store) run with bench/lib/heapSnapshotOnSignal.ts preloaded; a heap snapshot after 50
 * warm-up connections and one after 1,000 more (2 s idle) are compared by `heapGrowthByPart`.
 */
import { existsSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeClients, connectMany, withPeer, type Peer, type Scenario } from '../lib/harness.js';
import { heapGrowthByPart, heapSnapshotPath, OTHER, PARTS, SHARED } from '../lib/heap.js';
import { fmt, table } from '../lib/report.js';
import { bareWs, presencedMemory } from '../peers/index.js';

const WARM = 50;
const IDLE = 1_000;
const preload = ['--import', 'tsx', '--import', new URL('../lib/heapSnapshotOnSignal.ts', import.meta.url).pathname];

const growth = (peer: Peer) =>
  withPeer(
    peer,
    async (server) => {
      const snapshot = async (n: number) => {
        const path = heapSnapshotPath(server.pid, n);
        process.kill(server.pid, 'SIGUSR2');
        while (!existsSync(path)) await sleep(50);
        return path;
      };
      const clients = await connectMany(peer, server, WARM, 'warm');
      const files: string[] = [];
      try {
        await sleep(1_000);
        files.push(await snapshot(1));
        clients.push(...(await connectMany(peer, server, IDLE, 'idle')));
        await sleep(2_000);
        files.push(await snapshot(2));
        return heapGrowthByPart(files[0] ?? '', files[1] ?? '', IDLE);
      } finally {
        await closeClients(clients);
        for (const file of files) rmSync(file, { force: true });
      }
    },
    { nodeArgs: preload },
  );

const run: Scenario['run'] = async (options) => {
  const peers = [bareWs, presencedMemory];
  const byPeer: Map<string, number>[] = [];
  for (const peer of peers) {
    const parts = await growth(peer);
    byPeer.push(parts);
    const total = [...parts.values()].reduce((a, b) => a + b, 0);
    options.figure('heap B per idle connection (after GC)', peer.label, total);
    options.log(`  ${peer.label}: ${fmt(total)} B of heap per idle connection`);
  }
  const names = [...PARTS.map((entry) => entry.part), SHARED, OTHER];
  const rows = names
    .filter((name) => byPeer.some((parts) => (parts.get(name) ?? 0) >= 0.5))
    .map((name) => [name, ...byPeer.map((parts) => ((parts.get(name) ?? 0) >= 0.5 ? fmt(parts.get(name) ?? 0) : '—'))]);
  rows.push(['total', ...byPeer.map((parts) => fmt([...parts.values()].reduce((a, b) => a + b, 0)))]);
  return [
    {
      title: 'Memory per idle connection: where the heap goes',
      method:
        `Each peer with bench/lib/heapSnapshotOnSignal.ts preloaded: a heap snapshot after ${WARM} warm-up connections (and 1 s), another after ${fmt(IDLE)} more connections and 2 s idle. ` +
        'Every object of the second snapshot that the first did not have is charged, by its own size, to the nearest dominator (itself included) that belongs to a part: a closure or class by its script URL (a package or a folder of presenced), a plain object by the first method it holds, a native handle by its constructor name (bench/lib/heap.ts `PARTS`). Bytes per connection.',
      table: table(['part', ...peers.map((peer) => `${peer.label} (B/conn)`)], rows),
      notes: [
        'A snapshot is taken after a full GC, so this is what a connection retains; RSS (the connect scenario) also holds garbage not yet collected and the heap’s free space.',
        'An object reachable from two parts is charged to what dominates both (for ids and other strings often only the roots: the "shared" row); plain objects, arrays, promises and Node built-ins are charged to whoever holds them.',
      ],
    },
  ];
};

export const heap: Scenario = { name: 'heap', fullOnly: true, run };

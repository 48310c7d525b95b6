/**
 * Scenario (full run only): what an idle connection keeps on the heap, by owner. Each of bare ws and
 * presenced (memory store) runs with bench/lib/heapSnapshotOnSignal.ts preloaded; a heap snapshot
 * after 50 warm-up connections and one after 1,000 more (2 s idle) are compared by
 * `heapGrowthByOwner`, and the owners are grouped by the part of the stack they belong to.
 */
import { existsSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { heapGrowthByOwner, heapSnapshotPath } from '../lib/heapSnapshot.js';
import { table, type Section } from '../lib/markdown.js';
import type { Peer } from '../lib/peer.js';
import { closeClients, connectMany, withPeer, type ScenarioOptions } from '../lib/peerRun.js';
import type { ServerProcess } from '../lib/serverProcess.js';
import { fmt } from '../lib/stats.js';
import { bareWs, presencedMemory } from './peers.js';

const WARM = 50;
const IDLE = 1_000;
const preload = ['--import', 'tsx', '--import', new URL('../lib/heapSnapshotOnSignal.ts', import.meta.url).pathname];

/** Owners (as `heapGrowthByOwner` names them) by the part of the stack they belong to; first match wins. */
const components: [string, RegExp][] = [
  [
    'ws: WebSocket, receiver, sender, server registry',
    /^(GuardedWebSocket|WebSocket|Receiver|Sender)$|^Set \.clients$|\[ws\]/,
  ],
  [
    'net.Socket: streams, libuv handle, bound callbacks',
    /^(Socket|WritableState|ReadableState|TCP|TCPSocketWrap)$|native_bind/,
  ],
  [
    'tRPC: per-socket handler scope and closures, AbortController, keep-alive timers',
    /\[@trpc\/server\]|scope of (req, client|timeout, ping|scheduleTimeout|client$)|^EventTarget$|^AbortController$|^Promise$|^IncomingMessage$/,
  ],
  [
    'presenced transport: context, rate limiter, socket state, listeners',
    /SocketContext|RateLimiter|Map \.sockets|scope of (trpcListener|ws, context|this, ws|handle|onCut|ws, refusedAnswered)|\[src\/transport\.ts\]/,
  ],
  [
    'connection actor: XState actor, mailbox, system registries, its timer',
    /^Actor$|^Mailbox$|Map \.(children|keyedActors|pending)|reverseKeyedActors|\[xstate\]|\[machines\/|scope of self, name, at/,
  ],
  [
    'connection handle and its indexes (src/connections/registry.ts)',
    /^ConnectionHandle$|^EventEmitter$|Map \.(handles|byToken)|\[src\/connections\.ts\]/,
  ],
  ['presence index', /PresenceIndex|Map \.(users|connections|games)|^Date$/],
  ['memory store: records and their index', /Map \.(records|byUser)/],
  ['strings and values shared by several of the above', /^\(shared\)$/],
];

function componentOf(owner: string): string {
  return components.find(([, pattern]) => pattern.test(owner))?.[0] ?? 'other';
}

async function snapshot(server: ServerProcess, n: number): Promise<string> {
  const path = heapSnapshotPath(server.pid, n);
  process.kill(server.pid, 'SIGUSR2');
  while (!existsSync(path)) await sleep(50);
  return path;
}

async function growth(peer: Peer): Promise<Map<string, number>> {
  return withPeer(
    peer,
    async (server) => {
      const clients = await connectMany(peer, server, WARM, 'warm');
      const files: string[] = [];
      try {
        await sleep(1_000);
        files.push(await snapshot(server, 1));
        clients.push(...(await connectMany(peer, server, IDLE, 'idle')));
        await sleep(2_000);
        files.push(await snapshot(server, 2));
        const [before, after] = files;
        if (!before || !after) throw new Error('missing heap snapshot');
        return heapGrowthByOwner(before, after, IDLE);
      } finally {
        await closeClients(clients);
        for (const file of files) rmSync(file, { force: true });
      }
    },
    preload,
  );
}

export async function runMemoryBreakdown(options: ScenarioOptions): Promise<Section[]> {
  const peers = [bareWs, presencedMemory];
  const byPeer = new Map<Peer, Map<string, number>>();
  for (const peer of peers) {
    const owners = await growth(peer);
    byPeer.set(peer, owners);
    const total = [...owners.values()].reduce((a, b) => a + b, 0);
    options.log(`  ${peer.label}: ${fmt(total)} B of heap per idle connection`);
  }
  const grouped = new Map<Peer, Map<string, number>>();
  for (const [peer, owners] of byPeer) {
    const groups = new Map<string, number>();
    for (const [owner, bytes] of owners) groups.set(componentOf(owner), (groups.get(componentOf(owner)) ?? 0) + bytes);
    grouped.set(peer, groups);
  }
  const names = [...components.map(([name]) => name), 'other'];
  const total = (peer: Peer) => [...(grouped.get(peer)?.values() ?? [])].reduce((a, b) => a + b, 0);
  const cell = (peer: Peer, name: string) => {
    const bytes = grouped.get(peer)?.get(name) ?? 0;
    return bytes >= 0.5 ? fmt(bytes) : '—';
  };
  const rows = names
    .filter((name) => peers.some((peer) => (grouped.get(peer)?.get(name) ?? 0) >= 0.5))
    .map((name) => [name, ...peers.map((peer) => cell(peer, name))]);
  rows.push(['total', ...peers.map((peer) => fmt(total(peer)))]);
  const ours = [...(byPeer.get(presencedMemory) ?? [])].sort((a, b) => b[1] - a[1]).slice(0, 15);
  return [
    {
      title: 'Memory per idle connection: where the heap goes',
      method:
        `Each peer with bench/lib/heapSnapshotOnSignal.ts preloaded: a heap snapshot after ${WARM} warm-up connections (and 1 s), another after ${fmt(IDLE)} more connections and 2 s idle. ` +
        'Every object of the second snapshot that the first did not have is charged, by its own size, to the nearest dominator that names an owner (a constructor or closure, or the container it was added to); owners are grouped by the part of the stack they belong to. Bytes per connection.',
      table: [
        table(['part', ...peers.map((peer) => `${peer.label} (B/conn)`)], rows),
        '',
        `Largest owners in ${presencedMemory.label}:`,
        '',
        table(
          ['owner', 'B/conn', 'part'],
          ours.map(([owner, bytes]) => [`\`${owner}\``, fmt(bytes), componentOf(owner)]),
        ),
      ].join('\n'),
      notes: [
        'A snapshot is taken after a full GC, so this is what a connection retains; RSS (the connect scenario) also holds garbage not yet collected and the heap’s free space.',
        'The grouping goes by names and is approximate: an object reachable from two parts is charged to what dominates both (for UUIDs and other strings, often nothing but the roots: the "shared" row).',
      ],
      targets: [],
    },
  ];
}

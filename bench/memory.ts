/**
 * Scenario 3: memory per idle connection. The server is a child process; the clients are raw `ws`
 * sockets that authenticate (connectionParams) and make one `session.info` query, then stay idle.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { WebSocket } from 'ws';
import { table, verdict, type Section } from './lib/markdown.js';
import { closeAll, inBatches, openRawSession } from './lib/rawSession.js';
import { startServerProcess } from './lib/serverProcess.js';
import { fmt } from './lib/stats.js';

/** Sockets opened before the baseline, so JIT-compiled code and pools are not counted per connection. */
const WARM = 200;
const CONCURRENCY = 100;
const STEPS = 4;
/** 100,000 connections (the default PRESENCED_MAX_CONNECTIONS) in 2 GB of RSS. */
const TARGET_KB = (2 * 1024 * 1024) / 100_000;

const mb = (bytes: number) => fmt(bytes / 1024 / 1024, 1);

export async function runMemory(options: { quick: boolean; log: (line: string) => void }): Promise<Section[]> {
  const total = options.quick ? 2_000 : 10_000;
  await using server = await startServerProcess();
  const sockets: WebSocket[] = [];
  try {
    sockets.push(...(await inBatches(WARM, 50, (i) => openRawSession(server.wsUrl, `warm-${i}`))));
    await sleep(1_000);
    const baseline = server.rssBytes();
    const rows: string[][] = [['0 (baseline, after ' + WARM + ' warm-up sockets)', mb(baseline), '—', '—']];

    const opened = performance.now();
    const step = total / STEPS;
    for (let s = 1; s <= STEPS; s++) {
      const offset = sockets.length;
      sockets.push(...(await inBatches(step, CONCURRENCY, (i) => openRawSession(server.wsUrl, `idle-${offset + i}`))));
      const rss = server.rssBytes();
      rows.push([`${fmt(s * step)} (right after opening)`, mb(rss), fmt((rss - baseline) / 1024 / (s * step), 1), '—']);
    }
    const openSeconds = (performance.now() - opened) / 1000;
    options.log(`  ${total} idle sessions open in ${fmt(openSeconds, 1)} s (server pid ${server.pid})`);
    await sleep(2_000);
    const after = server.rssBytes();
    const perConnection = (after - baseline) / 1024 / total;
    const counted = await server.connections();
    const met = perConnection <= TARGET_KB;
    rows.push([
      `${fmt(total)} (after 2 s idle)`,
      mb(after),
      fmt(perConnection, 1),
      `≤ ${fmt(TARGET_KB, 1)} (proposed: 100k connections in 2 GB) — ${verdict(met)}`,
    ]);
    const countMet = counted === total + WARM;
    return [
      {
        title: 'Memory per idle connection',
        method:
          `\`presenced serve\` as a child process; ${fmt(total)} raw \`ws\` sockets (${CONCURRENCY} opening at a time) each send tRPC's \`connectionParams\` (dev auth) and one ` +
          '`session.info` query, then stay idle. Server RSS from /proc/<pid>/status (VmRSS); nothing is forced (no GC call).',
        table: table(['idle connections', 'server RSS (MB)', 'KB per connection', 'target'], rows),
        notes: [
          `Opening rate: ${fmt(total / openSeconds)} authenticated sessions per second (upgrade + connectionParams + actor + \`session.info\`, ${CONCURRENCY} in flight).`,
          `\`/health\` counted ${fmt(counted)} connections (expected ${fmt(total + WARM)}).`,
          'RSS includes the V8 heap\'s headroom (not yet collected garbage and free space), so it is an upper bound on what one connection retains; the in-process figure "heap KB/conn" above is the retained heap without the socket.',
        ],
        targets: [
          { name: `memory: ≤ ${fmt(TARGET_KB, 1)} KB RSS per idle connection (proposed)`, verdict: verdict(met) },
          { name: 'memory: every socket counted by /health', verdict: verdict(countMet) },
        ],
      },
    ];
  } finally {
    await closeAll(sockets);
  }
}

/**
 * Scenario: connect N clients (50 at a time) to each peer; connections per second, and the server's
 * RSS growth per connection after 2 s idle (over a baseline taken after 50 warm-up connections).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { table, type Section } from '../lib/markdown.js';
import { closeClients, connectMany, recordFigure, withPeer, type ScenarioOptions } from '../lib/peerRun.js';
import { fmt } from '../lib/stats.js';
import { peers } from './peers.js';

const WARM = 50;

/** A promise and its resolve. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

export async function runConnect(options: ScenarioOptions): Promise<Section[]> {
  const count = options.quick ? 300 : 2_000;
  const rows = new Map<string, string[]>();
  // Each peer's 2 s idle overlaps the next peer's start and warm-up: an idle server's RSS does not
  // depend on what else runs. The next peer's timed connects start only once the previous peer's
  // clients are closed.
  let previousClosed = Promise.resolve();
  const runs: Promise<void>[] = [];
  const failures: unknown[] = [];
  for (const peer of peers) {
    const mayConnect = previousClosed;
    const idle = gate();
    const closed = gate();
    previousClosed = closed.opened;
    runs.push(
      withPeer(peer, async (server) => {
        const clients = await connectMany(peer, server, WARM, 'warm');
        try {
          await sleep(options.quick ? 500 : 1_000);
          await mayConnect;
          const baseline = server.rssBytes();
          const started = performance.now();
          clients.push(...(await connectMany(peer, server, count, 'idle')));
          const seconds = (performance.now() - started) / 1000;
          idle.open();
          await sleep(2_000);
          const perConnectionKb = (server.rssBytes() - baseline) / 1024 / count;
          const rate = count / seconds;
          recordFigure(options.figures, 'connections per second', peer.label, rate);
          recordFigure(options.figures, 'server RSS KB per idle connection', peer.label, perConnectionKb);
          rows.set(peer.label, [peer.label, fmt(rate), fmt(baseline / 1024 / 1024, 1), fmt(perConnectionKb, 1)]);
          options.log(`  ${peer.label}: ${fmt(rate)} connects/s, ${fmt(perConnectionKb, 1)} KB/conn`);
        } finally {
          idle.open();
          await closeClients(clients);
        }
      })
        .catch((error: unknown) => void failures.push(error))
        .finally(() => {
          idle.open();
          closed.open();
        }),
    );
    await idle.opened;
  }
  await Promise.all(runs);
  if (failures.length) throw failures[0];
  return [
    {
      title: `Connect ${fmt(count)} clients`,
      method:
        `Each peer its own child process (and its own redis-server where it uses Redis). After ${WARM} warm-up connections and 1 s (QUICK 0.5 s), ` +
        `${fmt(count)} clients connect, 50 at a time, each until it can make calls (bare ws: the server's \`ready\` message; Socket.IO: \`ready\` once the manager registered it in Redis; ` +
        'presenced: `connectionParams` + a `session.info` answer). RSS (VmRSS from /proc) 2 s after the last connect, minus the baseline, ÷ connections.',
      table: table(
        ['peer', 'connections/s', 'baseline RSS (MB)', 'RSS KB per idle connection'],
        peers.flatMap((peer) => {
          const row = rows.get(peer.label);
          return row ? [row] : [];
        }),
      ),
      notes: [
        'Connections per second is bounded by the benchmark process (the clients) as much as by the server: all share 2 cores.',
        "While one peer sits idle for its 2 s, the next one starts and makes its warm-up connections (an idle server's RSS does not depend on that); its timed connects begin once the previous peer's clients are closed.",
        'RSS includes garbage not yet collected (no GC is forced in any peer), so it is an upper bound on what a connection retains.',
      ],
      targets: [],
    },
  ];
}

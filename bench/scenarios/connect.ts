/**
 * Scenario: connect N clients (50 at a time) to each peer; connections per second, the server's CPU
 * per 1,000 connects, and its RSS growth per connection after 2 s idle (over a baseline taken after
 * 50 warm-up connections).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { closeClients, connectMany, withPeer, type Scenario } from '../lib/harness.js';
import { fmt, table } from '../lib/report.js';
import { peers } from '../peers/index.js';

const WARM = 50;

/** A promise and its resolve. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

async function run(options: Parameters<Scenario['run']>[0]) {
  const count = options.quick ? 300 : 2_000;
  const rows = new Map<string, string[]>();
  // An idle server's RSS does not depend on what else runs: while one peer sits idle for its 2 s, the
  // next one starts, warms up and makes its timed connects. No peer's timed connects overlap another
  // peer's (or the closing of the one before the previous); a peer closes its clients only once the
  // next one's timed connects are done.
  const idle = peers.map(() => gate());
  const closed = peers.map(() => gate());
  const done = Promise.resolve();
  const runs: Promise<void>[] = [];
  const failures: unknown[] = [];
  for (const [i, peer] of peers.entries()) {
    runs.push(
      withPeer(peer, async (server) => {
        const clients = await connectMany(peer, server, WARM, 'warm');
        try {
          await sleep(options.quick ? 500 : 1_000);
          await Promise.all([idle[i - 1]?.opened ?? done, closed[i - 2]?.opened ?? done]);
          const baseline = server.rssBytes();
          const started = performance.now();
          const cpuStart = server.cpuSeconds();
          clients.push(...(await connectMany(peer, server, count, 'idle')));
          const cpuPer1000 = ((server.cpuSeconds() - cpuStart) / count) * 1000;
          const seconds = (performance.now() - started) / 1000;
          idle[i]?.open();
          await sleep(2_000);
          const perConnectionKb = (server.rssBytes() - baseline) / 1024 / count;
          const rate = count / seconds;
          options.figure('connections per second', peer.label, rate);
          options.figure('server CPU s per 1,000 connects', peer.label, cpuPer1000);
          options.figure('server RSS KB per idle connection', peer.label, perConnectionKb);
          rows.set(peer.label, [
            peer.label,
            fmt(rate),
            fmt(cpuPer1000, 3),
            fmt(baseline / 1024 / 1024, 1),
            fmt(perConnectionKb, 1),
          ]);
          options.log(
            `  ${peer.label}: ${fmt(rate)} connects/s, ${fmt(cpuPer1000, 3)} CPU-s/1000, ${fmt(perConnectionKb, 1)} KB/conn`,
          );
          await (idle[i + 1]?.opened ?? done);
        } finally {
          idle[i]?.open();
          await closeClients(clients);
        }
      })
        .catch((error: unknown) => void failures.push(error))
        .finally(() => {
          idle[i]?.open();
          closed[i]?.open();
        }),
    );
    await idle[i]?.opened;
  }
  await Promise.all(runs);
  if (failures.length) throw failures[0];
  return [
    {
      title: `Connect ${fmt(count)} clients`,
      method:
        `Each peer its own child process (and its own redis-server where it uses Redis). After ${WARM} warm-up connections and 1 s (QUICK 0.5 s), ` +
        `${fmt(count)} clients connect, 50 at a time, each until it can make calls (bare ws: the server's \`ready\` message; Socket.IO: \`ready\` once the manager registered it in Redis; ` +
        'presenced: `connectionParams` + a `session.info` answer). Server CPU (utime + stime from /proc, the server process only) over the timed connects; RSS (VmRSS from /proc) 2 s after the last connect, minus the baseline, ÷ connections.',
      table: table(
        ['peer', 'connections/s', 'server CPU s / 1,000 connects', 'baseline RSS (MB)', 'RSS KB per idle connection'],
        peers.flatMap((peer) => {
          const row = rows.get(peer.label);
          return row ? [row] : [];
        }),
      ),
      notes: [
        'Connections per second is bounded by the benchmark process (the clients) as much as by the server: all share 2 cores.',
        "While one peer sits idle for its 2 s, the next one starts, warms up and makes its timed connects (an idle server's RSS does not depend on that); no two peers' timed connects overlap, nor one's with another's closing.",
        'RSS includes garbage not yet collected (no GC is forced in any peer), so it is an upper bound on what a connection retains.',
      ],
    },
  ];
}

export const connect: Scenario = { name: 'connect', run };

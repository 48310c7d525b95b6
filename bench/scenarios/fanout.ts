/**
 * Scenario: one presence event. 200 members watch one game; then, one at a time, an already
 * connected client joins it and leaves again. Per join: the time until all 200 received the join
 * event, the joiner's own reply (is it held behind the broadcast?), and the server's CPU per join +
 * leave (both broadcast to the 200).
 */
import { closeClients, connectMany, eachPeer, type Scenario } from '../lib/harness.js';
import { fmt, quantile, table } from '../lib/report.js';
import { peers } from '../peers/index.js';

const MEMBERS = 200;
const GAME = 'fanout';
const TIMEOUT_MS = 10_000;

const run: Scenario['run'] = async (options) => {
  // 100 joins in the full run, so that p99 is the second slowest, not the slowest.
  const joins = options.quick ? 10 : 100;
  const rows: string[][] = [];
  await eachPeer(peers, async (peer, server) => {
    let expecting = '';
    let seen = 0;
    let allSeen: (() => void) | undefined;
    const members = await connectMany(peer, server, MEMBERS, 'member');
    // Connected beforehand, so that the CPU window holds joins and leaves only.
    const joiners = await connectMany(peer, server, joins, 'joiner');
    try {
      await Promise.all(
        members.map(async (member) => {
          await member.join(GAME);
          await member.watch(GAME, (userId) => {
            if (userId === expecting && ++seen === MEMBERS) allSeen?.();
          });
        }),
      );
      const received: number[] = [];
      const replied: number[] = [];
      const cpuStart = server.cpuSeconds();
      for (const [i, joiner] of joiners.entries()) {
        expecting = `joiner-${i}`;
        seen = 0;
        const done = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${seen}/${MEMBERS} saw ${expecting}`)), TIMEOUT_MS);
          allSeen = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        const started = performance.now();
        await Promise.all([
          joiner.join(GAME).then(() => replied.push(performance.now() - started)),
          done.then(() => received.push(performance.now() - started)),
        ]);
        await joiner.leave();
      }
      const cpuMs = ((server.cpuSeconds() - cpuStart) / joins) * 1000;
      received.sort((a, b) => a - b);
      replied.sort((a, b) => a - b);
      const cells = {
        [`join + leave to ${MEMBERS}: server CPU ms per pair`]: cpuMs,
        [`fan-out to ${MEMBERS}: all received p50 (ms)`]: quantile(received, 0.5),
        [`fan-out to ${MEMBERS}: all received p99 (ms)`]: quantile(received, 0.99),
        [`fan-out to ${MEMBERS}: joiner's reply p50 (ms)`]: quantile(replied, 0.5),
        [`fan-out to ${MEMBERS}: joiner's reply p99 (ms)`]: quantile(replied, 0.99),
      };
      for (const [measure, value] of Object.entries(cells)) options.figure(measure, peer.label, value);
      rows.push([peer.label, ...Object.values(cells).map((value) => fmt(value, 2)), fmt(received.at(-1) ?? NaN, 2)]);
      options.log(`  ${peer.label}: all received p50 ${fmt(quantile(received, 0.5), 2)} ms, ${fmt(cpuMs, 2)} CPU-ms`);
    } finally {
      await closeClients([...members, ...joiners]);
    }
  });
  return [
    {
      title: `One presence event: a join seen by ${MEMBERS} members`,
      method:
        `${MEMBERS} clients join game \`${GAME}\` and watch it (bare ws and Socket.IO: room membership; presenced: a \`presence.game\` subscription, ready after its \`sync\`); ${joins} more clients connect. ` +
        `Then each of those in turn joins the game and, once all ${MEMBERS} members received its join event, leaves it (every peer broadcasts the leave too). ` +
        'Times from sending the join; server CPU is utime + stime from /proc of the server process (not its Redis) over all the joins and leaves, ÷ joins.',
      table: table(
        [
          'peer',
          'server CPU ms per join + leave',
          'all received p50',
          'p99',
          'joiner reply p50',
          'p99',
          'all received max (ms)',
        ],
        rows,
      ),
      notes: [
        `p99 is the nearest-rank 99th percentile of ${joins} samples (${joins >= 100 ? 'the slowest but one' : 'the slowest'}); all clients are in the benchmark process, on the same 2 cores, so the times include it reading ${MEMBERS} frames.`,
        'Every peer is started (with its redis-server) before the first is measured, and stopped once measured: an idle server costs the one measured next to nothing.',
        'The hand-rolled pattern broadcasts through @socket.io/redis-adapter (local delivery plus a PUBLISH for other nodes) after its Redis commands; plain Socket.IO and bare ws in process; presenced + Redis delivers locally and writes the join behind.',
      ],
    },
  ];
};

export const fanout: Scenario = { name: 'fanout', run };

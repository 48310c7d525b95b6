/**
 * Scenario: 200 members watch one game; one more client joins; the time from sending the join until
 * all 200 have received the join event. Repeated (the joiner leaves between joins), p50/p99.
 */
import { nowMicros, type MicrosWindow } from '../lib/cpuProfile.js';
import { table, type Section } from '../lib/markdown.js';
import type { Peer, PeerClient } from '../lib/peer.js';
import { closeClients, connectMany, eachPeer, recordFigure, type ScenarioOptions } from '../lib/peerRun.js';
import type { ServerProcess } from '../lib/serverProcess.js';
import { fmt, quantile } from '../lib/stats.js';
import { peers } from './peers.js';

const MEMBERS = 200;
const GAME = 'fanout';
const TIMEOUT_MS = 10_000;

/**
 * Times `joins` joins of fresh clients seen by all `MEMBERS` watchers: ms per join, and the window of
 * the joins (setup excluded).
 */
export async function fanoutLoad(
  peer: Peer,
  server: ServerProcess,
  joins: number,
): Promise<{ times: number[]; window: MicrosWindow }> {
  let expecting = '';
  let seen = 0;
  let allSeen: (() => void) | undefined;
  const members = await connectMany(peer, server, MEMBERS, 'member');
  const joiners: PeerClient[] = [];
  try {
    await Promise.all(
      members.map(async (member) => {
        await member.join(GAME);
        await member.watch(GAME, (userId) => {
          if (userId === expecting && ++seen === MEMBERS) allSeen?.();
        });
      }),
    );
    const times: number[] = [];
    const from = nowMicros();
    for (let i = 0; i < joins; i++) {
      const userId = `joiner-${i}`;
      const joiner = await peer.connect(server, userId);
      joiners.push(joiner);
      expecting = userId;
      seen = 0;
      const done = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${seen}/${MEMBERS} saw ${userId} in ${TIMEOUT_MS} ms`)),
          TIMEOUT_MS,
        );
        allSeen = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      const started = performance.now();
      // The time until all members received the join; the joiner's own answer is not part of it.
      await Promise.all([joiner.join(GAME), done.then(() => times.push(performance.now() - started))]);
      await joiner.leave();
    }
    return { times, window: { from, to: nowMicros() } };
  } finally {
    await closeClients([...members, ...joiners]);
  }
}

export async function runFanout(options: ScenarioOptions): Promise<Section[]> {
  // 100 joins in the full run, so that p99 is the second slowest, not the slowest (with 20 it was).
  const joins = options.quick ? 5 : 100;
  const rows: string[][] = [];
  await eachPeer(peers, async (peer, server) => {
    const times = (await fanoutLoad(peer, server, joins)).times.sort((a, b) => a - b);
    recordFigure(options.figures, `fan-out to ${MEMBERS}: p50 (ms)`, peer.label, quantile(times, 0.5));
    recordFigure(options.figures, `fan-out to ${MEMBERS}: p99 (ms)`, peer.label, quantile(times, 0.99));
    rows.push([peer.label, fmt(quantile(times, 0.5), 2), fmt(quantile(times, 0.99), 2), fmt(times.at(-1) ?? NaN, 2)]);
    options.log(`  ${peer.label}: p50 ${fmt(quantile(times, 0.5), 2)} ms`);
  });
  return [
    {
      title: `Fan-out: one join seen by ${MEMBERS} members`,
      method:
        `${MEMBERS} clients join game \`${GAME}\` and watch it (bare ws and Socket.IO: room membership; presenced: a \`presence.game\` subscription, ready after its \`sync\`). ` +
        `Then ${joins} times: a fresh client joins; time from sending the join until all ${MEMBERS} received its join event (all clients in the benchmark process); the joiner then leaves.`,
      table: table(['peer', 'p50 (ms)', 'p99 (ms)', 'max (ms)'], rows),
      notes: [
        `p99 is the nearest-rank 99th percentile of ${joins} samples (${joins >= 100 ? 'the slowest but one' : 'the slowest'}); the time includes the benchmark process reading ${MEMBERS} frames, on the same 2 cores.`,
        'Every peer is started (with its redis-server) before the first is measured, and stopped once measured: an idle server costs the one measured next to nothing.',
        'Socket.IO broadcasts through @socket.io/redis-adapter (local delivery plus a PUBLISH for other nodes); presenced + Redis delivers locally and writes the join behind.',
      ],
      targets: [],
    },
  ];
}

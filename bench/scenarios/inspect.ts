/**
 * Scenario: the cost of `PRESENCED_INSPECT`: the same closed-loop loads with inspection off and on
 * (a local Stately relay from `createInspectorServer`, as `presenced inspect` starts), server CPU
 * from /proc. Heartbeats are dropped before any inspection work; joins and leaves are transitions.
 */
import { createInspectorServer } from '@statelyai/inspect/server';
import { closeClients, connectMany, withPeer, type PeerClient, type Scenario } from '../lib/harness.js';
import { freePort } from '../lib/redis.js';
import { fmt, ratio, table } from '../lib/report.js';
import { presencedMemory } from '../peers/index.js';

const CLIENTS = 100;

const loads: [string, (client: PeerClient, i: number) => Promise<void>][] = [
  ['heartbeat', (client) => client.heartbeat()],
  ['join + leave', (client, i) => client.join(`inspect-${i % 10}`).then(() => client.leave())],
];

const run: Scenario['run'] = async (options) => {
  const ms = options.quick ? 2_000 : 5_000;
  const port = await freePort();
  const relay = createInspectorServer({ port, autoOpen: false });
  const rows: string[][] = [];
  const measure = (env: Record<string, string>, load: (client: PeerClient, i: number) => Promise<void>) =>
    withPeer(
      presencedMemory,
      async (server) => {
        const clients = await connectMany(presencedMemory, server, CLIENTS, 'inspect');
        const loop = async (duration: number) => {
          let done = 0;
          const until = performance.now() + duration;
          await Promise.all(
            clients.map(async (client, i) => {
              for (; performance.now() < until; done++) await load(client, i);
            }),
          );
          return done;
        };
        try {
          await loop(Math.min(1_000, ms / 2));
          const cpuStart = server.cpuSeconds();
          const done = await loop(ms);
          return { perSecond: done / (ms / 1000), cpuPer1000: ((server.cpuSeconds() - cpuStart) / done) * 1000 };
        } finally {
          await closeClients(clients);
        }
      },
      { env },
    );
  try {
    for (const [name, load] of loads) {
      const off = await measure({}, load);
      const on = await measure({ PRESENCED_INSPECT: `ws://127.0.0.1:${port}` }, load);
      options.figure(
        `inspection on ÷ off, server CPU per ${name}`,
        presencedMemory.label,
        on.cpuPer1000 / off.cpuPer1000,
      );
      options.log(`  ${name}: off ${fmt(off.cpuPer1000, 3)}, on ${fmt(on.cpuPer1000, 3)} CPU-s/1000`);
      rows.push([
        name,
        fmt(off.perSecond),
        fmt(on.perSecond),
        fmt(off.cpuPer1000, 3),
        fmt(on.cpuPer1000, 3),
        ratio(on.cpuPer1000 / off.cpuPer1000),
      ]);
    }
  } finally {
    relay.stop();
  }
  return [
    {
      title: 'Cost of inspection (PRESENCED_INSPECT, presenced memory store)',
      method:
        `${CLIENTS} raw clients in closed loops for ${ms / 1000} s each way (after up to 1 s of warm-up), once without and once with \`PRESENCED_INSPECT\` pointing at a local relay (\`createInspectorServer\`, as \`presenced inspect\` runs). ` +
        'Server CPU is utime + stime from /proc over the measured window.',
      table: table(
        ['load', 'per s (off)', 'per s (on)', 'server CPU s / 1,000 (off)', '/ 1,000 (on)', 'on ÷ off'],
        rows,
      ),
      notes: [
        'Heartbeats are dropped before @statelyai/inspect defers and stringifies anything; every join and leave is a transition and is serialised, scrubbed and sent. Inspection is off by default: this is what turning it on costs.',
      ],
    },
  ];
};

export const inspect: Scenario = { name: 'inspect', run };

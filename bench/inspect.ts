/**
 * The cost of `PRESENCED_INSPECT`: the same loads with inspection off and on (a local Stately relay
 * from `createInspectorServer`, as `presenced inspect` starts), server CPU read from /proc.
 * Heartbeats are dropped before any inspection work; joins and leaves are transitions and are sent.
 */
import { createInspectorServer } from '@statelyai/inspect/server';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PresenceClient } from '../src/client/index.js';
import { table, type Section } from './lib/markdown.js';
import { openTypedClients } from './lib/typedClients.js';
import { startServerProcess } from './lib/serverProcess.js';
import { fmt } from './lib/stats.js';
import { freePort } from '../test/support/redis.js';

const CLIENTS = 100;

type Load = (client: PresenceClient, i: number) => Promise<number>;

/** One heartbeat: one call. */
const heartbeat: Load = async (client) => {
  await client.api.session.heartbeat.mutate();
  return 1;
};

/** A join and a leave: two transitions of the connection actor, both inspected. */
const churn: Load = async (client, i) => {
  await client.api.game.join.mutate({ gameId: `inspect-${i % 10}` });
  await client.api.game.leave.mutate();
  return 1;
};

async function measure(env: Record<string, string>, load: Load, ms: number) {
  await using server = await startServerProcess({ PRESENCED_RATE_LIMIT: '1000000', ...env });
  const clients: PresenceClient[] = [];
  try {
    await openTypedClients(server.wsUrl, CLIENTS, 'inspect', clients);
    const run = async (duration: number) => {
      let done = 0;
      const until = performance.now() + duration;
      await Promise.all(
        clients.map(async (client, i) => {
          while (performance.now() < until) {
            // Not `done += await …`: that reads `done` before the await and loses the other loops' counts.
            const n = await load(client, i);
            done += n;
          }
        }),
      );
      return done;
    };
    await run(Math.min(1_000, ms / 2));
    const cpuStart = server.cpuSeconds();
    const done = await run(ms);
    const cpu = server.cpuSeconds() - cpuStart;
    return { done, perSecond: done / (ms / 1000), cpuPer1000: (cpu / done) * 1000 };
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await sleep(100);
  }
}

export async function runInspect(options: { quick: boolean; log: (line: string) => void }): Promise<Section[]> {
  const ms = options.quick ? 2_000 : 5_000;
  const port = await freePort();
  const relay = createInspectorServer({ port, autoOpen: false });
  const on = { PRESENCED_INSPECT: `ws://127.0.0.1:${port}` };
  const rows: string[][] = [];
  try {
    for (const [name, load] of [
      ['heartbeat', heartbeat],
      ['join + leave', churn],
    ] as const) {
      const off = await measure({}, load, ms);
      const inspected = await measure(on, load, ms);
      options.log(
        `  ${name}: off ${fmt(off.cpuPer1000, 3)} CPU-s/1k, on ${fmt(inspected.cpuPer1000, 3)} CPU-s/1k (${fmt(inspected.perSecond)}/s)`,
      );
      rows.push([
        name,
        fmt(off.perSecond),
        fmt(inspected.perSecond),
        fmt(off.cpuPer1000, 3),
        fmt(inspected.cpuPer1000, 3),
        `${fmt(inspected.cpuPer1000 / off.cpuPer1000, 2)}×`,
      ]);
    }
  } finally {
    relay.stop();
  }
  return [
    {
      title: 'Cost of inspection (PRESENCED_INSPECT)',
      method:
        `\`presenced serve\` as a child process, ${CLIENTS} typed clients in closed loops for ${ms / 1000} s each way, ` +
        'once without and once with `PRESENCED_INSPECT` pointing at a local relay (`createInspectorServer`, as `presenced inspect` runs). ' +
        'Server CPU is utime+stime from /proc over the measured window.',
      table: table(
        ['load', 'per s (off)', 'per s (on)', 'server CPU-s per 1,000 (off)', 'per 1,000 (on)', 'on ÷ off'],
        rows,
      ),
      notes: [
        'Heartbeats are dropped before @statelyai/inspect defers and stringifies anything, so they cost about the same with inspection on; every join and leave is a transition and is serialised, scrubbed and sent.',
        'Inspection is a debugging tool, off by default: the figures say what turning it on in production costs.',
      ],
      targets: [],
    },
  ];
}

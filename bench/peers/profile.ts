/**
 * Where presenced spends its CPU under a load: the same load against a `presenced serve` child
 * started with `node --cpu-prof`, the profile (written when SIGTERM ends it) summarised by self time
 * over the samples of the measured window (start-up and setup excluded).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summariseProfile, type MicrosWindow } from '../lib/cpuProfile.js';
import { table, type Section } from '../lib/markdown.js';
import type { Peer } from '../lib/peer.js';
import { closeClients, connectMany, withPeer, type ScenarioOptions } from '../lib/peerRun.js';
import type { ServerProcess } from '../lib/serverProcess.js';
import { fmt } from '../lib/stats.js';
import { fanoutLoad } from './fanout.js';
import { HEARTBEAT_CLIENTS, heartbeatLoad } from './heartbeat.js';

export type ProfiledLoad = 'heartbeat' | 'fan-out';

interface ProfiledRun {
  what: string;
  window: MicrosWindow;
}

const loads: Record<ProfiledLoad, (peer: Peer, server: ServerProcess, quick: boolean) => Promise<ProfiledRun>> = {
  async heartbeat(peer, server, quick) {
    const clients = await connectMany(peer, server, HEARTBEAT_CLIENTS, 'prof');
    try {
      const load = await heartbeatLoad(clients, server, undefined, 1_000, quick ? 3_000 : 8_000);
      return {
        what: `${HEARTBEAT_CLIENTS} closed-loop clients, the ${fmt(load.count)} heartbeats after 1 s of warm-up`,
        window: load.window,
      };
    } finally {
      await closeClients(clients);
    }
  },
  async 'fan-out'(peer, server, quick) {
    const { times, window } = await fanoutLoad(peer, server, quick ? 10 : 30);
    return { what: `200 subscribed members, the ${times.length} joins and leaves after the setup`, window };
  },
};

/** One profile per load, each titled with `verdicts[load]` (e.g. "target missed"). */
export async function runProfiles(
  peer: Peer,
  verdicts: Partial<Record<ProfiledLoad, string>>,
  options: Pick<ScenarioOptions, 'quick' | 'log'>,
): Promise<Section[]> {
  const sections: Section[] = [];
  for (const [load, verdict] of Object.entries(verdicts) as [ProfiledLoad, string][]) {
    const dir = mkdtempSync(join(tmpdir(), 'presenced-prof-'));
    try {
      const run = await withPeer(peer, (server) => loads[load](peer, server, options.quick), [
        '--cpu-prof',
        '--cpu-prof-dir',
        dir,
      ]);
      const { functions, origins, busy } = summariseProfile(dir, run.window);
      options.log(`  profiled ${load}: top ${functions[0]?.name ?? '?'}`);
      sections.push({
        title: `Profile: ${peer.label}, ${load} (${verdict})`,
        method:
          `\`node --cpu-prof\` on the server child under the ${load} load (${run.what}); self time as a share of the samples ` +
          `of that window that were not idle (the server was busy ${fmt(busy * 100)}% of it).`,
        table: [
          table(
            ['origin', 'self time'],
            origins.map((entry) => [entry.name, `${fmt(entry.share * 100, 1)}%`]),
          ),
          '',
          table(
            ['function (file:line)', 'self time'],
            functions.map((entry) => [`\`${entry.name}\``, `${fmt(entry.share * 100, 1)}%`]),
          ),
        ].join('\n'),
        targets: [],
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return sections;
}

/**
 * Where presenced spends its CPU under a load whose target it missed: the same load against a
 * `presenced serve` child started with `node --cpu-prof`, the profile (written when SIGTERM ends it)
 * summarised by self time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { summariseProfile } from '../lib/cpuProfile.js';
import { table, type Section } from '../lib/markdown.js';
import type { Peer } from '../lib/peer.js';
import { closeClients, connectMany, withPeer, type ScenarioOptions } from '../lib/peerRun.js';
import type { ServerProcess } from '../lib/serverProcess.js';
import { fmt } from '../lib/stats.js';
import { fanoutLoad } from './fanout.js';
import { HEARTBEAT_CLIENTS, heartbeatLoad } from './heartbeat.js';

export type ProfiledLoad = 'heartbeat' | 'fan-out';

const loads: Record<ProfiledLoad, (peer: Peer, server: ServerProcess, quick: boolean) => Promise<string>> = {
  async heartbeat(peer, server, quick) {
    const clients = await connectMany(peer, server, HEARTBEAT_CLIENTS, 'prof');
    try {
      const load = await heartbeatLoad(clients, server, undefined, 1_000, quick ? 3_000 : 8_000);
      return `${HEARTBEAT_CLIENTS} closed-loop clients, ${fmt(load.count)} heartbeats measured (and 1 s of warm-up)`;
    } finally {
      await closeClients(clients);
    }
  },
  async 'fan-out'(peer, server, quick) {
    const times = await fanoutLoad(peer, server, quick ? 10 : 20);
    return `200 subscribed members, ${times.length} joins (setup included)`;
  },
};

export async function runProfiles(
  peer: Peer,
  misses: readonly ProfiledLoad[],
  options: Pick<ScenarioOptions, 'quick' | 'log'>,
): Promise<Section[]> {
  const sections: Section[] = [];
  for (const miss of misses) {
    const dir = mkdtempSync(join(tmpdir(), 'presenced-prof-'));
    try {
      const what = await withPeer(peer, (server) => loads[miss](peer, server, options.quick), [
        '--cpu-prof',
        '--cpu-prof-dir',
        dir,
      ]);
      const { functions, origins } = summariseProfile(dir);
      options.log(`  profiled ${miss}: top ${functions[0]?.name ?? '?'}`);
      sections.push({
        title: `Profile: ${peer.label}, ${miss} (target missed)`,
        method: `\`node --cpu-prof\` on the server child under the ${miss} load (${what}); self time as a share of the non-idle samples of the whole process life (start-up included).`,
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

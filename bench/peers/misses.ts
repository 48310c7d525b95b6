/**
 * For each target presenced misses in a run, what is left and why, as far as the profiles and heap
 * snapshots of the runs behind bench/results/peers-fixes.md show it. Only what a run misses is
 * printed; a target it meets needs no excuse.
 */
import { SCALE_MEASURE } from './scaleRatio.js';

const byMeasure: Record<string, string> = {
  'server + Redis CPU s per 1,000 heartbeats':
    '**Heartbeat CPU.** Heartbeats no longer go through tRPC (src/wire/heartbeatFastPath.ts). What is left on top of a bare `ws` echo is mostly the connection actor: every heartbeat is a `HEARTBEAT` event through XState (`macrostep`, `microstep`, `resolveAssign`: about a quarter of the profile below), which the protocol requires (any call refreshes `lastSeen` and brings a stale connection back) and which lives in machines/ and src/connections/, left unchanged here. The rest is parsing and validating the call (JSON, zod) and the kernel’s `writev`, which costs more per reply while the clients wait on the server than while the server waits on them (bare ws), so the ratio also moves with how loaded the machine is.',
  'server RSS KB per idle connection':
    '**Memory per connection.** The heap breakdown below (and in peers-fixes.md) shows where it goes: the connection actor with its system registries and timer, the handle, presence and store entries (machines/, src/connections.ts and the stores: not changed here), tRPC’s per-socket handler (a dozen closures, an `AbortController` with its listener maps), then ws and the socket, which are what bare ws has in total. RSS adds old-space slack on top of the retained heap. Getting to 1.5× bare ws would take a lighter connection actor (no per-actor XState system entries and timer maps) and a transport without tRPC’s per-socket state.',
  'fan-out to 200: p99 (ms)':
    '**Fan-out.** Presence events are serialised once per game and, after the first, written to each subscriber directly (src/wire/encoding.ts, src/wire/directEvents.ts): the 200 frames go out synchronously within the join. What remains is the way to that point (the join call through tRPC and the actor) and the server’s other work in the same turns: the joiner’s own reply carries the 200-member list through superjson (the superjson rows of the fan-out profile), and its garbage. The tail is decided by a few slow samples: one GC pause or one descheduling on the shared 2 cores.',
  [SCALE_MEASURE]:
    '**Connect cost at 50k.** The median of five fresh runs is the figure; the per-run ratios in the scale section show how far apart single runs land on this machine. Where the far connects go (bench/results/issue2.md): GC, whose marking work grows with the heap, and XState copying a shard’s and the supervisor’s `children` on every spawn (machines/ and src/connections.ts, not changed here).',
  'Redis commands per heartbeat':
    '**Redis commands per heartbeat.** A heartbeat only moves `lastSeen` in memory; see the Redis cost section.',
};

export function explainMisses(missed: ReadonlySet<string>): string[] {
  const lines = [...missed].flatMap((measure) => (byMeasure[measure] ? [`- ${byMeasure[measure]}`] : []));
  return lines.length ? ['## Where presenced misses', '', ...lines, ''] : [];
}

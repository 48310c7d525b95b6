/**
 * Proposed fixes for the targets presenced misses, written from the profiles of a run (see the
 * profile sections of bench/results/peers.md). Proposals only: changing src/ is the lead's call.
 */
const byMeasure: Record<string, string[]> = {
  'server + Redis CPU s per 1,000 heartbeats': [
    '- **Heartbeat CPU** (profile: tRPC ≈ ¼ of self time, led by `_objectSpread2` — the ctx spread of every middleware — plus a per-call `AbortController`, JSON + superjson encode/decode, xstate `microstep`; `writev` and GC for the rest): ' +
      'answer `session.heartbeat` on a fast path in `src/transport.ts` before tRPC: recognise the heartbeat frame (`method: "mutation"`, `path: "session.heartbeat"`), run the rate limiter and `touch`, and write a pre-shaped superjson reply; every other call keeps going through tRPC. ' +
      'Short of that, merge the `errors` → `rateLimited` → `authed` middleware chain into one middleware (one ctx spread instead of three), and let `touch` skip the actor when the deadline has not moved (a plain `lastSeen` store, as the write-behind already does for Redis).',
  ],
  'server RSS KB per idle connection': [
    "- **Memory per connection** (not explained by a CPU profile; issue 2 measured 6.9 KB heap per connection for actor + handle + presence + store queue, so most of the RSS is elsewhere): take a heap-snapshot diff over 1,000 idle connections (`node --heapsnapshot-signal`) to split tRPC's per-socket handler state (closures, subscription maps, the `AbortController` per connection), ws' buffers and the actor tree; likely fixes are ws' `perMessageDeflate: false` (if not already), fewer closures per socket in `src/transport.ts`, and an idle connection's actor holding no per-connection timers until it is close to a deadline.",
  ],
  'connect cost far ÷ @1k (in process)': [
    "- **Connect cost at 50k** (the full `bench:peers` run measures it once — 4.22× at load average 5–7 in bench/results/peers.md — while QUICK=1 cites `npm run bench`, whose median of 3 runs was 1.51×; that run's profile puts the far connects in GC and XState's `resolveAssign` copying a shard's `children` on every spawn, plus the supervisor's n ÷ 64 shards): keep connection actors out of XState's `children` map altogether — spawn each connection as its own root actor (`createActor` with the shared system's clock) and keep shards as plain `Map`s — so a connect copies nothing that grows with the node; then repeat `npm run bench` to separate noise from cost.",
  ],
  'fan-out to 200: p99 (ms)': [
    '- **Fan-out** (profile: superjson `walker`/`forEach` and tRPC `encode` lead: every subscriber serialises the same event again, 200 times per join): serialise a presence event once per game (superjson + the tRPC frame, with only the subscription id differing) and send the same bytes to every subscriber — e.g. a `presence.game` path in `src/transport.ts` that writes pre-encoded frames, or caching the superjson result on the event object by id in `src/presence.ts` so `tracked()` payloads are encoded once.',
  ],
};

export function proposals(missed: ReadonlySet<string>): string[] {
  const lines = [...missed].flatMap((measure) => byMeasure[measure] ?? []);
  return lines.length ? ['## Proposed fixes (not made)', '', ...lines, ''] : [];
}

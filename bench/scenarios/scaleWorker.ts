/**
 * One connect-cost run in a fresh process (`node --expose-gc --import tsx bench/scenarios/scaleWorker.ts
 * '{"count","warmup"}'`), so no run inherits another's heap or JIT state. Sessions are opened through
 * the public server's connect path (`createPresenceServer(…).services.connections.open`, memory store,
 * default shards) with sockets that are never real: no client could hold 50k loopback sockets under
 * the machine's descriptor limit. Prints wall and CPU µs per connect for each batch of 100 as one JSON line.
 */
import { pino } from 'pino';
import { createPresenceServer } from '../../src/index.js';

const BATCH = 100;
const { count, warmup } = JSON.parse(process.argv[2] ?? '') as { count: number; warmup: number };
const socket = { close() {}, terminate() {} };

async function instance() {
  const server = createPresenceServer({ port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }) });
  await server.listen();
  return (i: number) =>
    server.services.connections.open({ userId: `user-${i}`, role: 'user', ip: null, userAgent: null, socket });
}

// The JIT is warmed on a separate instance, then the measured one starts after a full GC, like a
// freshly started server.
const warm = await instance();
for (let i = 0; i < warmup; i++) warm(i);
(globalThis as { gc?: () => void }).gc?.();
const open = await instance();
const wall: number[] = [];
const cpu: number[] = [];
const started = performance.now();
for (let done = 0; done < count; done += BATCH) {
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  for (let i = done; i < done + BATCH; i++) open(i);
  const used = process.cpuUsage(cpuStart);
  wall.push(((performance.now() - start) * 1000) / BATCH);
  cpu.push((used.user + used.system) / BATCH);
}
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ wall, cpu, seconds })}\n`);
// The connection actors armed their stale timers: do not wait for them, nor stop 50k actors.
process.exit(0);

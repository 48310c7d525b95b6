/**
 * Fills a Redis with N connections of one node the way a running node leaves them on SIGTERM:
 * `createPresenceServer` with the Redis store, N sessions opened through the real connect path
 * (sockets that are never real: no client process could hold 50k loopback sockets under the
 * machine's 20,000-descriptor limit), then `drain()` (what SIGTERM runs: every snapshot flushed).
 * `node --import tsx bench/scenarios/seedWorker.ts '{"redisUrl","nodeId","count"}'`; prints one JSON line.
 */
import { pino } from 'pino';
import { createPresenceServer } from '../../src/index.js';

const { redisUrl, nodeId, count } = JSON.parse(process.argv[2] ?? '') as {
  redisUrl: string;
  nodeId: string;
  count: number;
};
const server = createPresenceServer({ redisUrl, nodeId, port: 0, logger: pino({ level: 'silent' }) });
await server.listen();
const socket = { close() {}, terminate() {} };
const started = performance.now();
for (let i = 0; i < count; i++) {
  server.services.connections.open({ userId: `seed-${i}`, role: 'user', ip: null, userAgent: null, socket });
}
const openSeconds = (performance.now() - started) / 1000;
await server.drain();
await server.close();
process.stdout.write(`${JSON.stringify({ openSeconds, pending: server.services.store.pending() })}\n`);
process.exit(0);

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type TestRedis } from '../support/redis.js';
import { connectionShortestPaths } from './connectionModel.js';
import { describePath, eventsOf } from './paths.js';
import { runOnServer } from './connectionServerDriver.js';

// Each RESTART drains and closes a server and starts another on the same port, restoring from a real
// redis-server: the shortest paths through RESTART only (simple paths leave it out).
const restartPaths = connectionShortestPaths().filter((path) => eventsOf(path).includes('RESTART'));

describe('connection model against a real server restarted with Redis', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis[Symbol.asyncDispose]();
  });

  it.each(restartPaths.map((path) => [describePath(path), path] as const))('shortest: %s', async (_, path) => {
    await runOnServer(path, { redis });
  });

  // The same restart, but the observer's client reconnects while the new process is still restoring
  // (whenever reading the store takes longer than a reconnect delay). The typed client
  // re-subscribes after a reconnect, so its presence streams must start again with a sync.
  const path = restartPaths.find((p) => describePath(p) === 'JOIN → RESTART → RESUME');
  it('shortest: JOIN → RESTART → RESUME, clients reconnecting while the new process restores', async () => {
    expect(path).toBeDefined();
    if (path) await runOnServer(path, { redis, reconnect: 'during' });
  });
});

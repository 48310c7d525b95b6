import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createPresenceServer } from '../../src/server.js';
import { freePort, startRedis } from '../support/redis.js';

/** A server whose restore is blocked: its Redis is paused (SIGSTOP), so nothing answers. */
async function blockedStart() {
  const redis = await startRedis();
  redis.pause();
  const port = await freePort();
  const server = createPresenceServer({
    port,
    redisUrl: redis.url,
    redisPrefix: redis.prefix(),
    logger: pino({ level: 'silent' }),
  });
  const listening = server.listen();
  listening.catch(() => undefined);
  const url = `http://127.0.0.1:${port}`;
  await vi.waitFor(async () => expect((await fetch(`${url}/health/ready`)).status).toBe(503), { timeout: 5_000 });
  return { redis, server, listening, url, wsUrl: `ws://127.0.0.1:${port}/trpc` };
}

describe('while the node restores', () => {
  it('refuses WebSocket upgrades (503) instead of accepting sockets that could only fail', async () => {
    const { redis, server, listening, wsUrl } = await blockedStart();
    await using _redis = redis;
    try {
      const ws = new WebSocket(wsUrl);
      const refused = await new Promise<string>((resolve) => ws.once('error', (e) => resolve(e.message)));
      expect(refused).toMatch(/503/);
      redis.resume();
      await listening;
      const again = new WebSocket(`${wsUrl}?connectionParams=1`);
      await new Promise((resolve) => again.once('open', resolve));
      again.close();
    } finally {
      await server.close();
    }
  });

  it('a drain (SIGTERM) during the restore leaves the supervisor draining once it starts', async () => {
    const { redis, server, listening, url } = await blockedStart();
    await using _redis = redis;
    try {
      const drained = server.drain();
      redis.resume();
      await Promise.all([listening, drained]);
      expect(server.services.connections.supervisor?.getSnapshot().value).toBe('draining');
      expect((await fetch(`${url}/health/ready`)).status).toBe(503);
    } finally {
      await server.close();
    }
  });

  it('a close during the restore makes listen() reject with a clear error', async () => {
    const { redis, server, listening } = await blockedStart();
    await using _redis = redis;
    await server.close();
    redis.resume();
    await expect(listening).rejects.toThrow(/closed while it was starting/);
    expect(server.services.connections.supervisor).toBeNull();
  });
});

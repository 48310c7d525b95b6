import { describe, expect, it } from 'vitest';
import { ConfigError, configFromEnv, configFromOptions } from '../../src/config.js';

describe('config', () => {
  it('has the defaults of CONTRACT §2', () => {
    const config = configFromEnv({});
    expect(config).toMatchObject({
      port: 8787,
      host: '127.0.0.1',
      redisPrefix: 'presenced',
      nodeLeaseMs: 10_000,
      auth: 'dev',
      heartbeatMs: 25_000,
      staleMs: 60_000,
      expireMs: 240_000,
      inGameExpireMs: 240_000,
      warnMs: 30_000,
      roomIdleMs: 60_000,
      pingMs: 25_000,
      pongWaitMs: 30_000,
      maxPayloadBytes: 1_048_576,
      maxBufferedBytes: 4_194_304,
      rateLimit: 50,
      userPolicy: 'multi',
      maxConnectionsPerUser: 10,
      maxConnections: 100_000,
      logLevel: 'info',
    });
    expect(config.redisUrl).toBeUndefined();
    // Inspection is off unless PRESENCED_INSPECT is set.
    expect(config.inspect).toBeUndefined();
    expect(config.nodeId).toMatch(/^node-[0-9a-f]{8}$/);
  });

  it('derives inGameExpireMs from expireMs and auth from the JWT secret', () => {
    expect(configFromEnv({ PRESENCED_EXPIRE_MS: '5000' }).inGameExpireMs).toBe(5000);
    expect(configFromEnv({ PRESENCED_JWT_SECRET: 'x'.repeat(16) }).auth).toBe('jwt');
  });

  it('takes the same options in camelCase, and refuses unknown ones', () => {
    expect(configFromOptions({ staleMs: 1234, inspect: 'ws://127.0.0.1:8080' })).toMatchObject({
      staleMs: 1234,
      inspect: 'ws://127.0.0.1:8080',
    });
    expect(() => configFromOptions({ staleMS: 1 } as never)).toThrow(ConfigError);
    expect(() => configFromOptions({ staleMs: -1 })).toThrow(/staleMs=-1/);
  });

  it('accepts redis:// and refuses other Redis URLs in one line', () => {
    expect(configFromEnv({ REDIS_URL: 'redis://127.0.0.1:6379' }).redisUrl).toBe('redis://127.0.0.1:6379');
    expect(() => configFromEnv({ REDIS_URL: 'redis+cluster://a:1,b:2' })).toThrow(/REDIS_URL/);
    expect(() => configFromEnv({ PRESENCED_INSPECT: 'http://x' })).toThrow(/PRESENCED_INSPECT/);
  });
});

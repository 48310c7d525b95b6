import { describe, expect, it } from 'vitest';
import { ConfigError, configFromEnv, configFromOptions, redactUrl } from '../../src/config.js';

describe('config', () => {
  it('has the documented defaults', () => {
    const config = configFromEnv({});
    expect(config).toMatchObject({
      port: 8787,
      host: '127.0.0.1',
      redisPrefix: 'presenced',
      auth: 'dev',
      heartbeatMs: 25_000,
      staleMs: 60_000,
      expireMs: 240_000,
      inGameExpireMs: 240_000,
      warnMs: 30_000,
      pingMs: 25_000,
      pongWaitMs: 30_000,
      maxPayloadBytes: 1_048_576,
      maxBufferedBytes: 4_194_304,
      rateLimit: 50,
      userPolicy: 'multi',
      maxConnectionsPerUser: 10,
      maxConnections: 100_000,
      fastPaths: true,
      logLevel: 'info',
    });
    expect(config.redisUrl).toBeUndefined();
    // Inspection is off unless PRESENCED_INSPECT is set.
    expect(config.inspect).toBeUndefined();
    expect(config.nodeId).toMatch(/^node-[0-9a-f]{8}$/);
  });

  it('derives inGameExpireMs from expireMs and auth from the JWT secret', () => {
    expect(configFromEnv({ PRESENCED_EXPIRE_MS: '5000' }).inGameExpireMs).toBe(5000);
    expect(configFromEnv({ PRESENCED_JWT_SECRET: 'x'.repeat(32) }).auth).toBe('jwt');
  });

  it('takes the same options in camelCase, and refuses unknown ones', () => {
    expect(configFromOptions({ staleMs: 1234, inspect: 'ws://127.0.0.1:8080' })).toMatchObject({
      staleMs: 1234,
      inspect: 'ws://127.0.0.1:8080',
    });
    expect(() => configFromOptions({ staleMS: 1 } as never)).toThrow(ConfigError);
    expect(() => configFromOptions({ staleMs: -1 })).toThrow(/staleMs=-1/);
  });

  it('has no options for features not in this version: `session` auth is refused, their variables ignored', () => {
    expect(() => configFromEnv({ PRESENCED_AUTH: 'session' })).toThrow(/^invalid PRESENCED_AUTH="session"/);
    const config = configFromEnv({ PRESENCED_NODE_LEASE_MS: '5000', PRESENCED_ROOM_IDLE_MS: 'x' });
    expect(config).not.toHaveProperty('nodeLeaseMs');
    expect(config).not.toHaveProperty('roomIdleMs');
    expect(() => configFromOptions({ roomIdleMs: 1 } as never)).toThrow(/unknown option roomIdleMs/);
  });

  it('accepts redis:// and refuses other Redis URLs in one line', () => {
    expect(configFromEnv({ REDIS_URL: 'redis://127.0.0.1:6379' }).redisUrl).toBe('redis://127.0.0.1:6379');
    expect(() => configFromEnv({ REDIS_URL: 'redis+cluster://a:1,b:2' })).toThrow(/REDIS_URL/);
    expect(() => configFromEnv({ PRESENCED_INSPECT: 'http://x' })).toThrow(/PRESENCED_INSPECT/);
  });

  /** The message of the ConfigError `fn` throws: it must throw one. */
  function configError(fn: () => unknown): string {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).message;
    }
    throw new Error('no ConfigError');
  }

  describe('a JWT secret is at least 32 bytes of UTF-8, and never printed', () => {
    it.each([
      ['a 16-character ASCII secret (was: accepted, and printed in the error line)', 'hunter2-hunter2!'],
      ['a 31-byte ASCII secret', 's'.repeat(31)],
      // 16 characters, 31 bytes: a count of characters let it through.
      ['a multi-byte secret of 31 bytes', `${'é'.repeat(15)}x`],
    ])('%s: one line, the value [redacted]', (_name, secret) => {
      for (const message of [
        configError(() => configFromEnv({ PRESENCED_JWT_SECRET: secret })),
        configError(() => configFromOptions({ jwtSecret: secret })),
      ]) {
        expect(message).toMatch(/^invalid (PRESENCED_JWT_SECRET|jwtSecret)=\[redacted\]: must be at least 32 bytes$/);
        expect(message).not.toContain(secret);
        expect(message).not.toContain(secret.slice(0, 4));
      }
    });

    it('32 bytes are enough, multi-byte ones included', () => {
      expect(configFromEnv({ PRESENCED_JWT_SECRET: 's'.repeat(32) }).jwtSecret).toBe('s'.repeat(32));
      // 16 characters, 32 bytes.
      expect(configFromEnv({ PRESENCED_JWT_SECRET: 'é'.repeat(16) }).auth).toBe('jwt');
    });

    it('jwt auth without a secret names the rule', () => {
      expect(configError(() => configFromEnv({ PRESENCED_AUTH: 'jwt' }))).toBe(
        'invalid PRESENCED_AUTH="jwt": PRESENCED_JWT_SECRET must be set (at least 32 bytes)',
      );
    });
  });

  it('PRESENCED_FAST_PATHS is true or false, and nothing else', () => {
    expect(configFromEnv({ PRESENCED_FAST_PATHS: 'false' }).fastPaths).toBe(false);
    expect(configFromEnv({ PRESENCED_FAST_PATHS: 'true' }).fastPaths).toBe(true);
    expect(configFromOptions({ fastPaths: false }).fastPaths).toBe(false);
    for (const value of ['0', 'no', 'FALSE', 'off'])
      expect(configError(() => configFromEnv({ PRESENCED_FAST_PATHS: value }))).toMatch(
        /^invalid PRESENCED_FAST_PATHS=/,
      );
    expect(configError(() => configFromOptions({ fastPaths: 'yes' as never }))).toMatch(/^invalid fastPaths=/);
  });

  it('PRESENCED_JWT_ISSUER and PRESENCED_JWT_AUDIENCE are unset by default and read when set', () => {
    const unset = configFromEnv({});
    expect(unset.jwtIssuer).toBeUndefined();
    expect(unset.jwtAudience).toBeUndefined();
    expect(
      configFromEnv({ PRESENCED_JWT_ISSUER: 'https://auth.example', PRESENCED_JWT_AUDIENCE: 'presenced' }),
    ).toMatchObject({ jwtIssuer: 'https://auth.example', jwtAudience: 'presenced' });
    expect(configFromOptions({ jwtIssuer: 'i', jwtAudience: 'a' })).toMatchObject({ jwtIssuer: 'i', jwtAudience: 'a' });
    expect(configError(() => configFromEnv({ PRESENCED_JWT_AUDIENCE: 'a'.repeat(257) }))).toMatch(
      /^invalid PRESENCED_JWT_AUDIENCE=/,
    );
  });

  describe('a URL with a password is never printed with it (was: REDIS_URL printed in plain text)', () => {
    it.each([
      ['redis+cluster://:hunter2@a:1,b:2', 'redis+cluster://:[redacted]@a:1,b:2'],
      ['memcached://user:hunter2@host:6379/0', 'memcached://user:[redacted]@host:6379/0'],
      ['http://hunter2@host', 'http://[redacted]@host'],
      ['redis+cluster://user:hun@ter2@host:6379', 'redis+cluster://user:[redacted]@host:6379'],
    ])('REDIS_URL=%s: one line, shown as %s', (url, redacted) => {
      const message = configError(() => configFromEnv({ REDIS_URL: url }));
      expect(message.split('\n')).toHaveLength(1);
      expect(message).toContain(`REDIS_URL="${redacted}"`);
      expect(message).not.toContain('hunter2');
      expect(message).not.toContain('ter2');
    });

    it('a malformed URL with a password, in an option too', () => {
      for (const message of [
        configError(() => configFromEnv({ REDIS_URL: 'redis://:hunter2@' })),
        configError(() => configFromEnv({ REDIS_URL: ':hunter2@host:6379' })),
        configError(() => configFromOptions({ redisUrl: 'redis//user:hunter2@host' })),
        configError(() => configFromEnv({ PRESENCED_INSPECT: 'http://relay:hunter2@127.0.0.1:8080' })),
      ]) {
        expect(message.split('\n')).toHaveLength(1);
        expect(message).toMatch(/^invalid (REDIS_URL|redisUrl|PRESENCED_INSPECT)=".*\[redacted\]@/);
        expect(message).not.toContain('hunter2');
      }
    });

    it('redactUrl keeps what is not a credential', () => {
      expect(redactUrl('redis://127.0.0.1:6379/0')).toBe('redis://127.0.0.1:6379/0');
      expect(redactUrl('redis://:pw@host:6379/0')).toBe('redis://:[redacted]@host:6379/0');
      expect(redactUrl('rediss://user:pw@host')).toBe('rediss://user:[redacted]@host');
    });

    it('redactUrl hides query values (ioredis reads ?password=, a relay URL may carry ?token=)', () => {
      expect(redactUrl('redis://host:6379/0?password=hunter2&db=1')).toBe(
        'redis://host:6379/0?password=[redacted]&db=[redacted]',
      );
      expect(redactUrl('ws://relay:8080/?token=abc#frag')).toBe('ws://relay:8080/?token=[redacted]#frag');
      expect(redactUrl('redis://u:pw@host/?password=x')).toBe('redis://u:[redacted]@host/?password=[redacted]');
    });
  });
});

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { jwtVerify } from 'jose';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createPresenceClient, type PresenceClientOptions } from '../../src/client/index.js';
import { CloseCode } from '../../src/protocol.js';
import { startServer } from '../support/server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = 'a-test-secret-of-32-characters!!';

function cli(args: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--import', 'tsx', 'src/tools/cli.ts', ...args], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', LOG_LEVEL: 'silent', ...env },
  });
}

async function run(args: string[], env: Record<string, string> = {}) {
  const child = cli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout, stderr };
}

describe('presenced CLI', () => {
  it('token prints an HS256 JWT with sub, role and exp', async () => {
    const { code, stdout } = await run(['token', '--user', 'alice', '--role', 'admin', '--ttl', '1h'], {
      PRESENCED_JWT_SECRET: SECRET,
    });
    expect(code).toBe(0);
    const { payload, protectedHeader } = await jwtVerify(stdout.trim(), new TextEncoder().encode(SECRET));
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload.sub).toBe('alice');
    expect(payload['role']).toBe('admin');
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(3600);
  });

  it('token refuses to sign without a secret', async () => {
    const { code, stderr } = await run(['token', '--user', 'alice']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/PRESENCED_JWT_SECRET/);
  });

  it('token without --ttl (was: a token that never expires) expires in one hour', async () => {
    const { code, stdout } = await run(['token', '--user', 'alice', '--role', 'admin'], {
      PRESENCED_JWT_SECRET: SECRET,
    });
    expect(code).toBe(0);
    const { payload } = await jwtVerify(stdout.trim(), new TextEncoder().encode(SECRET));
    expect(payload.exp).toBeDefined();
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(3600);
    expect(Math.abs((payload.iat ?? 0) - Date.now() / 1000)).toBeLessThan(60);
    expect(payload.iss).toBeUndefined();
    expect(payload.aud).toBeUndefined();
  });

  it('token sets iss and aud from PRESENCED_JWT_ISSUER and PRESENCED_JWT_AUDIENCE', async () => {
    const { code, stdout } = await run(['token', '--user', 'alice', '--ttl', '15m'], {
      PRESENCED_JWT_SECRET: SECRET,
      PRESENCED_JWT_ISSUER: 'https://auth.example',
      PRESENCED_JWT_AUDIENCE: 'presenced',
    });
    expect(code).toBe(0);
    const { payload } = await jwtVerify(stdout.trim(), new TextEncoder().encode(SECRET), {
      issuer: 'https://auth.example',
      audience: 'presenced',
    });
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(900);
  });

  it.each([
    ['16 ASCII characters', 'hunter2-hunter2!'],
    ['16 characters, 31 bytes', `${'é'.repeat(15)}x`],
  ])('token refuses a secret under 32 bytes (was: 16 characters were enough): %s', async (_name, secret) => {
    const { code, stdout, stderr } = await run(['token', '--user', 'alice'], { PRESENCED_JWT_SECRET: secret });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toBe('presenced: PRESENCED_JWT_SECRET must be set (at least 32 bytes) to sign tokens\n');
  });

  it('machines prints mermaid and json', async () => {
    const mermaid = await run(['machines', '--format', 'mermaid']);
    expect(mermaid.code).toBe(0);
    expect(mermaid.stdout).toContain('stateDiagram-v2');
    expect(mermaid.stdout).toContain('connected --> inGame : JOIN_GAME');
    const json = await run(['machines', '--format', 'json']);
    const parsed = JSON.parse(json.stdout) as Record<string, { id: string }>;
    expect(Object.keys(parsed)).toEqual(['connection', 'supervisor', 'shard']);
    expect(parsed['connection']?.id).toBe('connection');
  });

  it.each([
    [{ PRESENCED_STALE_MS: 'soon' }, /PRESENCED_STALE_MS="soon"/],
    [{ PORT: '70000' }, /PORT="70000"/],
    [{ PRESENCED_USER_POLICY: 'many' }, /PRESENCED_USER_POLICY="many".*multi.*replace/],
    [{ NODE_ENV: 'production' }, /PRESENCED_AUTH="dev".*production/],
    [{ PRESENCED_AUTH: 'jwt' }, /PRESENCED_JWT_SECRET/],
  ])('a bad environment stops the server with one line: %o', async (env, message) => {
    const { code, stderr } = await run(['serve'], env);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(message);
  });

  it.each([
    [
      { PRESENCED_JWT_SECRET: 'hunter2-hunter2!' },
      'invalid PRESENCED_JWT_SECRET=[redacted]: must be at least 32 bytes',
    ],
    [{ REDIS_URL: 'redis+cluster://:hunter2@a:1,b:2' }, 'invalid REDIS_URL="redis+cluster://:[redacted]@a:1,b:2"'],
    [{ REDIS_URL: 'redis://user:hunter2@' }, 'invalid REDIS_URL="redis://user:[redacted]@"'],
  ])(
    'a bad secret or URL (was: printed in plain text) stops the server with one line without it: %o',
    async (env, line) => {
      const { code, stderr } = await run(['serve'], env);
      expect(code).toBe(1);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toContain(line);
      expect(stderr).not.toContain('hunter2');
    },
  );

  it('serves with jwt auth, and on SIGTERM closes clients with 1012 and exits 0', async () => {
    const child = cli(['serve'], { PORT: '0', PRESENCED_JWT_SECRET: SECRET });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    await vi.waitFor(() => expect(stdout).toMatch(/ws:\/\/127\.0\.0\.1:\d+\/trpc/), { timeout: 10_000 });
    const url = /ws:\/\/127\.0\.0\.1:\d+\/trpc/.exec(stdout)?.[0] ?? '';
    const { stdout: token } = await run(['token', '--user', 'carol', '--role', 'admin'], {
      PRESENCED_JWT_SECRET: SECRET,
    });
    const client = createPresenceClient({
      url,
      token: token.trim(),
      WebSocket: WebSocket as unknown as PresenceClientOptions['WebSocket'],
      retryBaseMs: 60_000,
    });
    const closes: number[] = [];
    client.on('close', (c) => closes.push(c.code));
    const info = await client.ready;
    expect(info.userId).toBe('carol');
    expect((await client.api.admin.stats.query()).connections).toBe(1);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(closes[0]).toBe(CloseCode.serverRestarting);
    await client.close();
  });
});

describe('jwt auth in process', () => {
  it('a valid token connects as its sub; a non-admin token gets FORBIDDEN on admin procedures', async () => {
    const { signToken } = await import('../../src/wire/auth.js');
    await using t = await startServer({ jwtSecret: SECRET });
    const token = await signToken({ secret: SECRET, userId: 'dave', ttl: '5m' });
    const dave = t.client('ignored', { userId: undefined, token });
    expect((await dave.ready).userId).toBe('dave');
    await expect(dave.api.admin.stats.query()).rejects.toMatchObject({ data: { code: 'FORBIDDEN' } });
  });
});

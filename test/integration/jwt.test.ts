import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { signToken } from '../../src/wire/auth.js';
import { CloseCode, type SessionInfo } from '../../src/protocol.js';
import { RawSocket } from '../support/rawSocket.js';
import { startServer } from '../support/server.js';

const SECRET = 'jwt-test-secret-of-32-bytes-0123';
const key = new TextEncoder().encode(SECRET);
const ISSUER = 'https://auth.example';
const AUDIENCE = 'presenced';

/** A token for `mallory` whose claims a test sets itself. */
function token(claims: { exp?: boolean; iss?: string; aud?: string } = {}) {
  const jwt = new SignJWT({ role: 'admin', note: 'payload-marker' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('mallory')
    .setIssuedAt();
  if (claims.exp !== false) jwt.setExpirationTime('5m');
  if (claims.iss !== undefined) jwt.setIssuer(claims.iss);
  if (claims.aud !== undefined) jwt.setAudience(claims.aud);
  return jwt.sign(key);
}

/** Connects with `jwt`: the call's error message (refused) or the session's user id (accepted). */
async function attempt(wsUrl: string, jwt: string) {
  await using socket = await RawSocket.open(wsUrl, { token: jwt });
  const reply = await socket.request('query', 'session.info');
  if (!reply.error) return { userId: (reply.result?.data as SessionInfo).userId };
  expect(reply.error).toMatchObject({ code: -32001, data: { code: 'UNAUTHORIZED' } });
  await expect(socket.closed).resolves.toMatchObject({ code: CloseCode.unauthorized });
  const { message } = reply.error;
  // The refusal says what was wrong, never what the token held.
  for (const part of [jwt, ...jwt.split('.'), 'mallory', 'payload-marker', ISSUER]) expect(message).not.toContain(part);
  return { refused: message };
}

describe('jwt auth', () => {
  it('a token without exp (was: accepted, good forever) is refused with 4401', async () => {
    await using t = await startServer({ jwtSecret: SECRET });
    expect(await attempt(t.wsUrl, await token({ exp: false }))).toEqual({
      refused: 'jwt auth: the token has no `exp` claim',
    });
    expect(t.server.services.connections.size).toBe(0);
    expect(await attempt(t.wsUrl, await token())).toEqual({ userId: 'mallory' });
  });

  it('an expired token is refused without echoing it', async () => {
    await using t = await startServer({ jwtSecret: SECRET });
    const expired = await new SignJWT({ note: 'payload-marker' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('mallory')
      .setIssuedAt(1_600_000_000)
      .setExpirationTime(1_600_000_060)
      .sign(key);
    expect(await attempt(t.wsUrl, expired)).toEqual({ refused: 'jwt auth: the token has expired' });
  });

  it('with PRESENCED_JWT_ISSUER and PRESENCED_JWT_AUDIENCE: a wrong or missing iss / aud is refused, the right ones accepted', async () => {
    await using t = await startServer({ jwtSecret: SECRET, jwtIssuer: ISSUER, jwtAudience: AUDIENCE });
    const refusals: [Parameters<typeof token>[0], string][] = [
      [{ iss: 'https://evil.example', aud: AUDIENCE }, "jwt auth: the token's `iss` claim is not accepted"],
      [{ iss: ISSUER, aud: 'another-service' }, "jwt auth: the token's `aud` claim is not accepted"],
      [{ aud: AUDIENCE }, 'jwt auth: the token has no `iss` claim'],
      [{ iss: ISSUER }, 'jwt auth: the token has no `aud` claim'],
    ];
    for (const [claims, refused] of refusals) {
      expect(await attempt(t.wsUrl, await token(claims)), JSON.stringify(claims)).toEqual({ refused });
    }
    expect(t.server.services.connections.size).toBe(0);
    expect(await attempt(t.wsUrl, await token({ iss: ISSUER, aud: AUDIENCE }))).toEqual({ userId: 'mallory' });
    const minted = await signToken({ secret: SECRET, userId: 'alice', issuer: ISSUER, audience: AUDIENCE });
    expect(await attempt(t.wsUrl, minted)).toEqual({ userId: 'alice' });
  });

  it('without them, iss and aud are not checked', async () => {
    await using t = await startServer({ jwtSecret: SECRET });
    expect(await attempt(t.wsUrl, await token({ iss: 'anyone', aud: 'anything' }))).toEqual({ userId: 'mallory' });
  });

  it('a bad signature or a token that is not a JWT: a fixed reason', async () => {
    await using t = await startServer({ jwtSecret: SECRET });
    const other = await signToken({ secret: 'another-secret-of-32-bytes-01234', userId: 'mallory' });
    expect(await attempt(t.wsUrl, other)).toEqual({ refused: 'jwt auth: the token signature does not verify' });
    expect(await attempt(t.wsUrl, 'payload-marker.mallory.x')).toEqual({
      refused: 'jwt auth: the token is not a valid JWT',
    });
  });
});

import { jwtVerify, SignJWT } from 'jose';
import type { ResolvedConfig } from './config.js';
import { PresenceError } from './errors.js';
import { userIdSchema } from './protocol.js';

export interface Identity {
  userId: string;
  role: 'admin' | 'user';
}

/** tRPC `connectionParams`: strings only, as the client sent them (CONTRACT §3). */
export type ConnectionParams = Partial<Record<string, string>> | null;

/** Turns `connectionParams` into an identity, or throws `UNAUTHORIZED`. */
export type Authenticate = (params: ConnectionParams) => Promise<Identity>;

const encoder = new TextEncoder();

function refuse(message: string): never {
  throw new PresenceError('UNAUTHORIZED', message);
}

export function createAuthenticator(config: Pick<ResolvedConfig, 'auth' | 'jwtSecret'>): Authenticate {
  if (config.auth === 'dev') {
    return (params) => {
      const userId = userIdSchema.safeParse(params?.['userId']);
      if (!userId.success) refuse('dev auth: connectionParams.userId (1–256 characters) is required');
      return Promise.resolve({ userId: userId.data, role: params?.['role'] === 'admin' ? 'admin' : 'user' });
    };
  }
  if (config.auth === 'jwt' && config.jwtSecret) {
    const key = encoder.encode(config.jwtSecret);
    return async (params) => {
      const token = params?.['token'];
      if (!token) refuse('jwt auth: connectionParams.token is required');
      let payload;
      try {
        ({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'] }));
      } catch (error) {
        // jose's own message says what was wrong (expired, bad signature, malformed) and nothing secret.
        refuse(`jwt auth: ${error instanceof Error ? error.message : 'invalid token'}`);
      }
      const userId = userIdSchema.safeParse(payload.sub);
      if (!userId.success) refuse('jwt auth: the token has no valid `sub`');
      return { userId: userId.data, role: payload['role'] === 'admin' ? 'admin' : 'user' };
    };
  }
  throw new PresenceError('BAD_REQUEST', `auth mode ${config.auth} is not available`);
}

/** `presenced token`: an HS256 JWT for a user. `ttl` like `90s`, `15m`, `1h`, `7d`. */
export async function signToken(options: { secret: string; userId: string; role?: string; ttl?: string }) {
  const jwt = new SignJWT(options.role ? { role: options.role } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(options.userId)
    .setIssuedAt();
  if (options.ttl) jwt.setExpirationTime(options.ttl);
  return jwt.sign(encoder.encode(options.secret));
}

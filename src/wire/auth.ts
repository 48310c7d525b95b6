import { errors, jwtVerify, SignJWT, type JWTVerifyOptions } from 'jose';
import type { ResolvedConfig } from '../config.js';
import { PresenceError } from '../errors.js';
import { userIdSchema } from '../protocol.js';

export interface Identity {
  userId: string;
  role: 'admin' | 'user';
}

/** tRPC `connectionParams`: strings only, as the client sent them. */
export type ConnectionParams = Partial<Record<string, string>> | null;

/** Turns `connectionParams` into an identity, or throws `UNAUTHORIZED`. */
export type Authenticate = (params: ConnectionParams) => Promise<Identity>;

const encoder = new TextEncoder();

function refuse(message: string): never {
  throw new PresenceError('UNAUTHORIZED', message);
}

/**
 * Why jose refused a token, in words that never echo the token: by jose's error class and the claim
 * it names, never by its message.
 */
function tokenRefusal(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    return error.reason === 'missing'
      ? `the token has no \`${claimName(error.claim)}\` claim`
      : `the token's \`${claimName(error.claim)}\` claim is not accepted`;
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the token signature does not verify';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token must be signed with HS256';
  return 'the token is not a valid JWT';
}

/** The registered claims jose checks; anything else it names is shown as `unknown`. */
const checkedClaims = new Set(['exp', 'nbf', 'iat', 'iss', 'aud', 'sub', 'jti', 'typ']);
const claimName = (claim: string) => (checkedClaims.has(claim) ? claim : 'unknown');

export function createAuthenticator(
  config: Pick<ResolvedConfig, 'auth' | 'jwtSecret' | 'jwtIssuer' | 'jwtAudience'>,
): Authenticate {
  if (config.auth === 'dev') {
    return (params) => {
      const userId = userIdSchema.safeParse(params?.['userId']);
      if (!userId.success) refuse('dev auth: connectionParams.userId (1–256 characters) is required');
      return Promise.resolve({ userId: userId.data, role: params?.['role'] === 'admin' ? 'admin' : 'user' });
    };
  }
  if (config.auth === 'jwt' && config.jwtSecret) {
    const key = encoder.encode(config.jwtSecret);
    // A token without `exp` would be good forever: every token must expire.
    const options: JWTVerifyOptions = { algorithms: ['HS256'], requiredClaims: ['exp'] };
    if (config.jwtIssuer !== undefined) options.issuer = config.jwtIssuer;
    if (config.jwtAudience !== undefined) options.audience = config.jwtAudience;
    return async (params) => {
      const token = params?.['token'];
      if (!token) refuse('jwt auth: connectionParams.token is required');
      let payload;
      try {
        ({ payload } = await jwtVerify(token, key, options));
      } catch (error) {
        refuse(`jwt auth: ${tokenRefusal(error)}`);
      }
      const userId = userIdSchema.safeParse(payload.sub);
      if (!userId.success) refuse('jwt auth: the token has no valid `sub`');
      return { userId: userId.data, role: payload['role'] === 'admin' ? 'admin' : 'user' };
    };
  }
  throw new PresenceError('BAD_REQUEST', `auth mode ${config.auth} is not available`);
}

/** How long a token from `signToken` lives unless told otherwise. */
export const DEFAULT_TOKEN_TTL = '1h';

/**
 * `presenced token`: an HS256 JWT for a user, always with an `exp` (`ttl` like `90s`, `15m`, `1h`,
 * `7d`; one hour by default), and `iss` / `aud` when given.
 */
export async function signToken(options: {
  secret: string;
  userId: string;
  role?: string;
  ttl?: string;
  issuer?: string;
  audience?: string;
}) {
  const jwt = new SignJWT(options.role ? { role: options.role } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(options.userId)
    .setIssuedAt()
    .setExpirationTime(options.ttl ?? DEFAULT_TOKEN_TTL);
  if (options.issuer !== undefined) jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt.setAudience(options.audience);
  return jwt.sign(encoder.encode(options.secret));
}

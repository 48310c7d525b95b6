import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * An HS256 key needs at least as many bytes as the hash (RFC 7518 §3.2): a shorter secret can be
 * brute-forced offline from any one token. Bytes, not characters: the key is the UTF-8 encoding.
 */
export const MIN_JWT_SECRET_BYTES = 32;

export const utf8Bytes = (text: string) => new TextEncoder().encode(text).byteLength;

const ms = (min: number) => z.coerce.number().int().min(min).max(2_147_483_647);
const count = (min: number) => z.coerce.number().int().min(min).max(100_000_000);

/**
 * Every option, with the environment variable it comes from. Defaults are those the README's configuration table lists.
 * The same schema validates `createPresenceServer()` options and the environment.
 */
const fields = {
  /** `PORT`. @default 8787 */
  port: { env: 'PORT', schema: z.coerce.number().int().min(0).max(65_535).default(8787) },
  /** `HOST`. @default '127.0.0.1' */
  host: { env: 'HOST', schema: z.string().min(1).default('127.0.0.1') },
  /** `REDIS_URL`; unset = embedded memory store. */
  redisUrl: { env: 'REDIS_URL', schema: z.string().url().optional() },
  /** `PRESENCED_REDIS_PREFIX`. @default 'presenced' */
  redisPrefix: {
    env: 'PRESENCED_REDIS_PREFIX',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/)
      .default('presenced'),
  },
  /** `PRESENCED_NODE_ID`. @default generated, stable for the process */
  nodeId: {
    env: 'PRESENCED_NODE_ID',
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/)
      .optional(),
  },
  /** `PRESENCED_AUTH`. @default 'jwt' when a JWT secret is set, else 'dev' */
  auth: { env: 'PRESENCED_AUTH', schema: z.enum(['jwt', 'dev']).optional() },
  /** `PRESENCED_JWT_SECRET`: the HS256 secret, at least 32 bytes (UTF-8). */
  jwtSecret: {
    env: 'PRESENCED_JWT_SECRET',
    schema: z
      .string()
      .refine((secret) => utf8Bytes(secret) >= MIN_JWT_SECRET_BYTES, `must be at least ${MIN_JWT_SECRET_BYTES} bytes`)
      .optional(),
  },
  /** `PRESENCED_JWT_ISSUER`: when set, a token's `iss` must be this. */
  jwtIssuer: { env: 'PRESENCED_JWT_ISSUER', schema: z.string().min(1).max(256).optional() },
  /** `PRESENCED_JWT_AUDIENCE`: when set, a token's `aud` must be (or include) this. */
  jwtAudience: { env: 'PRESENCED_JWT_AUDIENCE', schema: z.string().min(1).max(256).optional() },
  /** `PRESENCED_HEARTBEAT_MS`. @default 25000 */
  heartbeatMs: { env: 'PRESENCED_HEARTBEAT_MS', schema: ms(10).default(25_000) },
  /** `PRESENCED_STALE_MS`. @default 60000 */
  staleMs: { env: 'PRESENCED_STALE_MS', schema: ms(10).default(60_000) },
  /** `PRESENCED_EXPIRE_MS`. @default 240000 */
  expireMs: { env: 'PRESENCED_EXPIRE_MS', schema: ms(10).default(240_000) },
  /** `PRESENCED_INGAME_EXPIRE_MS`. @default expireMs */
  inGameExpireMs: { env: 'PRESENCED_INGAME_EXPIRE_MS', schema: ms(10).optional() },
  /** `PRESENCED_WARN_MS`. @default 30000 */
  warnMs: { env: 'PRESENCED_WARN_MS', schema: ms(0).default(30_000) },
  /** `PRESENCED_PING_MS`. @default 25000 */
  pingMs: { env: 'PRESENCED_PING_MS', schema: ms(10).default(25_000) },
  /** `PRESENCED_PONG_WAIT_MS`. @default 30000 */
  pongWaitMs: { env: 'PRESENCED_PONG_WAIT_MS', schema: ms(10).default(30_000) },
  /** `PRESENCED_MAX_PAYLOAD_BYTES`. @default 1048576 */
  maxPayloadBytes: { env: 'PRESENCED_MAX_PAYLOAD_BYTES', schema: count(256).default(1_048_576) },
  /** `PRESENCED_MAX_BUFFERED_BYTES`. @default 4194304 */
  maxBufferedBytes: { env: 'PRESENCED_MAX_BUFFERED_BYTES', schema: count(1024).default(4_194_304) },
  /** `PRESENCED_RATE_LIMIT`: calls per second per connection, burst 2×. @default 50 */
  rateLimit: { env: 'PRESENCED_RATE_LIMIT', schema: count(1).default(50) },
  /** `PRESENCED_USER_POLICY`. @default 'multi' */
  userPolicy: { env: 'PRESENCED_USER_POLICY', schema: z.enum(['multi', 'replace']).default('multi') },
  /** `PRESENCED_MAX_CONNECTIONS_PER_USER`. @default 10 */
  maxConnectionsPerUser: { env: 'PRESENCED_MAX_CONNECTIONS_PER_USER', schema: count(1).default(10) },
  /** `PRESENCED_MAX_CONNECTIONS`. @default 100000 */
  maxConnections: { env: 'PRESENCED_MAX_CONNECTIONS', schema: count(1).default(100_000) },
  /** `PRESENCED_AUTH_TIMEOUT_MS`: a socket not authenticated by then is closed with 4401. @default 5000 */
  authTimeoutMs: { env: 'PRESENCED_AUTH_TIMEOUT_MS', schema: ms(10).default(5_000) },
  /** `PRESENCED_MAX_PENDING`: sockets waiting to authenticate at once; beyond: 1013. @default 1024 */
  maxPending: { env: 'PRESENCED_MAX_PENDING', schema: count(1).default(1024) },
  /** `PRESENCED_MAX_SUBSCRIPTIONS`: open subscriptions per connection; beyond: TOO_MANY_REQUESTS. @default 32 */
  maxSubscriptions: { env: 'PRESENCED_MAX_SUBSCRIPTIONS', schema: count(1).default(32) },
  /** `PRESENCED_INSPECT`: a Stately inspector relay (`ws://…`). */
  inspect: {
    env: 'PRESENCED_INSPECT',
    schema: z
      .string()
      .regex(/^wss?:\/\//)
      .optional(),
  },
  /**
   * `PRESENCED_FAST_PATHS`: heartbeats answered before any procedure call, and presence events
   * written directly, serialised once for all subscribers. `false`: every call and event through the
   * procedures and the transformer, as plain tRPC does; the bytes on the wire are the same. @default true
   */
  fastPaths: {
    env: 'PRESENCED_FAST_PATHS',
    schema: z.union([z.boolean(), z.enum(['true', 'false']).transform((value) => value === 'true')]).default(true),
  },
  /** `LOG_LEVEL`. @default 'info' */
  logLevel: {
    env: 'LOG_LEVEL',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  },
} as const;

type Fields = typeof fields;
type Parsed = { [K in keyof Fields]: z.output<Fields[K]['schema']> };

/** Options of `createPresenceServer()`: every environment variable, in camelCase. */
export type PresenceOptions = { [K in keyof Fields]?: z.input<Fields[K]['schema']> };

/** Options after defaults and cross-field rules. */
export interface ResolvedConfig extends Omit<Parsed, 'auth' | 'inGameExpireMs' | 'nodeId'> {
  auth: 'jwt' | 'dev';
  inGameExpireMs: number;
  nodeId: string;
  /** Whether NODE_ENV is production (dev auth refuses to start then). */
  production: boolean;
}

/** A bad option or environment variable: one line naming it, the value and what is allowed. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const schema = z.object(Object.fromEntries(Object.entries(fields).map(([key, field]) => [key, field.schema])));

const REDACTED = '[redacted]';

/**
 * How an error line shows the value of a field that may hold a credential: a secret never, a URL
 * without its password. Config errors go to stderr and to whatever collects it.
 */
const hidden: Partial<Record<keyof Fields, 'secret' | 'url'>> = {
  jwtSecret: 'secret',
  redisUrl: 'url',
  inspect: 'url',
};

/**
 * `value` for an error line, with a URL's password (`redis://user:pw@host`, `redis://:pw@host`) shown
 * as `[redacted]`. A bare `name@` could be either a user or a password: it is redacted too. The
 * userinfo ends at the last `@`, as URL parsers read it, so a password with an `@` is covered.
 */
export function redactUrl(value: string): string {
  return redactQuery(redactUserinfo(value));
}

/** The password of `scheme://user:password@host`. */
function redactUserinfo(value: string): string {
  const match = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)?(.*)@/s.exec(value);
  if (!match) return value;
  const [whole, scheme = '', userinfo = ''] = match;
  const colon = userinfo.indexOf(':');
  const shown = colon === -1 ? REDACTED : `${userinfo.slice(0, colon)}:${REDACTED}`;
  return `${scheme}${shown}@${value.slice(whole.length)}`;
}

/** Every query value: ioredis reads `?password=…`, and a relay URL may carry `?token=…`. */
function redactQuery(value: string): string {
  const query = value.indexOf('?');
  if (query === -1) return value;
  const [search = '', fragment] = value.slice(query + 1).split('#', 2);
  const redacted = search
    .split('&')
    .map((pair) => (pair.includes('=') ? `${pair.slice(0, pair.indexOf('='))}=${REDACTED}` : pair))
    .join('&');
  return `${value.slice(0, query + 1)}${redacted}${fragment === undefined ? '' : `#${fragment}`}`;
}

function shown(key: keyof Fields, value: unknown): string {
  const kind = hidden[key];
  if (kind === 'secret') return REDACTED;
  if (kind === 'url' && typeof value === 'string') return JSON.stringify(redactUrl(value));
  return JSON.stringify(value);
}

function describe(key: string, value: unknown, issue: z.core.$ZodIssue, source: 'env' | 'option'): string {
  const field = fields[key as keyof Fields];
  const name = source === 'env' ? field.env : key;
  return `invalid ${name}=${shown(key as keyof Fields, value)}: ${issue.message}`;
}

function resolve(parsed: Parsed, production: boolean): ResolvedConfig {
  const auth = parsed.auth ?? (parsed.jwtSecret ? 'jwt' : 'dev');
  if (auth === 'jwt' && !parsed.jwtSecret) {
    throw new ConfigError(
      `invalid PRESENCED_AUTH="jwt": PRESENCED_JWT_SECRET must be set (at least ${MIN_JWT_SECRET_BYTES} bytes)`,
    );
  }
  if (auth === 'dev' && production) {
    throw new ConfigError(
      'invalid PRESENCED_AUTH="dev": dev auth trusts any user id and refuses to start when NODE_ENV=production',
    );
  }
  if (parsed.redisUrl !== undefined && !/^rediss?:\/\//.test(parsed.redisUrl)) {
    throw new ConfigError(
      `invalid REDIS_URL=${shown('redisUrl', parsed.redisUrl)}: use redis://host:port or rediss:// (Redis Cluster is not in this version)`,
    );
  }
  return {
    ...parsed,
    auth,
    inGameExpireMs: parsed.inGameExpireMs ?? parsed.expireMs,
    nodeId: parsed.nodeId ?? `node-${randomBytes(4).toString('hex')}`,
    production,
  };
}

function parse(input: Record<string, unknown>, source: 'env' | 'option'): Parsed {
  const result = schema.safeParse(input);
  if (!result.success) {
    const issue = result.error.issues[0];
    const key = String(issue?.path[0] ?? '');
    throw new ConfigError(issue ? describe(key, input[key], issue, source) : 'invalid configuration');
  }
  return result.data as Parsed;
}

/** Reads and validates every environment variable; throws one `ConfigError` line on the first bad one. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ResolvedConfig {
  const input: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(fields)) {
    const value = env[field.env];
    if (value !== undefined && value !== '') input[key] = value;
  }
  return resolve(parse(input, 'env'), env['NODE_ENV'] === 'production');
}

/** Validates `createPresenceServer()` options, with the environment's NODE_ENV. */
export function configFromOptions(options: PresenceOptions, production = process.env['NODE_ENV'] === 'production') {
  const known = new Set(Object.keys(fields));
  const unknown = Object.keys(options).find((key) => !known.has(key));
  if (unknown !== undefined) throw new ConfigError(`unknown option ${unknown}`);
  return resolve(parse(options, 'option'), production);
}

/** Env variable names and defaults, for the README and `--help`. */
export const configFields = fields;

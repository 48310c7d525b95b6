import { z } from 'zod';
import type { ConnectionContext, PersistedConnection } from '../../machines/connection.js';
import { endReasonSchema, gameIdSchema, userIdSchema } from '../protocol.js';
import type { ConnectionRecord, HistoryRecord } from './types.js';

/**
 * `true` only when `A` and `B` are the same type, field for field and in both directions (an
 * optional field on one side only, or a wider field type, makes it `false`): mutual assignability
 * would let a field added to the machine's context as optional go unvalidated.
 */
export type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

const time = z.number().int().nonnegative();
const duration = z.number().int().nonnegative();
/**
 * How many games a history record lists: the most recent ones. Every game ever joined made a
 * connection that joined 4,000 games a 524 KB record.
 */
export const MAX_HISTORY_GAMES = 32;

/** The connection machine's context as persisted (machines/connection.ts `ConnectionContext`). */
const contextSchema = z.object({
  connectionId: z.string().min(1).max(128),
  userId: userIdSchema,
  gameId: gameIdSchema.nullable(),
  joinedAt: time.nullable(),
  connectedAt: time,
  lastSeen: time,
  staleAt: time,
  staleSince: time.nullable(),
  expiresAt: time.nullable(),
  socket: z.boolean(),
  staleTimerAt: time,
  reason: endReasonSchema.nullable(),
  timing: z.object({ staleMs: duration, expireMs: duration, inGameExpireMs: duration, warnMs: duration }),
});

// A field of the machine's context that this schema does not list would be dropped from every
// record read back (zod strips unknown keys), and one listed here that the context lacks would
// reject every record: either fails to compile here.
true satisfies Same<z.output<typeof contextSchema>, ConnectionContext>;

/** `getPersistedSnapshot()` of a live connection: never final, never with children. */
const snapshotSchema = z.object({
  status: z.literal('active'),
  value: z.enum(['connected', 'inGame', 'stale']),
  historyValue: z.object({}).strict(),
  context: contextSchema,
  children: z.object({}).strict(),
});

true satisfies Same<z.output<typeof snapshotSchema>, PersistedConnection>;

export const connectionRecordSchema = z
  .object({
    v: z.literal(1),
    connectionId: z.string().min(1).max(128),
    userId: userIdSchema,
    nodeId: z.string().min(1).max(64),
    state: z.enum(['connected', 'inGame', 'stale']),
    gameId: gameIdSchema.nullable(),
    lastSeen: time,
    expiresAt: time.nullable(),
    resumeTokenHash: z.string().min(16).max(128),
    ip: z.string().max(64).nullable(),
    userAgent: z.string().max(512).nullable(),
    snapshot: snapshotSchema,
  })
  .refine((r) => r.snapshot.context.connectionId === r.connectionId && r.snapshot.context.userId === r.userId, {
    message: 'the snapshot belongs to another connection',
  });

export const historyRecordSchema = z.object({
  connectionId: z.string().min(1).max(128),
  userId: userIdSchema,
  nodeId: z.string().min(1).max(64),
  ip: z.string().max(64).nullable(),
  userAgent: z.string().max(512).nullable(),
  connectedAt: time,
  endedAt: time,
  reason: endReasonSchema,
  /**
   * The most recent games, in the order they were last joined. Written at most `MAX_HISTORY_GAMES`;
   * a record of an older version that listed more is cut to its last ones, not skipped.
   */
  games: z.array(gameIdSchema).transform((games) => games.slice(-MAX_HISTORY_GAMES)),
});

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

function parseWith<T>(schema: z.ZodType<T>, text: string): Parsed<T> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const result = schema.safeParse(json);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  return { ok: false, reason: `${issue?.path.join('.') || 'record'}: ${issue?.message ?? 'invalid'}` };
}

/** Values read back from Redis are untrusted input: versioned, validated, never thrown on. */
export const parseConnectionRecord = (text: string): Parsed<ConnectionRecord> =>
  parseWith(connectionRecordSchema, text);

export const parseHistoryRecord = (text: string): Parsed<HistoryRecord> => parseWith(historyRecordSchema, text);

import { TRPCError } from '@trpc/server';
import { z } from 'zod';

/** Every failure presenced reports to a caller, as data. Branch on `code`, never on the message. */
export const presenceErrorCodes = [
  'UNAUTHORIZED',
  'FORBIDDEN',
  'BAD_REQUEST',
  'NOT_FOUND',
  'TOO_MANY_REQUESTS',
  'SESSION_ENDED',
  'UNAVAILABLE',
] as const;
export type PresenceErrorCode = (typeof presenceErrorCodes)[number];

export class PresenceError extends Error {
  override readonly name = 'PresenceError';
  constructor(
    readonly code: PresenceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const trpcCode = {
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  BAD_REQUEST: 'BAD_REQUEST',
  NOT_FOUND: 'NOT_FOUND',
  TOO_MANY_REQUESTS: 'TOO_MANY_REQUESTS',
  SESSION_ENDED: 'UNAUTHORIZED',
  UNAVAILABLE: 'SERVICE_UNAVAILABLE',
} as const satisfies Record<PresenceErrorCode, TRPCError['code']>;

/** The one place where our codes become tRPC codes. */
export function toTRPCError(error: PresenceError): TRPCError {
  return new TRPCError({ code: trpcCode[error.code], message: error.message, cause: error });
}

/** What a client is told about a frame that could not be read as a tRPC message. */
export const MALFORMED_MESSAGE = 'malformed message';

/**
 * The id an unexpected failure is logged under, set on the error itself where it is logged: tRPC
 * hands the same error object to the transport's `onError` and then to `errorFormatter`, which puts
 * the id in the client's message, so a reported id finds its log line.
 */
export function identifyError(error: Error): string {
  const known = errorIdOf(error);
  if (known !== undefined) return known;
  const errorId = crypto.randomUUID().replaceAll('-', '').slice(0, 12);
  Object.assign(error, { errorId });
  return errorId;
}

/** The id `identifyError` gave `error`, if it was logged. */
export function errorIdOf(error: Error): string | undefined {
  return 'errorId' in error && typeof error.errorId === 'string' ? error.errorId : undefined;
}

/** Input validation reports at most this many issues, each at most this long: the input is the client's. */
const MAX_ISSUES = 3;
const MAX_ISSUE_CHARS = 200;

/**
 * One line for a failed input validation: `path: message` per issue (`limit: must be at most 1000
 * …`), instead of zod's pretty-printed JSON of every issue, which grows with the input.
 */
function validationMessage(error: z.ZodError): string {
  const shown = error.issues.slice(0, MAX_ISSUES).map((issue) => {
    const at = issue.path.map(String).join('.');
    const line = at === '' ? issue.message : `${at}: ${issue.message}`;
    return line.length > MAX_ISSUE_CHARS ? `${line.slice(0, MAX_ISSUE_CHARS)}…` : line;
  });
  const more = error.issues.length - shown.length;
  return `${shown.join('; ')}${more > 0 ? ` (and ${more} more)` : ''}`;
}

/**
 * The message a client gets for `error`. Ours (`PresenceError`s, turned into tRPC errors above) and
 * input validation (on one line) say what was wrong; a frame that is not a message gets a fixed
 * text, never what JSON.parse, superjson or a TypeError said about it; anything unexpected gets a
 * generic text with the id of its log line, never internal text (a Redis client's or a bug's).
 */
export function clientMessage(error: TRPCError): string {
  if (error.code === 'PARSE_ERROR') return MALFORMED_MESSAGE;
  if (error.code === 'BAD_REQUEST' && error.cause instanceof z.ZodError) return validationMessage(error.cause);
  if (error.code !== 'INTERNAL_SERVER_ERROR') return error.message;
  const errorId = errorIdOf(error);
  return errorId === undefined ? 'internal error' : `internal error (id ${errorId})`;
}

import { TRPCError } from '@trpc/server';

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

/**
 * The message a client gets for `error`. Ours (`PresenceError`s, turned into tRPC errors above) and
 * input validation say what was wrong; a frame that is not a message gets a fixed text, never what
 * JSON.parse, superjson or a TypeError said about it; anything unexpected gets a generic text with
 * the id of its log line, never internal text (a Redis client's or a bug's).
 */
export function clientMessage(error: TRPCError): string {
  if (error.code === 'PARSE_ERROR') return MALFORMED_MESSAGE;
  if (error.code !== 'INTERNAL_SERVER_ERROR') return error.message;
  const errorId = errorIdOf(error);
  return errorId === undefined ? 'internal error' : `internal error (id ${errorId})`;
}

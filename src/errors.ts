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

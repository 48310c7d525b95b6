/**
 * What server and clients share: close codes, the shapes on the wire and the input schemas.
 * Imported by `presenced/client`, so nothing here may depend on Node.
 */
import { z } from 'zod';
import { endReasons, type EndReason } from '../machines/endReasons.js';

/** WebSocket close codes sent by presenced (the README's close-code table). */
export const CloseCode = {
  expired: 4000,
  replaced: 4001,
  kicked: 4002,
  left: 4003,
  unauthorized: 4401,
  tooManyConnections: 4429,
  policyViolation: 1008,
  frameTooLarge: 1009,
  serverRestarting: 1012,
  atCapacity: 1013,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Close codes after which reconnecting cannot help: the session is over or was refused. */
export const terminalCloseCodes: ReadonlySet<number> = new Set([
  CloseCode.expired,
  CloseCode.replaced,
  CloseCode.kicked,
  CloseCode.left,
  CloseCode.unauthorized,
  CloseCode.tooManyConnections,
]);

export type SessionState = 'connected' | 'inGame' | 'stale';

export { endReasons, type EndReason } from '../machines/endReasons.js';
/** Why a session ended: `left`, `expired`, `replaced` or `kicked`. */
export const endReasonSchema = z.enum(endReasons);

/** The close code an end sends its socket: `CloseCode` has one under each end reason's name. */
export const closeCodeFor: { readonly [R in EndReason]: (typeof CloseCode)[R] } = CloseCode;

/** Why a member left a game: its session ended, or it joined another game (`moved`). */
export const leaveReasons = [...endReasons, 'moved'] as const;
export type LeaveReason = (typeof leaveReasons)[number];

export interface SessionInfo {
  connectionId: string;
  userId: string;
  nodeId: string;
  state: SessionState;
  gameId: string | null;
  connectedAt: Date;
  lastSeen: Date;
  heartbeatMs: number;
  staleAt: Date;
  expiresAt: Date | null;
  resumeToken: string;
  resumed: boolean;
}

export interface HeartbeatResult {
  serverTime: Date;
  state: SessionState;
  staleAt: Date;
}

export type SessionEvent =
  | { type: 'warning'; expiresAt: Date }
  | { type: 'replaced'; by: string }
  | { type: 'expired'; reason: EndReason }
  | { type: 'state'; state: SessionState };

export interface Member {
  userId: string;
  connectionId: string;
  state: 'active' | 'stale';
  joinedAt: Date;
  lastSeen: Date;
}

export type PresenceEvent =
  | { type: 'sync'; gameId: string; members: Member[] }
  | { type: 'join'; gameId: string; member: Member }
  | { type: 'update'; gameId: string; member: Member }
  | { type: 'leave'; gameId: string; member: Member; reason: LeaveReason };

export type UserStatus = 'online' | 'away' | 'offline';

export interface UserPresence {
  userId: string;
  status: UserStatus;
  connections: number;
  lastSeen: Date | null;
}

export interface StateCounts {
  connected: number;
  inGame: number;
  stale: number;
}

export interface AdminStats {
  nodeId: string;
  connections: number;
  users: number;
  games: number;
  byState: StateCounts;
  perGame: Record<string, number>;
  nodes: string[];
}

export interface AdminConnection {
  connectionId: string;
  userId: string;
  nodeId: string;
  state: SessionState;
  gameId: string | null;
  ip: string | null;
  userAgent: string | null;
  connectedAt: Date;
  lastSeen: Date;
  expiresAt: Date | null;
}

export interface HistoryEntry {
  connectionId: string;
  userId: string;
  nodeId: string;
  ip: string | null;
  userAgent: string | null;
  connectedAt: Date;
  endedAt: Date;
  reason: EndReason;
  games: string[];
}

/** A `gameId` is 1–128 characters of `[A-Za-z0-9_.:-]`. */
export const gameIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'gameId must be 1–128 characters of [A-Za-z0-9_.:-]');

/** User ids come from tokens or dev params; the same bound keeps keys and logs sane. */
export const userIdSchema = z.string().min(1).max(256);

/**
 * The most rows one admin query may build: the history a store keeps (1000 records) and as many
 * connections. A limit of 10,000 made one call build and serialise that many rows.
 */
export const MAX_ADMIN_ROWS = 1000;
const adminLimit = z
  .number()
  .int()
  .min(1)
  .max(MAX_ADMIN_ROWS, `must be at most ${MAX_ADMIN_ROWS} (the history a store keeps)`);

export const input = {
  heartbeat: z.object({ clientTime: z.number().finite().optional() }).strict().optional(),
  game: z.object({ gameId: gameIdSchema }).strict(),
  presenceGame: z.object({ gameId: gameIdSchema, lastEventId: z.string().max(64).optional() }).strict(),
  user: z.object({ userId: userIdSchema }).strict(),
  connectionsQuery: z
    .object({
      userId: userIdSchema.optional(),
      gameId: gameIdSchema.optional(),
      limit: adminLimit.optional(),
    })
    .strict()
    .optional(),
  kick: z.object({ connectionId: z.string().min(1).max(128) }).strict(),
  history: z.object({ userId: userIdSchema.optional(), limit: adminLimit.optional() }).strict().optional(),
} as const;

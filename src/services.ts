import type { Clock } from './clock.js';
import type { ResolvedConfig } from './config.js';
import type { ConnectionHandle, Connections } from './connections/registry.js';
import type { PresenceError } from './errors.js';
import type { HeartbeatResult } from './protocol.js';
import type { Feeds } from './presence/feeds.js';
import type { PresenceIndex } from './presence/presenceIndex.js';
import type { PresenceStore } from './store/types.js';

/**
 * What the router's procedures and the wire both reach. They live here, outside either, so that the
 * router imports nothing from the wire: the wire calls procedures, never the other way round.
 */

/** What every procedure can reach. One per server, shared by every socket. */
export interface Services {
  config: ResolvedConfig;
  connections: Connections;
  presence: PresenceIndex;
  /** Every subscription's events: games, users, sessions, admin stats. */
  feeds: Feeds;
  store: PresenceStore;
  clock: Clock;
}

/** Per socket: created once by the wire when the socket authenticates (or fails to). */
export interface Context {
  services: Services;
  /** `null` when the connection was refused; `refusal` says why. */
  session: ConnectionHandle | null;
  refusal: PresenceError | null;
  /** The socket's rate limit: `take()` spends a token, or refuses (and spends none). */
  limiter: { take(): boolean };
  /**
   * Subscriptions open on this socket. An object, so that the count survives tRPC's middlewares,
   * which hand the next one a copy of the context.
   */
  subscriptions: { open: number };
  /** Called once a refused socket's call has been answered: the wire closes it then. */
  onRefused(): void;
}

/**
 * What `session.heartbeat` answers, once the call has been counted as activity. Shared by the
 * procedure and the wire's heartbeat fast path, which must answer the same.
 */
export function heartbeatResult(services: Services, session: ConnectionHandle): HeartbeatResult {
  return {
    serverTime: new Date(services.clock.now()),
    state: session.sessionState,
    staleAt: new Date(session.context.staleAt),
  };
}

import type { Clock } from '../clock.js';

/**
 * Who may hold a socket. Anyone on the internet can open one, so a socket that has not proven who it
 * is must cost little and not for long:
 * - it waits in `pending` for at most `authTimeoutMs`, then it is closed (4401);
 * - at most `maxPending` sockets wait at once; a new one beyond that is closed (1013);
 * - waiting sockets never take a slot of `maxConnections`, which only authenticated sockets hold.
 *
 * Once seen, a socket that had `?connectionParams=1` and then said nothing, answering only pings,
 * held a slot of `maxConnections` forever: a few of them locked every user out with 1013.
 * A refused socket (bad credentials, over its user's cap) stays `pending` until it is gone: it is
 * closed within seconds and must not make room for more of its kind meanwhile.
 */
export interface AdmissionLimits {
  maxConnections: number;
  maxPending: number;
  authTimeoutMs: number;
}

export type Arrival = 'waiting' | 'atCapacity' | 'tooManyPending';

export interface AdmissionCounts {
  authenticated: number;
  pending: number;
}

export class Admission<TSocket> {
  private readonly pending = new Map<TSocket, unknown>();
  private readonly authenticated = new Set<TSocket>();

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>,
  ) {}

  /**
   * A new socket: it waits for its credentials (and `onTimeout` runs if they do not come in time),
   * or it is turned away at once.
   */
  arrive(socket: TSocket, onTimeout: () => void): Arrival {
    if (this.authenticated.size >= this.limits.maxConnections) return 'atCapacity';
    if (this.pending.size >= this.limits.maxPending) return 'tooManyPending';
    this.pending.set(
      socket,
      this.clock.setTimeout(() => {
        // Still waiting: nothing came that authenticated it, or it was refused and is still open.
        if (this.pending.has(socket)) onTimeout();
      }, this.limits.authTimeoutMs),
    );
    return 'waiting';
  }

  /** Whether an authenticated socket would get a slot now. */
  hasRoom(): boolean {
    return this.authenticated.size < this.limits.maxConnections;
  }

  /** The socket authenticated and has a session: it takes a slot. */
  admit(socket: TSocket): void {
    const timer = this.pending.get(socket);
    if (timer === undefined) return;
    this.clock.clearTimeout(timer);
    this.pending.delete(socket);
    this.authenticated.add(socket);
  }

  /** The socket is gone: whatever it held is free again. */
  leave(socket: TSocket): void {
    const timer = this.pending.get(socket);
    if (timer !== undefined) this.clock.clearTimeout(timer);
    this.pending.delete(socket);
    this.authenticated.delete(socket);
  }

  counts(): AdmissionCounts {
    return { authenticated: this.authenticated.size, pending: this.pending.size };
  }
}

/**
 * Transport keep-alive, tRPC's protocol (a text `PING`; the client answers `PONG`, and any message
 * counts as an answer) on one sweep for every socket. tRPC's own keep-alive keeps two timers per
 * socket and clears and re-arms them on every message, which cost every heartbeat two timer
 * operations and every idle socket a pending `Timeout` with its closures. Here a message only sets
 * a flag; a sweep every eighth of the shorter interval does the rest, so a ping goes out after
 * `pingMs` to `pingMs` plus two sweeps of silence (defaults: 25 to 31 s) and a socket is dropped
 * `pongWaitMs` (plus at most one sweep) after an unanswered ping.
 */

/** The part of a socket keep-alive uses. */
export interface PingSocket {
  send(data: string): void;
  /** Drops the connection without a close handshake (a peer that does not answer would not close). */
  terminate(): void;
}

/** What keep-alive knows of one socket: set `heard` on every message from it. */
export interface Liveness {
  heard: boolean;
  /** The sweep that last found it heard (or when it was watched first). */
  quietSince: number;
  /** When the unanswered ping went out; `null` while none is pending. */
  pingedAt: number | null;
}

export interface KeepAliveTiming {
  /** Ping a socket after this much silence. */
  pingMs: number;
  /** Drop it when nothing comes within this long after the ping. */
  pongWaitMs: number;
}

/** How often to sweep. */
export function keepAliveSweepMs({ pingMs, pongWaitMs }: KeepAliveTiming): number {
  return Math.max(5, Math.min(pingMs, pongWaitMs) / 8);
}

/**
 * One sweep at `now`: pings the sockets silent for `pingMs`, drops those that left a ping unanswered.
 * The transport passes `performance.now()`, not the injected clock: keep-alive measures how long a
 * socket has been silent on this process's real timer (its sweep is a real interval), and that must
 * not jump when wall time is stepped or when a test holds the server's clock still.
 */
export function sweepKeepAlive(
  sockets: Iterable<[PingSocket, Liveness]>,
  now: number,
  { pingMs, pongWaitMs }: KeepAliveTiming,
): void {
  for (const [socket, liveness] of sockets) {
    if (liveness.heard) {
      liveness.heard = false;
      liveness.quietSince = now;
      liveness.pingedAt = null;
    } else if (liveness.pingedAt !== null) {
      if (now - liveness.pingedAt >= pongWaitMs) socket.terminate();
    } else if (now - liveness.quietSince >= pingMs) {
      liveness.pingedAt = now;
      socket.send('PING');
    }
  }
}

/**
 * A WebSocket close frame carries at most 125 bytes of payload: the 2-byte code and a reason of at
 * most 123 bytes of UTF-8. `ws` throws on a longer reason, and a reason built from a user id
 * (28 CJK characters or emoji are already over 123 bytes) once threw inside a timer and killed the
 * process. Every close reason presenced sends is made here.
 */
export const MAX_CLOSE_REASON_BYTES = 123;

const encoder = new TextEncoder();

/**
 * `text` cut to at most 123 bytes of UTF-8, never inside a character (a code point is kept whole
 * or dropped, so a lone surrogate half is never left behind). Short ASCII reasons pass unchanged.
 */
export function closeReason(text: string): string {
  if (text.length <= MAX_CLOSE_REASON_BYTES / 3) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    const size = encoder.encode(char).length;
    if (bytes + size > MAX_CLOSE_REASON_BYTES) break;
    bytes += size;
    end += char.length;
  }
  return text.slice(0, end);
}

/**
 * How long a socket we close may take to finish the closing handshake before it is dropped: ws would
 * wait 30 s, and the socket keeps its place (pending, or a slot of `maxConnections`) until it is gone.
 */
export const CLOSE_HANDSHAKE_MS = 1_000;

/** The part of a socket closing needs: a `ws` WebSocket, or a stand-in in tests. */
export interface ClosableSocket {
  /** ws ignores it on a socket already closing or closed. */
  close(code: number, reason?: string): void;
  /** Drops the connection without the closing handshake; nothing on a closed socket. */
  terminate(): void;
}

/**
 * Closes `socket` with `code` and a byte-safe `reason`, and drops it if the peer has not finished the
 * closing handshake within `CLOSE_HANDSHAKE_MS`: a socket already closing (tRPC closes one whose
 * connectionParams were malformed) is dropped then too.
 */
export function closeFirmly(socket: ClosableSocket, code: number, reason: string): void {
  socket.close(code, closeReason(reason));
  setTimeout(() => socket.terminate(), CLOSE_HANDSHAKE_MS).unref();
}

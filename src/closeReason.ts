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

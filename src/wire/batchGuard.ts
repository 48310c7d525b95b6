/**
 * tRPC refuses a batch larger than `maxBatchSize`, but answers each of its calls with an error, in
 * one synchronous loop: a 900 KB frame of 100,000 `{"id":1}` held the event loop for over a second
 * and wrote 4 MB of replies, from a socket that had not even authenticated. A frame that is a JSON
 * array of more calls than that is answered here, once, and never reaches the protocol.
 */

const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

const isWhitespace = (byte: number | undefined) => byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;

/**
 * Whether `frame` is a JSON array of more than `max` elements. It counts the commas between the
 * array's own elements (strings and nested values skipped) and stops as soon as it has seen enough:
 * a scan of the bytes, no parse. What is not valid JSON is the protocol's to refuse.
 */
export function isBatchLargerThan(frame: Buffer, max: number): boolean {
  let i = 0;
  while (isWhitespace(frame[i])) i++;
  if (frame[i] !== OPEN_ARRAY) return false;
  let depth = 0;
  let commas = 0;
  let inString = false;
  for (; i < frame.length; i++) {
    const byte = frame[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) depth++;
    else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) {
      if (--depth === 0) return false;
    } else if (byte === COMMA && depth === 1 && ++commas >= max) return true;
  }
  return false;
}

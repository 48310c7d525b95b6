import { describe, expect, it } from 'vitest';
import { closeReason, MAX_CLOSE_REASON_BYTES } from '../../src/closeSocket.js';

const bytes = (text: string) => Buffer.byteLength(text, 'utf8');

describe('closeReason', () => {
  it('keeps a short reason as it is', () => {
    expect(closeReason('expired')).toBe('expired');
    expect(closeReason('')).toBe('');
  });

  it.each([
    ['ASCII', 'x'.repeat(500)],
    ['CJK (3 bytes each)', '用'.repeat(100)],
    ['emoji (4 bytes, surrogate pairs)', '😀'.repeat(100)],
    ['mixed', `user ${'é😀用a'.repeat(60)} already has 10 connections`],
    ['a lone surrogate', `${'a'.repeat(120)}\ud800${'b'.repeat(10)}`],
  ])('cuts %s to at most 123 bytes, never inside a character', (_, text) => {
    const reason = closeReason(text);
    expect(bytes(reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    expect(text.startsWith(reason)).toBe(true);
    // Whole characters only: a text without lone surrogates keeps none, so re-encoding loses nothing.
    if (!/[\ud800-\udfff]/.test(text.replace(/[\ud800-\udbff][\udc00-\udfff]/g, '')))
      expect(Buffer.from(reason, 'utf8').toString('utf8')).toBe(reason);
    expect(reason.length).toBeGreaterThan(0);
  });

  it('never leaves half of a surrogate pair', () => {
    // 121 ASCII bytes, then a 4-byte emoji that does not fit: the emoji goes whole.
    const reason = closeReason(`${'a'.repeat(121)}😀`);
    expect(reason).toBe('a'.repeat(121));
  });
});

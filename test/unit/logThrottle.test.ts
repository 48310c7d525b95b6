import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { LogThrottle } from '../../src/logThrottle.js';

describe('LogThrottle', () => {
  it('writes one line per interval and kind, the next one saying how many were left out', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    let now = 0;
    const throttle = new LogThrottle(logger, () => now, 1_000);
    for (let i = 0; i < 100; i++) throttle.info('connection refused', { code: 'UNAUTHORIZED' });
    throttle.info('socket turned away', { why: 'atCapacity' });
    now = 999;
    throttle.info('connection refused', { code: 'UNAUTHORIZED' });
    now = 1_000;
    throttle.info('connection refused', { code: 'UNAUTHORIZED' });
    expect(lines.map((line) => [line['msg'], line['suppressed']])).toEqual([
      ['connection refused', undefined],
      ['socket turned away', undefined],
      ['connection refused', 100],
    ]);
  });
});

import type { Logger } from 'pino';

/**
 * Log lines that anyone on the network can cause (a refused socket, a socket turned away at
 * capacity) at most once per `intervalMs` per kind, each line saying how many like it were left out
 * since the last one: every refused socket once wrote an `info` line, so a flood of bad sockets was a
 * flood of log lines.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly intervalMs = 1_000,
  ) {}

  info(kind: string, fields: Record<string, unknown>): void {
    this.write('info', kind, fields);
  }

  warn(kind: string, fields: Record<string, unknown>): void {
    this.write('warn', kind, fields);
  }

  private write(level: 'info' | 'warn', kind: string, fields: Record<string, unknown>): void {
    const now = this.now();
    const entry = this.last.get(kind);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.last.set(kind, { at: now, suppressed: 0 });
    this.logger[level](suppressed > 0 ? { ...fields, suppressed } : fields, kind);
  }
}

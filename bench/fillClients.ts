/**
 * The clients that fill a server before a restore, in a process of their own so they never share
 * the benchmark's event loop with a scenario running meanwhile (see lib/ipcChild.ts):
 * `node --import tsx bench/fillClients.ts '<FillClientsRequest JSON>'`.
 * Opens `sessions` raw sessions, `concurrency` at a time; every other one's first call is
 * `game.join` (games of `gameSize`), the others' `session.info`. All but the last `keepOpen` drop
 * their socket at once (terminate: the server makes them stale). Sends `{ type: 'filled' }`, then
 * `{ type: 'closed' }` once the server has closed the sockets kept open (its drain), and exits.
 */
import { sendToParent } from './lib/ipcChild.js';
import { inBatches, RawSession } from './lib/rawSession.js';

export interface FillClientsRequest {
  wsUrl: string;
  sessions: number;
  keepOpen: number;
  gameSize: number;
  concurrency: number;
  userPrefix: string;
}

export type FillClientsMessage =
  | { type: 'filled'; seconds: number }
  | { type: 'closed'; codes: Record<string, number> }
  | { type: 'failed'; error: string };

process.on('disconnect', () => process.exit(0));
try {
  const request = JSON.parse(process.argv[2] ?? '') as FillClientsRequest;
  const { sessions: n, keepOpen, gameSize } = request;
  const codes: Record<string, number> = {};
  const closed: Promise<void>[] = [];
  const start = performance.now();
  await inBatches(n, request.concurrency, async (i) => {
    const join = {
      method: 'mutation',
      path: 'game.join',
      input: { gameId: `${request.userPrefix}-g${Math.floor(i / (2 * gameSize))}` },
    } as const;
    const session = await RawSession.open(
      request.wsUrl,
      `${request.userPrefix}-${i}`,
      10_000,
      i % 2 === 0 ? join : undefined,
    );
    if (i < n - keepOpen) {
      session.ws.terminate();
      return;
    }
    closed.push(
      new Promise((resolve) =>
        session.ws.once('close', (code) => {
          codes[code] = (codes[code] ?? 0) + 1;
          resolve();
        }),
      ),
    );
  });
  await sendToParent({ type: 'filled', seconds: (performance.now() - start) / 1000 } satisfies FillClientsMessage);
  await Promise.all(closed);
  await sendToParent({ type: 'closed', codes } satisfies FillClientsMessage);
  process.exit(0);
} catch (error) {
  await sendToParent({
    type: 'failed',
    error: error instanceof Error ? error.message : String(error),
  } satisfies FillClientsMessage);
  process.exit(1);
}

/**
 * Paced heartbeat clients in a process of their own, so the process that hosts a server in process
 * measures the server's memory and not theirs (see lib/ipcChild.ts):
 * `node --import tsx bench/heartbeatClients.ts '<HeartbeatClientsRequest JSON>'`.
 * Sends `{ type: 'ready' }` once every session is open; answers `{ type: 'mark' }` with
 * `{ type: 'counts', counts }`; on `{ type: 'stop' }` stops, closes its sockets, answers and exits.
 */
import { sendToParent } from './lib/ipcChild.js';
import { startPaced, type HeartbeatCounts } from './lib/paced.js';
import { closeAll, inBatches, RawSession } from './lib/rawSession.js';

export interface HeartbeatClientsRequest {
  wsUrl: string;
  sessions: number;
  intervalMs: number;
  userPrefix: string;
}

export type HeartbeatClientsMessage =
  { type: 'ready' } | { type: 'counts'; seq: number; counts: HeartbeatCounts } | { type: 'failed'; error: string };

export type HeartbeatClientsCommand = { type: 'mark'; seq: number } | { type: 'stop'; seq: number };

process.on('disconnect', () => process.exit(0));
try {
  const request = JSON.parse(process.argv[2] ?? '') as HeartbeatClientsRequest;
  const sessions = await inBatches(request.sessions, 50, (i) =>
    RawSession.open(request.wsUrl, `${request.userPrefix}-${i}`),
  );
  const paced = startPaced(sessions, request.intervalMs);
  const counts = (seq: number): HeartbeatClientsMessage => ({ type: 'counts', seq, counts: { ...paced.counts } });
  process.on('message', (command: HeartbeatClientsCommand) => {
    if (command.type === 'mark') {
      void sendToParent(counts(command.seq));
      return;
    }
    void paced
      .stop()
      .then(() => closeAll(sessions.map((session) => session.ws)))
      .then(() => sendToParent(counts(command.seq)))
      .finally(() => process.exit(0));
  });
  await sendToParent({ type: 'ready' } satisfies HeartbeatClientsMessage);
} catch (error) {
  await sendToParent({
    type: 'failed',
    error: error instanceof Error ? error.message : String(error),
  } satisfies HeartbeatClientsMessage);
  process.exit(1);
}

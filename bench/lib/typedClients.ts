import { WebSocket } from 'ws';
import { createPresenceClient, type PresenceClient, type WebSocketConstructor } from '../../src/client/index.js';
import { inBatches } from './rawSession.js';

/**
 * `count` typed clients (`${prefix}-${i}`, dev auth, no heartbeat timer), opened 50 at a time and ready.
 * They are pushed into `clients` as they open, so the caller's `finally` closes them even if one fails.
 */
export async function openTypedClients(wsUrl: string, count: number, prefix: string, clients: PresenceClient[]) {
  await inBatches(count, 50, async (i) => {
    const client = createPresenceClient({
      url: wsUrl,
      userId: `${prefix}-${i}`,
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      heartbeat: false,
    });
    clients.push(client);
    await client.ready;
  });
  return clients;
}

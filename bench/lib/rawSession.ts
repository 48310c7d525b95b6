import { WebSocket } from 'ws';

/**
 * The lightest client that makes a real session: a `ws` socket speaking tRPC's WebSocket protocol
 * by hand — the `connectionParams` message (dev auth), then one `session.info` query — and nothing
 * else (no typed client, no subscriptions, no heartbeats). It stays idle until closed.
 */
export function openRawSession(wsUrl: string, userId: string, timeoutMs = 10_000): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl}?connectionParams=1`);
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`session for ${userId} not ready in ${timeoutMs} ms`)), timeoutMs);
    function fail(error: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.terminate();
      reject(error);
    }
    ws.once('open', () => {
      ws.send(JSON.stringify({ method: 'connectionParams', data: { userId } }));
      ws.send(JSON.stringify({ id: 1, method: 'query', params: { path: 'session.info', input: {} } }));
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const text = isBinary ? '' : data.toString('utf8');
      // The server's keep-alive: answer it like the typed client does.
      if (text === 'PING') return ws.send('PONG');
      if (settled) return;
      let message: { id?: unknown; error?: unknown };
      try {
        message = JSON.parse(text) as typeof message;
      } catch {
        return fail(new Error(`not JSON from the server: ${text.slice(0, 200)}`));
      }
      if (message.id !== 1) return;
      if (message.error !== undefined) return fail(new Error(`session.info failed: ${text.slice(0, 200)}`));
      settled = true;
      clearTimeout(timer);
      resolve(ws);
    });
    // After success, errors surface as 'close'; the listener stays so ws never throws an unhandled 'error'.
    ws.on('error', (error) => fail(error));
    ws.once('close', (code) => fail(new Error(`socket closed (${code}) before session.info answered`)));
  });
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight; results in order. */
export async function inBatches<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array<T>(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, () => worker()));
  return results;
}

/** Closes sockets and waits until each one is closed (or `timeoutMs` passed, then terminates). */
export async function closeAll(sockets: readonly WebSocket[], timeoutMs = 10_000): Promise<void> {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve();
          const timer = setTimeout(() => {
            ws.terminate();
            resolve();
          }, timeoutMs);
          ws.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          ws.close(1000, 'bench done');
        }),
    ),
  );
}

import superjson, { type SuperJSONResult } from 'superjson';
import { WebSocket } from 'ws';

/**
 * The lightest client that makes a real session: a `ws` socket speaking tRPC's WebSocket protocol
 * by hand — the `connectionParams` message (dev auth), then one `session.info` query — and nothing
 * else (no typed client, no subscriptions, no heartbeats). It stays idle until closed.
 */
export function openRawSession(
  wsUrl: string,
  userId: string,
  timeoutMs = 10_000,
  /** The first call, sent right behind `connectionParams`. @default `session.info` */
  first: FirstCall = { method: 'query', path: 'session.info', input: undefined },
): Promise<WebSocket> {
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
      ws.send(
        JSON.stringify({
          id: 1,
          method: first.method,
          params: { path: first.path, input: superjson.serialize(first.input) },
        }),
      );
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
      if (message.error !== undefined) return fail(new Error(`${first.path} failed: ${text.slice(0, 200)}`));
      settled = true;
      clearTimeout(timer);
      resolve(ws);
    });
    // After success, errors surface as 'close'; the listener stays so ws never throws an unhandled 'error'.
    ws.on('error', (error) => fail(error));
    ws.once('close', (code) => fail(new Error(`socket closed (${code}) before ${first.path} answered`)));
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

/** A query or mutation written by hand; `input` is superjson-encoded on the way. */
export interface FirstCall {
  method: 'query' | 'mutation';
  path: string;
  input: unknown;
}

/** A procedure call failed: tRPC answered with an error, the socket closed, or no answer came in time. */
export class CallError extends Error {
  override readonly name = 'CallError';
}

/**
 * A raw session that makes calls: `openRawSession` (connectionParams + `session.info`), then tRPC
 * frames written by hand with superjson-encoded inputs, answered by id. No typed client, no retries.
 */
export class RawSession {
  private nextId = 2;
  private readonly pending = new Map<number, { resolve: (data: unknown) => void; reject: (error: Error) => void }>();

  private constructor(
    readonly ws: WebSocket,
    readonly userId: string,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return;
      const text = data.toString('utf8');
      if (text === 'PING' || text === 'PONG') return;
      let message: { id?: unknown; result?: { data?: unknown }; error?: unknown };
      try {
        message = JSON.parse(text) as typeof message;
      } catch {
        return;
      }
      const call = typeof message.id === 'number' ? this.pending.get(message.id) : undefined;
      if (!call || typeof message.id !== 'number') return;
      this.pending.delete(message.id);
      if (message.error !== undefined) call.reject(new CallError(text.slice(0, 300)));
      else call.resolve(superjson.deserialize((message.result?.data ?? { json: null }) as SuperJSONResult));
    });
    ws.on('close', (code) => {
      for (const call of this.pending.values()) call.reject(new CallError(`socket closed (${code})`));
      this.pending.clear();
    });
  }

  static async open(wsUrl: string, userId: string, timeoutMs = 10_000, first?: FirstCall): Promise<RawSession> {
    return new RawSession(await openRawSession(wsUrl, userId, timeoutMs, first), userId);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** One query or mutation; resolves with the decoded result. */
  call(method: 'query' | 'mutation', path: string, input?: unknown, timeoutMs = 10_000): Promise<unknown> {
    if (!this.open) return Promise.reject(new CallError(`${path}: socket not open`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CallError(`${path}: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (data) => {
          clearTimeout(timer);
          resolve(data);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      // Always an `input`, even for procedures without one: the server deserializes it unconditionally.
      this.ws.send(JSON.stringify({ id, method, params: { path, input: superjson.serialize(input) } }));
    });
  }

  heartbeat(): Promise<unknown> {
    return this.call('mutation', 'session.heartbeat', { clientTime: Date.now() });
  }

  /** Closes the socket and resolves once it is closed (terminated after `timeoutMs`). */
  close(timeoutMs = 10_000): Promise<void> {
    return closeAll([this.ws], timeoutMs);
  }

  /** Resolves once the socket is closed, however (the server closes it after `session.leave`). */
  closed(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => this.ws.once('close', () => resolve()));
  }
}

import type { Socket } from 'node:net';
import superjson, { type SuperJSONResult } from 'superjson';
import { WebSocket, type RawData } from 'ws';

/** The `error` of a tRPC reply, after superjson: what `errorFormatter` made of the error. */
export interface RawError {
  message: string;
  /** JSON-RPC code, e.g. -32700 for PARSE_ERROR. */
  code: number;
  data: { code: string; httpStatus: number; path?: string };
}

/** One tRPC WebSocket reply, with `result.data` and `error` decoded from superjson. */
export interface RawReply {
  id: number | string | null;
  result?: { type: 'data' | 'started' | 'stopped'; id?: string; data?: unknown };
  error?: RawError;
}

export type RawMethod = 'query' | 'mutation' | 'subscription';

export interface RawClose {
  code: number;
  reason: string;
}

export interface RawSocketOptions {
  /** How long `reply()` and `request()` wait before they fail. @default 5000 */
  timeoutMs?: number;
}

/**
 * A tRPC client without the client: a `ws` socket to `${wsUrl}?connectionParams=1` that sends the
 * `connectionParams` message first, then whatever frames a test wants, and records every reply.
 * Timeouts here are deadlines on replies that should come, never waits for time to pass.
 */
export class RawSocket implements AsyncDisposable {
  /** Every reply in arrival order, including `id: null` ones. */
  readonly replies: RawReply[] = [];
  /** Frames from the server that were not JSON (tests expect none). */
  readonly unparsed: string[] = [];
  /** Resolves with the close code the client saw (1006 when the TCP connection just went away). */
  readonly closed: Promise<RawClose>;
  private nextId = 1;
  private readonly listeners = new Set<() => void>();
  private tcp: Socket | null = null;
  private closeInfo: RawClose | null = null;

  private constructor(
    readonly ws: WebSocket,
    private readonly timeoutMs: number,
  ) {
    // The upgrade response carries the TCP socket: the slow-consumer test pauses it.
    ws.once('upgrade', (response) => {
      this.tcp = response.socket;
    });
    ws.on('message', (data: RawData, isBinary) => this.onMessage(data, isBinary));
    // A reset socket emits 'error' before 'close'; the close code says all a test needs.
    ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        this.notify();
      });
    });
  }

  /** Opens a socket and sends `connectionParams` (strings only, as tRPC clients do). */
  static open(wsUrl: string, connectionParams: Record<string, string>, options: RawSocketOptions = {}) {
    return RawSocket.openWithFirstFrame(
      wsUrl,
      JSON.stringify({ method: 'connectionParams', data: connectionParams }),
      options,
    );
  }

  /** Opens a socket that announces connectionParams, then sends `frame` where they belong. */
  static async openWithFirstFrame(wsUrl: string, frame: string, options: RawSocketOptions = {}): Promise<RawSocket> {
    const ws = new WebSocket(`${wsUrl}?connectionParams=1`);
    const socket = new RawSocket(ws, options.timeoutMs ?? 5_000);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send(frame);
    return socket;
  }

  /** The TCP socket under the WebSocket. */
  get tcpSocket(): Socket {
    if (!this.tcp) throw new Error('the socket has not been upgraded');
    return this.tcp;
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends one frame exactly as given. */
  send(frame: string | Buffer, options: { binary?: boolean } = {}): void {
    this.ws.send(frame, { binary: options.binary ?? typeof frame !== 'string' });
  }

  /** Sends a tRPC request with a fresh id; `input` is superjson-encoded as a tRPC client would. */
  call(method: RawMethod, path: string, input?: unknown): number {
    const id = this.nextId++;
    this.send(JSON.stringify({ id, method, params: { path, input: superjson.serialize(input) } }));
    return id;
  }

  /** `call()`, then its first reply that is not a subscription's `started`. */
  async request(method: RawMethod, path: string, input?: unknown): Promise<RawReply> {
    return this.reply(this.call(method, path, input));
  }

  /** The first reply (received or to come) for `id` that matches `accept`. */
  reply(id: number | string | null, accept: (reply: RawReply) => boolean = isFinal): Promise<RawReply> {
    return this.until(`a reply to id ${String(id)}`, () =>
      this.replies.find((reply) => reply.id === id && accept(reply)),
    );
  }

  /** Resolves with `check()`'s first defined value, re-checked on every reply and on close. */
  until<T>(what: string, check: () => T | undefined, timeoutMs = this.timeoutMs): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise<T>((resolve, reject) => {
      const listener = () => {
        const value = check();
        if (value !== undefined) {
          done();
          resolve(value);
        } else if (this.closeInfo) {
          done();
          reject(new Error(`socket closed (${this.closeInfo.code}) while waiting for ${what}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
      listener();
    });
  }

  async close(): Promise<RawClose> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) this.ws.close();
    // A paused socket would never read the server's close frame.
    this.tcp?.resume();
    const timer = setTimeout(() => this.ws.terminate(), 1_000);
    const closed = await this.closed;
    clearTimeout(timer);
    return closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private onMessage(data: RawData, isBinary: boolean) {
    const text = isBinary ? '' : rawText(data);
    if (text === 'PING') {
      this.ws.send('PONG');
      return;
    }
    if (text === 'PONG') return;
    let wire: WireReply;
    try {
      wire = JSON.parse(text) as WireReply;
    } catch {
      this.unparsed.push(text);
      return;
    }
    this.replies.push(decode(wire));
    this.notify();
  }

  private notify() {
    for (const listener of [...this.listeners]) listener();
  }
}

/** A reply as it is on the wire: `result.data` and `error` are superjson envelopes. */
interface WireReply {
  id: number | string | null;
  result?: { type: 'data' | 'started' | 'stopped'; id?: string; data?: SuperJSONResult };
  error?: SuperJSONResult;
}

function decode(wire: WireReply): RawReply {
  const reply: RawReply = { id: wire.id };
  if (wire.result) {
    const { data, ...rest } = wire.result;
    reply.result = data === undefined ? rest : { ...rest, data: superjson.deserialize(data) };
  }
  if (wire.error) reply.error = superjson.deserialize<RawError>(wire.error);
  return reply;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

/** A subscription's `started` is not its answer; data, `stopped` and errors are. */
export function isFinal(reply: RawReply): boolean {
  return reply.result?.type !== 'started';
}

/** The `data.code` of an error reply, or `'OK'` for a result: what tests assert on. */
export function outcome(reply: RawReply): string {
  return reply.error ? reply.error.data.code : 'OK';
}

/** The text of every frame the server sends `socket` from now on, PING excepted: for byte comparisons. */
export function frameTexts(socket: RawSocket): string[] {
  const seen: string[] = [];
  socket.ws.on('message', (data: RawData, isBinary) => {
    const text = isBinary ? '' : rawText(data);
    if (text !== 'PING') seen.push(text);
  });
  return seen;
}

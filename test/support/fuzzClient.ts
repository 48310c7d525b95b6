import { connect, type Socket } from 'node:net';
import superjson, { type SuperJSONResult } from 'superjson';
import { WebSocket, type RawData } from 'ws';
import type { Frame, FuzzCase, SocketEnd, SocketPlan } from './fuzzFrames.js';

/**
 * Replays a fuzz case (fuzzFrames.ts) against a server and says what was wrong with the answers.
 * Waits are bounds, never the point: a socket gets at most `replyWaitMs` for the replies to its
 * calls, so a case costs tens of milliseconds whatever the server does.
 */

export interface FuzzTarget {
  /** `ws://host:port/trpc` */
  wsUrl: string;
  port: number;
}

export interface FuzzBounds {
  /** How long a socket waits for replies after its last frame. */
  replyWaitMs: number;
  /** How long opening a socket may take. */
  openMs: number;
}

/** Sockets the fuzz left open on purpose: the server must close them (silent `connectionParams` sockets). */
export interface Lingering {
  ws: WebSocket;
  openedAt: number;
  closedAt: number | null;
}

/** One error reply: its tRPC code and message, for the report's list of distinct errors. */
export interface SeenError {
  code: string;
  message: string;
}

export interface CaseOutcome {
  /** What the answers got wrong: internal errors, unreadable frames, leaked internals. Empty when all is well. */
  problems: string[];
  errors: SeenError[];
}

/** A message that reads like an internal failure rather than an answer about the request. */
const INTERNAL_TEXT =
  /Cannot read propert|Cannot set propert|Cannot destructure|is not a function|is not iterable|is not defined|Maximum call stack|\bat \S+ \(|node_modules|file:\/\/|\/src\/|\.ts:\d+/;

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

function sendFrame(ws: WebSocket, frame: Frame) {
  if (ws.readyState !== WebSocket.OPEN) return;
  if ('text' in frame) ws.send(frame.text);
  else if ('binary' in frame) ws.send(frame.binary, { binary: true });
  else ws.send(frame.textBytes, { binary: false });
}

/** The ids a frame asks to be answered (calls and subscriptions with a string or number id). */
function expectedIds(frame: Frame): number {
  if (!('text' in frame)) return 0;
  try {
    const parsed: unknown = JSON.parse(frame.text);
    return (Array.isArray(parsed) ? parsed : [parsed]).filter((m) => typeof m === 'object' && m !== null).length;
  } catch {
    return 1;
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

/** Checks one frame from the server; appends what is wrong with it. */
function inspectReply(data: RawData, isBinary: boolean, outcome: CaseOutcome) {
  const text = rawText(data);
  if (isBinary) outcome.problems.push(`a binary frame from the server: ${text.slice(0, 200)}`);
  if (text === 'PING' || text === 'PONG') return;
  let reply: { error?: SuperJSONResult } | null;
  try {
    reply = JSON.parse(text) as { error?: SuperJSONResult } | null;
  } catch {
    outcome.problems.push(`a frame that is not JSON: ${text.slice(0, 200)}`);
    return;
  }
  if (reply === null || typeof reply !== 'object' || reply.error === undefined) return;
  let error: { message?: unknown; data?: { code?: unknown; stack?: unknown } };
  try {
    error = superjson.deserialize(reply.error);
  } catch {
    outcome.problems.push(`an error that superjson cannot read: ${text.slice(0, 200)}`);
    return;
  }
  const code = String(error.data?.code);
  const message = String(error.message);
  outcome.errors.push({ code, message: message.slice(0, 300) });
  if (code === 'INTERNAL_SERVER_ERROR') outcome.problems.push(`INTERNAL_SERVER_ERROR: ${message.slice(0, 300)}`);
  if (INTERNAL_TEXT.test(message)) outcome.problems.push(`internal text in a ${code} reply: ${message.slice(0, 300)}`);
  if (error.data?.stack !== undefined) outcome.problems.push(`a stack trace in a ${code} reply`);
}

interface Opened {
  ws: WebSocket;
  tcp: Socket | null;
  answered: () => number;
}

/** Opens a socket (false if it could not be opened within the bound, e.g. refused at capacity). */
async function open(url: string, bounds: FuzzBounds, outcome: CaseOutcome): Promise<Opened | null> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  let tcp: Socket | null = null;
  let answered = 0;
  ws.once('upgrade', (response) => (tcp = response.socket));
  ws.on('error', () => undefined);
  ws.on('message', (data: RawData, isBinary) => {
    answered++;
    inspectReply(data, isBinary, outcome);
  });
  const ok = await Promise.race([
    new Promise<boolean>((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('close', () => resolve(false));
    }),
    wait(bounds.openMs).then(() => false),
  ]);
  if (!ok) {
    ws.terminate();
    return null;
  }
  return { ws, tcp, answered: () => answered };
}

/** Waits until `count` frames came back, the socket closed, or the bound passed. */
async function settle(socket: Opened, count: number, bounds: FuzzBounds) {
  const deadline = performance.now() + bounds.replyWaitMs;
  while (socket.answered() < count && socket.ws.readyState === WebSocket.OPEN && performance.now() < deadline) {
    await wait(5);
  }
}

function end(socket: Opened, how: SocketEnd, lingering: Lingering[]) {
  switch (how) {
    case 'close':
      socket.ws.close();
      setTimeout(() => socket.ws.terminate(), 1_000).unref();
      return;
    case 'terminate':
      socket.ws.terminate();
      return;
    case 'reset':
      if (socket.tcp) socket.tcp.resetAndDestroy();
      else socket.ws.terminate();
      return;
    case 'linger': {
      const entry: Lingering = { ws: socket.ws, openedAt: performance.now(), closedAt: null };
      socket.ws.once('close', () => (entry.closedAt = performance.now()));
      lingering.push(entry);
      return;
    }
  }
}

async function runSocket(
  target: FuzzTarget,
  plan: SocketPlan,
  bounds: FuzzBounds,
  outcome: CaseOutcome,
  lingering: Lingering[],
) {
  const { opening } = plan;
  const url = opening.kind === 'noParams' ? target.wsUrl : `${target.wsUrl}?connectionParams=1`;
  const socket = await open(url, bounds, outcome);
  if (!socket) return;
  if (opening.kind === 'params')
    sendFrame(socket.ws, { text: JSON.stringify({ method: 'connectionParams', data: opening.data }) });
  if (opening.kind === 'firstFrame') sendFrame(socket.ws, opening.frame);
  let expected = 0;
  for (const frame of plan.frames) {
    sendFrame(socket.ws, frame);
    expected += expectedIds(frame);
  }
  if (expected > 0) await settle(socket, expected, bounds);
  end(socket, plan.end, lingering);
}

/** A hand-written upgrade request over TCP, then a reset or an end. */
async function runUpgrade(target: FuzzTarget, c: Extract<FuzzCase, { kind: 'upgrade' }>, bounds: FuzzBounds) {
  const tcp = connect(target.port, '127.0.0.1');
  tcp.on('error', () => undefined);
  const connected = await Promise.race([
    new Promise<boolean>((resolve) => tcp.once('connect', () => resolve(true))),
    wait(bounds.openMs).then(() => false),
  ]);
  if (!connected) return void tcp.destroy();
  tcp.write(
    `GET ${c.path} HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\n${c.headers.map((h) => `${h}\r\n`).join('')}\r\n`,
  );
  if (c.end === 'resetAfterAnswer') {
    await Promise.race([new Promise((resolve) => tcp.once('data', resolve)), wait(bounds.replyWaitMs)]);
  }
  if (c.end === 'end') {
    tcp.end();
    setTimeout(() => tcp.destroy(), 1_000).unref();
  } else tcp.resetAndDestroy();
}

/** Runs one case: every socket in parallel. Returns what was wrong with the server's answers. */
export async function runFuzzCase(
  target: FuzzTarget,
  c: FuzzCase,
  bounds: FuzzBounds,
  lingering: Lingering[],
): Promise<CaseOutcome> {
  const outcome: CaseOutcome = { problems: [], errors: [] };
  switch (c.kind) {
    case 'sockets':
      await Promise.all(c.sockets.map((plan) => runSocket(target, plan, bounds, outcome, lingering)));
      break;
    case 'crowd': {
      const opening = { kind: 'params' as const, data: { userId: c.userId } };
      const plans = Array.from({ length: c.count }, () => ({ opening, frames: c.frames, end: c.end }));
      await Promise.all(plans.map((plan) => runSocket(target, plan, bounds, outcome, lingering)));
      break;
    }
    case 'upgrade':
      await runUpgrade(target, c, bounds);
      break;
    case 'subscriptions': {
      const calls = c.calls.map((call, i) => ({
        text: JSON.stringify({
          id: i + 1,
          method: 'subscription',
          params: { path: call.path, input: superjson.serialize(call.input) },
        }),
      }));
      const plan: SocketPlan = {
        opening: { kind: 'params', data: { userId: c.userId, role: 'admin' } },
        frames: calls,
        end: c.end,
      };
      await runSocket(target, plan, bounds, outcome, lingering);
      break;
    }
  }
  return outcome;
}

/** A case as text for a report: long strings and byte arrays cut, so a shrunk case stays readable. */
export function describeCase(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'string' && v.length > 600) return `${v.slice(0, 300)}…(${v.length} chars)…${v.slice(-40)}`;
    if (v instanceof Uint8Array) {
      const hex = Buffer.from(v.subarray(0, 48)).toString('hex');
      return `<${v.length} bytes: ${hex}${v.length > 48 ? '…' : ''}>`;
    }
    if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
    if (v === undefined) return '<undefined>';
    return v;
  });
}

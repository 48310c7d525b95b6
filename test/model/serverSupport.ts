import { createServer, type AddressInfo } from 'node:net';
import { WebSocket } from 'ws';
import { createPresenceClient, type PresenceClient, type PresenceClientOptions } from '../../src/client/index.js';
import type { Member, PresenceEvent } from '../../src/protocol.js';
import type { PresenceServer } from '../../src/server.js';
import type { PresenceStore } from '../../src/store/types.js';

/**
 * A WebSocket class for the typed client whose connections go to the server only while `open`:
 * while closed they go to a TCP listener that hangs up at once, so the client's own reconnect loop
 * keeps failing (1006) until the gate opens, and then reconnects and resumes with its token. This
 * lets a test decide when a dropped client comes back, with the client's real reconnect and resume.
 */
export async function socketGate() {
  const sink = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const sinkPort = (sink.address() as AddressInfo).port;
  const state = { open: true };
  /** Connections that got an answer from the server: upgraded, or refused with an HTTP status. */
  const answered: number[] = [];
  class GatedWebSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[]) {
      const target = new URL(address);
      const toServer = state.open;
      if (!toServer) target.port = String(sinkPort);
      super(target, protocols);
      if (!toServer) return;
      this.once('open', () => answered.push(Date.now()));
      this.once('error', (error) => {
        if (/Unexpected server response/.test(error.message)) answered.push(Date.now());
      });
    }
  }
  return {
    WebSocket: GatedWebSocket as unknown as PresenceClientOptions['WebSocket'],
    /** How many connection attempts the server answered so far. */
    get answered() {
      return answered.length;
    },
    get open() {
      return state.open;
    },
    set open(value: boolean) {
      state.open = value;
    },
    async [Symbol.asyncDispose]() {
      await new Promise<void>((resolve) => sink.close(() => resolve()));
    },
  };
}

/** Drops the server side of a connection's socket without a close handshake, as a lost network does. */
export function dropSocket(server: PresenceServer, connectionId: string) {
  const socket = server.services.connections.get(connectionId)?.socket;
  if (!(socket instanceof WebSocket)) throw new Error(`no socket attached to ${connectionId}`);
  socket.terminate();
}

/** A typed client of its own (not tied to one server fixture, so it can outlive a restart). */
export function presenceClient(
  wsUrl: string,
  userId: string,
  options: Partial<PresenceClientOptions> = {},
): PresenceClient {
  return createPresenceClient({
    url: wsUrl,
    userId,
    WebSocket: WebSocket as unknown as PresenceClientOptions['WebSocket'],
    heartbeat: false,
    retryBaseMs: 10,
    retryMaxMs: 40,
    ...options,
  });
}

/** A presence event reduced to what a path decides: who, and what happened to them. */
export type SeenEvent =
  | { type: 'join' | 'update'; connectionId: string; state: Member['state'] }
  | { type: 'leave'; connectionId: string; reason: string };

export function seen(event: Exclude<PresenceEvent, { type: 'sync' }>): SeenEvent {
  if (event.type === 'leave') return { type: 'leave', connectionId: event.member.connectionId, reason: event.reason };
  return { type: event.type, connectionId: event.member.connectionId, state: event.member.state };
}

/** One `presence.game` stream as an observer sees it: its syncs and what followed the last one. */
export interface GameStream {
  syncs: number;
  /** The members of the last `sync`. */
  members: { connectionId: string; state: Member['state'] }[];
  /** Every event since the last `sync`. */
  events: SeenEvent[];
  unsubscribe(): void;
}

export function watchGame(client: PresenceClient, gameId: string): GameStream {
  const stream: GameStream = { syncs: 0, members: [], events: [], unsubscribe: () => undefined };
  const subscription = client.api.presence.game.subscribe(
    { gameId },
    {
      onData: ({ data }) => {
        if (data.type === 'sync') {
          stream.syncs++;
          stream.members = data.members.map((m) => ({ connectionId: m.connectionId, state: m.state }));
          stream.events = [];
        } else stream.events.push(seen(data));
      },
    },
  );
  stream.unsubscribe = () => subscription.unsubscribe();
  return stream;
}

/**
 * A store whose `loadNode` waits until `release()`: the server stays in `starting` (restoring,
 * `/health/ready` 503) for as long as the test wants, as it does while a slow Redis is read.
 */
export function heldStore(store: PresenceStore) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const held: PresenceStore = {
    ...store,
    loadNode: async (nodeId) => {
      await released;
      return store.loadNode(nodeId);
    },
  };
  return { store: held, release };
}

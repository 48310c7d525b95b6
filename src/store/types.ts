import type { EndReason } from '../protocol.js';

/** What the store keeps of one connection: the persisted actor snapshot plus what indexes need. */
export interface ConnectionRecord {
  /** Bumped when the stored shape changes; a record of another version is skipped on load. */
  v: 1;
  connectionId: string;
  userId: string;
  nodeId: string;
  state: 'connected' | 'inGame' | 'stale';
  gameId: string | null;
  /** Epoch ms. */
  lastSeen: number;
  /** Epoch ms; `null` while not stale. */
  expiresAt: number | null;
  /** SHA-256 of the resume token (never the token itself). */
  resumeTokenHash: string;
  ip: string | null;
  userAgent: string | null;
  /** `actor.getPersistedSnapshot()` of the connection machine. */
  snapshot: unknown;
}

export interface HistoryRecord {
  connectionId: string;
  userId: string;
  nodeId: string;
  ip: string | null;
  userAgent: string | null;
  /** Epoch ms. */
  connectedAt: number;
  /** Epoch ms. */
  endedAt: number;
  reason: EndReason;
  games: string[];
}

/** What `loadNode` read back: only records that passed validation, and why the others did not. */
export interface LoadResult {
  records: ConnectionRecord[];
  skipped: { key: string; reason: string }[];
  /** The node's last flush (epoch ms): the latest moment it is known to have been alive. */
  lastAlive: number | null;
}

export interface FlushResult {
  written: number;
  removed: number;
}

/** What `end` did with an ended connection. */
export type EndResult =
  /** Removed and its history written, before `end` resolved. */
  | 'stored'
  /**
   * The backing service did not answer: the removal (if it may hold the connection) and the history
   * record wait in the write-behind queue and are written once it is back.
   */
  | 'queued';

/**
 * Where connection snapshots, their indexes and history live. Writes are write-behind: `persist` only
 * marks a connection, and `flush` (on a timer, and on demand) writes the latest version
 * of each marked connection once — however many times it changed in between. An end is not:
 * `end` writes it directly, so an end acknowledged to anyone is already stored.
 */
export interface PresenceStore {
  readonly kind: 'memory' | 'redis';
  /** The node whose connections this store writes. */
  readonly nodeId: string;
  /** Connects (Redis) and resolves once the store can be read. */
  open(): Promise<void>;
  /** `down` while the backing service is unreachable; writes wait in the queue meanwhile. */
  status(): 'up' | 'down';
  /**
   * Called when the backing service is back after being down (possibly empty, after its own restart):
   * the server then marks every live connection, and the next flush rebuilds the stored state.
   */
  onReconnect(listener: () => void): void;
  /** Marks a connection for writing; `read` is called at flush time, so it sees the latest state. */
  persist(connectionId: string, read: () => ConnectionRecord): void;
  /**
   * A connection ended: removes its record and index entries and appends its history record, now,
   * not at the next flush. Its pending `persist` is dropped, and a flush that was under way cannot bring
   * it back (the caller puts nothing for it afterwards). Resolves
   * `'queued'` when the backing service did not answer: the removal is then queued if the service
   * may hold the record (it was written, or is in a write under way), else dropped.
   */
  end(connectionId: string, history: HistoryRecord): Promise<EndResult>;
  /** Writes everything marked so far. */
  flush(): Promise<FlushResult>;
  /** How many connections are marked and not yet written. */
  pending(): number;
  /** How many history records are not written yet. */
  pendingHistory(): number;
  /** Every valid connection record owned by a node (restore after a restart). */
  loadNode(nodeId: string): Promise<LoadResult>;
  connectionsOfUser(userId: string): Promise<string[]>;
  connectionsOfGame(gameId: string): Promise<string[]>;
  appendHistory(record: HistoryRecord): Promise<void>;
  /** Newest first. */
  history(query: { userId?: string; limit: number }): Promise<HistoryRecord[]>;
  close(): Promise<void>;
}

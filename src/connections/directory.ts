import type { AdminConnection } from '../protocol.js';
import type { Connection } from './connection.js';

/**
 * The connections of this node that have not ended, by id and by the hash of their resume token
 * (the token itself is never kept for a restored connection). A connection leaves both the moment
 * it ends, before its end is stored.
 */
export class ConnectionDirectory {
  private readonly byId = new Map<string, Connection>();
  private readonly byToken = new Map<string, Connection>();

  get size(): number {
    return this.byId.size;
  }

  add(connection: Connection): void {
    this.byId.set(connection.connectionId, connection);
    this.byToken.set(connection.resumeTokenHash, connection);
  }

  delete(connection: Connection): void {
    this.byId.delete(connection.connectionId);
    this.byToken.delete(connection.resumeTokenHash);
  }

  get(connectionId: string): Connection | undefined {
    return this.byId.get(connectionId);
  }

  has(connectionId: string): boolean {
    return this.byId.has(connectionId);
  }

  /** The live connection a resume token was issued for, if it was issued to `userId`. */
  byResume(tokenHash: string, userId: string): Connection | undefined {
    const connection = this.byToken.get(tokenHash);
    return connection && connection.userId === userId && !connection.ended ? connection : undefined;
  }

  values(): IterableIterator<Connection> {
    return this.byId.values();
  }

  /** `admin.connections`: rows in the order the connections opened, filtered, at most `limit`. */
  list(
    query: { userId?: string | undefined; gameId?: string | undefined; limit: number },
    nodeId: string,
  ): AdminConnection[] {
    const out: AdminConnection[] = [];
    for (const connection of this.byId.values()) {
      if (out.length >= query.limit) break;
      if (query.userId !== undefined && connection.userId !== query.userId) continue;
      if (query.gameId !== undefined && connection.context.gameId !== query.gameId) continue;
      out.push(connection.adminRow(nodeId));
    }
    return out;
  }

  clear(): void {
    this.byId.clear();
    this.byToken.clear();
  }
}

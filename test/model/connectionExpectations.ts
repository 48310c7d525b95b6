import type { AbstractGame, ConnectionModelEventType, ConnectionModelSnapshot } from './connectionModel.js';
import type { SeenEvent } from './serverSupport.js';

/** The abstract games, as game ids. */
export const games: Record<AbstractGame, string> = { A: 'game-A', B: 'game-B' };
export const other = (game: AbstractGame | null): AbstractGame => (game === 'A' ? 'B' : 'A');
export const gameIdOf = (game: AbstractGame | null) => (game === null ? null : games[game]);

export { closeCodeFor } from '../../src/protocol.js';

/** The subject's own calls: each is activity, so a stale connection comes back before it acts. */
const calls: ReadonlySet<ConnectionModelEventType> = new Set(['HEARTBEAT', 'JOIN', 'MOVE', 'LEAVE_GAME', 'LEAVE']);

/**
 * What an observer subscribed to `presence.game` must see for one step, per game:
 * `join`/`leave` with their reasons, `update` on active ↔ stale, nothing for heartbeats.
 */
export function presenceEffects(
  previous: ConnectionModelSnapshot,
  event: ConnectionModelEventType,
  connectionId: string,
): [AbstractGame, SeenEvent][] {
  const game = previous.context.game;
  const wasStale = previous.value === 'stale';
  const out: [AbstractGame, SeenEvent][] = [];
  const update = (g: AbstractGame, state: 'active' | 'stale') => out.push([g, { type: 'update', connectionId, state }]);
  const join = (g: AbstractGame) => out.push([g, { type: 'join', connectionId, state: 'active' }]);
  const leave = (g: AbstractGame, reason: string) => out.push([g, { type: 'leave', connectionId, reason }]);
  // Every call is activity first (the `authed` middleware): a stale member turns active again.
  if (calls.has(event) && wasStale && game) update(game, 'active');
  switch (event) {
    case 'HEARTBEAT':
    case 'RESTART':
      break;
    case 'JOIN':
      if (game !== 'A') {
        if (game) leave(game, 'moved');
        join('A');
      }
      break;
    case 'MOVE':
      if (game) leave(game, 'moved');
      join(other(game));
      break;
    case 'LEAVE_GAME':
    case 'LEAVE':
      if (game) leave(game, 'left');
      break;
    case 'SOCKET_DROP':
    case 'SILENCE':
      if (game && !wasStale) update(game, 'stale');
      break;
    case 'RESUME':
      if (game) update(game, 'active');
      break;
    case 'GRACE_ELAPSED':
      if (game) leave(game, 'expired');
      break;
    case 'KICK':
      if (game) leave(game, 'kicked');
      break;
    case 'REPLACE':
      if (game) leave(game, 'replaced');
      break;
  }
  return out;
}

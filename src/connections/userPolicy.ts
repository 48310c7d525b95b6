import type { ResolvedConfig } from '../config.js';
import { PresenceError } from '../errors.js';
import type { PresenceIndex } from '../presence/presenceIndex.js';
import type { ConnectionDirectory } from './directory.js';
import type { MachineRunner } from './runner.js';

export interface UserPolicyOptions {
  config: Pick<ResolvedConfig, 'userPolicy' | 'maxConnectionsPerUser'>;
  presence: PresenceIndex;
  directory: ConnectionDirectory;
  runner: MachineRunner;
}

/**
 * What a user's new connection does to the ones it already has: under `multi` it is refused beyond
 * `maxConnectionsPerUser`; under `replace` the others end (`replaced`, by `connectionId`). Settles,
 * under `replace`, once the ends of the connections it replaced are stored and announced.
 */
export function applyUserPolicy(
  options: UserPolicyOptions,
  request: { userId: string; connectionId: string; at: number },
): Promise<void> | null {
  const { config, presence, directory, runner } = options;
  // Connections whose end is still being stored are gone from the directory already: not counted.
  const others = presence.connectionsOfUser(request.userId).filter((view) => directory.has(view.connectionId));
  if (config.userPolicy !== 'replace') {
    if (others.length >= config.maxConnectionsPerUser) {
      throw new PresenceError(
        'TOO_MANY_REQUESTS',
        `user ${request.userId} already has ${others.length} connections (cap ${config.maxConnectionsPerUser})`,
      );
    }
    return null;
  }
  const replaced: Promise<void>[] = [];
  for (const view of others) {
    const old = directory.get(view.connectionId);
    if (!old) continue;
    // Its `replaced` event goes out with the rest of its end, once that is stored.
    old.replacedBy = request.connectionId;
    runner.deliver(old, { type: 'END', reason: 'replaced', at: request.at });
    if (old.ending) replaced.push(old.ending);
  }
  return replaced.length > 0 ? Promise.all(replaced).then(() => undefined) : null;
}

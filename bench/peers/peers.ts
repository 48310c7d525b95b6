import { bareWs } from './bareWs.js';
import { handRolled } from './handRolled.js';
import { presencedMemory, presencedRedis } from './presenced.js';

/** Every peer, in the column order of the tables. */
export const peers = [bareWs, handRolled, presencedMemory, presencedRedis];
export { bareWs, handRolled, presencedMemory, presencedRedis };

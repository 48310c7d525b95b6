import { bareWs } from './bareWs.js';
import { presencedMemory, presencedRedis } from './presenced.js';
import { handRolled, socketIo } from './socketIo.js';

/** Every peer, in the column order of the tables. */
export const peers = [bareWs, socketIo, handRolled, presencedMemory, presencedRedis];
export { bareWs, handRolled, presencedMemory, presencedRedis, socketIo };

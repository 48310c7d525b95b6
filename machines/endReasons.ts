/**
 * Why a session ended, the one list every other one derives from: the machine's context and `END`
 * event, the wire types and their zod schemas (src/protocol.ts), stored records, close codes and
 * history. `expired` is the only one the machine decides by itself. No imports: src/protocol.ts
 * re-exports it, and `presenced/client` must not pull XState in with it.
 */
export const endReasons = ['left', 'expired', 'replaced', 'kicked'] as const;
export type EndReason = (typeof endReasons)[number];

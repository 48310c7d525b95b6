import { createWebSocketInspector } from '@statelyai/inspect';
import type { AnyActorRef, InspectionEvent, Observer } from 'xstate';

const REDACTED = '[redacted]';

/** Keys whose values are credentials or personal data, whatever they hold. */
const secretKey =
  /token|resume|secret|password|passwd|authorization|cookie|session.?id|jwt|^ip$|ipaddress|remote.?address|user.?agent/i;
/** A JWT (three base64url segments, the first one a JSON header). */
const jwtShape = /^eyJ[\w-]*\.[\w-]+\.[\w-]*$/;
const ipv4Shape = /^(?:\d{1,3}\.){3}\d{1,3}$/;
/** IPv6 forms that a game id cannot take: with `::`, or eight groups. */
const ipv6Shape =
  /^(?:[0-9a-f]{0,4}:)*:(?:[0-9a-f]{0,4}:?)*(?:\d{1,3}(?:\.\d{1,3}){3})?$|^(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}$/i;

/**
 * A copy of `value` with credentials and addresses replaced by `[redacted]`: by key (tokens, resume
 * tokens, session ids, cookies, IPs, user agents) and by shape (JWTs, IP addresses) anywhere inside.
 * The machines hold none of these today; this keeps a future field from leaking to an inspector.
 */
export function scrub(value: unknown, depth = 0): unknown {
  if (depth > 12) return REDACTED;
  if (typeof value === 'string') {
    return jwtShape.test(value) || ipv4Shape.test(value) || ipv6Shape.test(value) ? REDACTED : value;
  }
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    out[key] = secretKey.test(key) ? REDACTED : scrub(item, depth + 1);
  }
  return out;
}

/** Events that say nothing a viewer needs and would flood the inspector. */
const quiet = new Set(['HEARTBEAT']);

function eventTypeOf(event: InspectionEvent): string | undefined {
  if (event.type === '@xstate.event' || event.type === '@xstate.snapshot') return event.event.type;
  return undefined;
}

/**
 * The inspector names an actor by its id. A connection's child id is its slot in its shard
 * (machines/shard.ts `slotId`); its systemId is the connection id, which is the name to show. XState
 * announces an actor before it sets its systemId, and @statelyai/inspect reads the id later, when it
 * converts the event: hence a getter.
 */
function namedBySystemId(event: InspectionEvent & { type: '@xstate.actor' }): InspectionEvent {
  const actorRef = event.actorRef as AnyActorRef & { systemId?: string };
  const named = Object.create(actorRef, { id: { get: () => actorRef.systemId ?? actorRef.id } }) as AnyActorRef;
  return { ...event, actorRef: named };
}

/**
 * Sends actor events to a Stately inspector relay (`presenced inspect` starts one). Off unless
 * `PRESENCED_INSPECT` is set. @statelyai/inspect defers and stringifies every event it is given, so
 * heartbeats and internal events are dropped here, before any of that work, and everything that is
 * sent is scrubbed of secrets.
 */
export function createInspection(url: string): { observer: Observer<InspectionEvent>; stop(): void } {
  const inspector = createWebSocketInspector({
    url,
    sanitizeContext: (context) => scrub(context) as typeof context,
    sanitizeEvent: (event) => scrub(event) as typeof event,
  });
  return {
    observer: {
      next(event) {
        if (event.type !== '@xstate.actor' && event.type !== '@xstate.event' && event.type !== '@xstate.snapshot') {
          return;
        }
        const type = eventTypeOf(event);
        if (type !== undefined && quiet.has(type)) return;
        inspector.inspect.next?.(event.type === '@xstate.actor' ? namedBySystemId(event) : event);
      },
    },
    stop: () => inspector.stop(),
  };
}

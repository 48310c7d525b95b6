import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AdmissionCounts } from './admission.js';
import type { Services } from '../services.js';

export interface HttpOptions {
  services: Services;
  /** True while the node serves: false while restoring or draining. */
  ready: () => boolean;
  /** Sockets holding a slot, and sockets waiting to authenticate. */
  sockets: () => AdmissionCounts;
}

function json(res: ServerResponse, status: number, body: unknown) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `/health`, `/health/ready`, `/health/connections` (see the README). */
export function createHttpHandler({ services, ready, sockets }: HttpOptions) {
  const { config, presence, store } = services;
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method not allowed' });
    switch (path) {
      case '/health': {
        const status = store.status();
        return json(res, 200, {
          status: status === 'up' ? 'ok' : 'degraded',
          nodeId: config.nodeId,
          store: store.kind,
          ...(store.kind === 'redis' ? { redis: status } : {}),
          connections: presence.stats().connections,
          sockets: sockets(),
        });
      }
      case '/health/ready':
        return ready() ? json(res, 200, { ready: true }) : json(res, 503, { ready: false });
      case '/health/connections': {
        const { connections, users, games, byState, perGame } = presence.stats();
        return json(res, 200, { total: connections, users, games, byState, perGame });
      }
      default:
        return json(res, 404, { error: 'not found', path });
    }
  };
}

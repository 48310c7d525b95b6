#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { signToken } from '../wire/auth.js';
import { ConfigError, configFromEnv, MIN_JWT_SECRET_BYTES, utf8Bytes } from '../config.js';
import { exportMachines } from './machineGraph.js';
import { createPresenceServer } from '../server.js';

const usage = `usage:
  presenced [serve]                                   run the server (configured by environment variables)
  presenced token --user ID [--role admin] [--ttl 1h] print an HS256 JWT signed with PRESENCED_JWT_SECRET,
                                                      expiring after --ttl (default 1h), with iss / aud from
                                                      PRESENCED_JWT_ISSUER / PRESENCED_JWT_AUDIENCE when set
  presenced machines [--format mermaid|json]          print the state machine definitions
  presenced inspect [--port 8080]                     run a local Stately inspector relay`;

function fail(message: string): never {
  process.stderr.write(`presenced: ${message}\n`);
  process.exit(1);
}

async function serve() {
  let config;
  try {
    config = configFromEnv();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  const { production: _production, ...options } = config;
  const server = createPresenceServer(options);
  // Signals are handled from the start: a SIGTERM while restoring (Redis unreachable, say) still
  // drains. The exit code says whether the store took everything: 0 when it did, 1 when snapshots,
  // removals or history records were left unwritten (a supervisor or an operator must know that a
  // restart will not find them).
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stdout.write(`presenced: ${signal}, draining\n`);
    server
      .drain()
      .then(async (left) => {
        await server.close();
        if (left.connections === 0 && left.history === 0) process.exit(0);
        process.stderr.write(
          `presenced: the store did not take ${left.connections} connection(s) and ${left.history} history record(s); exiting 1\n`,
        );
        process.exit(1);
      })
      .catch((error: unknown) => {
        process.stderr.write(`presenced: shutdown failed: ${String(error)}\n`);
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  let listening;
  try {
    listening = await server.listen();
  } catch (error) {
    // close() during the restore makes listen() give up; the stop above exits.
    if (stopping) return;
    throw error;
  }
  const { url, wsUrl } = listening;
  const how =
    config.auth === 'dev'
      ? `connectionParams { userId: 'alice' } (dev auth)`
      : `connectionParams { token: '<jwt>' } (jwt auth; npx presenced token --user alice)`;
  process.stdout.write(
    `presenced ${server.nodeId} listening on ${url} (store: ${server.services.store.kind})\n` +
      `  connect a client to ${wsUrl} with ${how}\n  health: ${url}/health\n`,
  );
}

async function token(args: string[]) {
  const { values } = parseArgs({
    args,
    options: { user: { type: 'string' }, role: { type: 'string' }, ttl: { type: 'string' } },
  });
  const secret = process.env['PRESENCED_JWT_SECRET'];
  // The server refuses a shorter secret: a token signed with one could never be used.
  if (!secret || utf8Bytes(secret) < MIN_JWT_SECRET_BYTES)
    fail(`PRESENCED_JWT_SECRET must be set (at least ${MIN_JWT_SECRET_BYTES} bytes) to sign tokens`);
  if (!values.user) fail('--user is required');
  if (values.ttl !== undefined && !/^\d+\s*(s|m|h|d|w)$/.test(values.ttl))
    fail(`invalid --ttl ${values.ttl}: use e.g. 90s, 15m, 1h, 7d`);
  // Unset and empty alike mean "not checked", as for the server (configFromEnv).
  const issuer = process.env['PRESENCED_JWT_ISSUER'] || undefined;
  const audience = process.env['PRESENCED_JWT_AUDIENCE'] || undefined;
  const jwt = await signToken({ secret, userId: values.user, role: values.role, ttl: values.ttl, issuer, audience });
  process.stdout.write(`${jwt}\n`);
}

function machines(args: string[]) {
  const { values } = parseArgs({ args, options: { format: { type: 'string', default: 'mermaid' } } });
  if (values.format !== 'mermaid' && values.format !== 'json')
    fail(`invalid --format ${values.format}: mermaid or json`);
  process.stdout.write(`${exportMachines(values.format)}\n`);
}

async function inspect(args: string[]) {
  const { values } = parseArgs({ args, options: { port: { type: 'string', default: '8080' } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) fail(`invalid --port ${values.port}: 1–65535`);
  const { createInspectorServer } = await import('@statelyai/inspect/server');
  const relay = createInspectorServer({ port, autoOpen: false });
  process.stdout.write(
    `Stately inspector relay on ws://127.0.0.1:${port}\n` +
      `  start presenced with PRESENCED_INSPECT=ws://127.0.0.1:${port}\n` +
      `  open http://127.0.0.1:${port} in a browser (the inspector UI itself loads from stately.ai)\n`,
  );
  const stop = () => {
    relay.stop();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

const [command = 'serve', ...args] = process.argv.slice(2);
try {
  switch (command) {
    case 'serve':
      await serve();
      break;
    case 'token':
      await token(args);
      break;
    case 'machines':
      machines(args);
      break;
    case 'inspect':
      await inspect(args);
      break;
    case '--help':
    case 'help':
      process.stdout.write(`${usage}\n`);
      break;
    default:
      fail(`unknown command ${command}\n${usage}`);
  }
} catch (error) {
  if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS'))
    fail(error.message);
  throw error;
}

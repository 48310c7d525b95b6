import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

/** A port nothing listens on right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/**
 * A `redis-server` of our own on a free loopback port, nothing persisted: tests never touch the
 * machine's Redis on 6379. `kill()` and `start()` let a test take it down and bring it back (empty).
 */
export interface TestRedis extends AsyncDisposable {
  readonly port: number;
  readonly url: string;
  /** A fresh key prefix: each test its own namespace, never FLUSHALL. */
  prefix(): string;
  /** A client for assertions, closed on dispose. */
  client(): Redis;
  start(): Promise<void>;
  /** SIGKILL: no goodbye to connected clients, like a crash or a network cut. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server stops answering but its sockets stay open (half-open). */
  pause(): void;
  resume(): void;
}

async function waitForPing(port: number, deadline: number) {
  for (;;) {
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      if ((await probe.ping()) === 'PONG') return;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer in time`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    } finally {
      probe.disconnect();
    }
  }
}

export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  const clients: Redis[] = [];

  const start = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'],
      { stdio: 'ignore' },
    );
    await waitForPing(port, Date.now() + 10_000);
  };
  const kill = async () => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGKILL');
    await exited;
  };
  await start();

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    prefix: () => `test-${randomUUID().slice(0, 8)}`,
    client() {
      const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      client.on('error', () => undefined);
      clients.push(client);
      return client;
    },
    start,
    kill,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async [Symbol.asyncDispose]() {
      for (const client of clients) client.disconnect();
      child?.kill('SIGCONT');
      await kill();
    },
  };
}

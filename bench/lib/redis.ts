import { Redis } from 'ioredis';
import { startRedis, type TestRedis } from '../../test/support/redis.js';
import { trackPid, untrackPid } from './children.js';

/**
 * A private `redis-server` (test/support/redis.ts: a free loopback port, nothing persisted, never
 * the machine's 6379) whose PID is registered with the benchmark's kill-on-exit list, and a client
 * of its own for `INFO` and for checking what the server stored.
 */
export interface BenchRedis extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
  /** The benchmark's own connection: every command it sends is one of `PROBE_COMMANDS`. */
  readonly probe: Redis;
  /** A fresh key prefix. */
  prefix(): string;
  /** `INFO commandstats` and `INFO stats` now. */
  counters(): Promise<RedisCounters>;
  /** SIGKILL, like a crash; `start()` brings it back empty on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
}

export interface RedisCounters {
  /** Calls per command (`hset`, `client|setinfo`, …) since the redis-server started. */
  calls: Map<string, number>;
  /** Bytes Redis read from all its clients. */
  netInputBytes: number;
}

/**
 * Never counted: what the benchmark itself sends (its `INFO` polls, its checks of the stored state)
 * and connection handshakes (HELLO, CLIENT SETINFO: once per connection, not per operation). The
 * server under test sends none of these per operation.
 */
export const PROBE_COMMANDS = new Set(['info', 'hlen', 'hget', 'scard', 'hello', 'client|setinfo', 'client|setname']);

async function pidOf(probe: Redis): Promise<number> {
  const info = await probe.info('server');
  const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new Error('redis-server did not tell its process id');
  return pid;
}

export async function startBenchRedis(): Promise<BenchRedis> {
  const redis: TestRedis = await startRedis();
  let pid: number | null = null;
  // Not `redis.client()`: ioredis' default backoff (up to 5 s) would make the probe, not the server
  // under test, the slow one to notice that Redis is back.
  const probe = new Redis({
    port: redis.port,
    host: '127.0.0.1',
    maxRetriesPerRequest: 1,
    retryStrategy: () => 20,
  });
  probe.on('error', () => undefined);
  try {
    pid = await pidOf(probe);
    trackPid(pid);
  } catch (error) {
    await redis[Symbol.asyncDispose]();
    throw error;
  }
  return {
    url: redis.url,
    port: redis.port,
    probe,
    prefix: () => redis.prefix().replace(/^test-/, 'bench-'),
    async counters() {
      const [commandstats, stats] = await Promise.all([probe.info('commandstats'), probe.info('stats')]);
      const calls = new Map<string, number>();
      for (const match of commandstats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
        calls.set(match[1] ?? '', Number(match[2]));
      }
      return { calls, netInputBytes: Number(/^total_net_input_bytes:(\d+)/m.exec(stats)?.[1] ?? Number.NaN) };
    },
    async kill() {
      await redis.kill();
      if (pid !== null) untrackPid(pid);
      pid = null;
    },
    async start() {
      await redis.start();
      // The probe reconnects by itself (every 20 ms); wait for it, then register the new process.
      for (let attempt = 0; ; attempt++) {
        try {
          pid = await pidOf(probe);
          break;
        } catch (error) {
          if (attempt > 250) throw error;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      trackPid(pid);
    },
    async [Symbol.asyncDispose]() {
      probe.disconnect();
      await redis[Symbol.asyncDispose]();
      if (pid !== null) untrackPid(pid);
    },
  };
}

/** What the server under test sent between two readings of the counters. */
export interface CommandDelta {
  /** Every command except PINGs and the benchmark's own (`PROBE_COMMANDS`). */
  total: number;
  /** The store's keep-alive PING, once a second: reported apart. */
  pings: number;
  /** Per command (upper case), most frequent first, without PING and the probe's. */
  byCommand: [string, number][];
  netInputBytes: number;
}

export function commandDelta(before: RedisCounters, after: RedisCounters): CommandDelta {
  const byCommand: [string, number][] = [];
  let total = 0;
  let pings = 0;
  for (const [command, calls] of after.calls) {
    const delta = calls - (before.calls.get(command) ?? 0);
    if (delta <= 0) continue;
    if (command === 'ping') pings += delta;
    else if (!PROBE_COMMANDS.has(command)) {
      total += delta;
      byCommand.push([command.toUpperCase(), delta]);
    }
  }
  byCommand.sort((a, b) => b[1] - a[1]);
  return { total, pings, byCommand, netInputBytes: after.netInputBytes - before.netInputBytes };
}

/**
 * Resolves once the node whose hash is `nodeKey` has flushed after `sinceMs` (epoch ms). Every flush
 * is one pipeline whose `HSET` sets the hash's `:alive` field to the time the flush started, after
 * taking the queue: a flush stamped after `sinceMs` took everything marked before it, and its index
 * commands (`SADD`/`SREM`), which precede that `HSET` in the pipeline, have run too.
 */
export async function waitForFlushAfter(redis: BenchRedis, nodeKey: string, sinceMs: number, timeoutMs = 10_000) {
  await waitUntil(
    `a flush of ${nodeKey} after ${new Date(sinceMs).toISOString()}`,
    async () => Number(await redis.probe.hget(nodeKey, ':alive')) > sinceMs,
    timeoutMs,
    20,
  );
}

/**
 * Resolves once a flush that started after `sinceMs` has run whole: the commands that follow its
 * `HSET` in the pipeline (`HDEL`, the TTL refresh's `EXPIRE`s) have run once the next flush's
 * `HSET` has, since the store sends its pipelines one after the other on one connection.
 */
export async function waitForWholeFlushAfter(redis: BenchRedis, nodeKey: string, sinceMs: number, timeoutMs = 10_000) {
  await waitForFlushAfter(redis, nodeKey, sinceMs, timeoutMs);
  const stamped = Number(await redis.probe.hget(nodeKey, ':alive'));
  await waitForFlushAfter(redis, nodeKey, stamped, timeoutMs);
}

/** Polls `check` every `everyMs` until it returns true; throws with `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
  everyMs = 50,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

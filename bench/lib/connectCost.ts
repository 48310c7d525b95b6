import { PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { systemClock } from '../../src/clock.js';
import { configFromOptions } from '../../src/config.js';
import {
  createConnections,
  type ConnectionHandle,
  type Connections,
  type SocketLike,
} from '../../src/connections/registry.js';
import { Feeds, Topics } from '../../src/presence/feeds.js';
import { LocalBus } from '../../src/presence/topic.js';
import { PresenceIndex } from '../../src/presence/presenceIndex.js';
import { createMemoryStore } from '../../src/store/memory.js';

export interface ConnectCostRequest {
  /** Connections per supervisor shard; a huge value puts every connection into one flat shard. */
  shardCapacity: number;
  /** Connects on the measured instance (stops earlier at `timeLimitMs`). */
  count: number;
  /** Connects on a separate, discarded instance first, so the JIT is warm before measuring. */
  warmup: number;
  /** Stop connecting after this long (the flat layout is quadratic). */
  timeLimitMs: number;
  batchSize: number;
  /** Sessions ended (`session.leave`) per measurement of the end cost. */
  ends: number;
}

export interface ConnectCostResult {
  request: ConnectCostRequest;
  /** Wall-clock microseconds per connect, one entry per complete batch, in order. */
  batchMicros: number[];
  /** Process CPU microseconds (every thread) per connect, per batch: less sensitive to neighbours. */
  batchCpuMicros: number[];
  /** Of `batchMicros`, the part spent in GC pauses of the main thread, per connect. */
  batchGcMicros: number[];
  /** Connects done on the measured instance (a multiple of `batchSize`). */
  connected: number;
  /** Whether `timeLimitMs` cut the run short. */
  timedOut: boolean;
  totalSeconds: number;
  warmupSeconds: number;
  /** Heap growth per connection after a full GC, in bytes (NaN without --expose-gc). */
  heapPerConnection: number;
  /** Ending sessions on a small instance (live count falling from 1,000 + ends/2 to 1,000 − ends/2). */
  endSmall: EndCost;
  /** Ending sessions on the measured instance once it is full (live count falling by `ends`). */
  endLarge: EndCost;
}

export interface EndCost {
  /** Live connections halfway through the measurement. */
  liveAround: number;
  /** Microseconds per ended session, one entry per batch. */
  batchMicros: number[];
}

/** The real connect path of the server, with the in-memory store and a silent logger. */
function createRuntime(shardCapacity: number): Connections {
  const config = configFromOptions({});
  const topics = new Topics(new LocalBus(systemClock.now()));
  const presence = new PresenceIndex({ topics });
  const connections = createConnections({
    config,
    store: createMemoryStore({ nodeId: config.nodeId }),
    presence,
    feeds: new Feeds({
      topics,
      presence,
      clock: systemClock,
      stats: () => ({ nodeId: config.nodeId, ...presence.stats(), nodes: [] }),
    }),
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    hooks: {},
    shardCapacity,
  });
  // Nothing to restore: start accepting connections.
  connections.start();
  return connections;
}

const socket: SocketLike = { close() {}, terminate() {} };
const NEAR_LIVE = 1_000;

function connect(connections: Connections, i: number): ConnectionHandle {
  // One connection per user: the per-user cap (10) must not refuse anything.
  return connections.open({ userId: `user-${i}`, role: 'user', ip: null, userAgent: null, socket });
}

/** Ends the first `count` of `handles` (`session.leave`), timing batches of `batchSize`. */
function measureEnds(connections: Connections, handles: ConnectionHandle[], count: number, batchSize: number): EndCost {
  const liveAround = connections.size - count / 2;
  const batchMicros: number[] = [];
  for (let done = 0; done + batchSize <= count; done += batchSize) {
    const start = performance.now();
    for (let i = done; i < done + batchSize; i++) {
      const handle = handles[i];
      if (handle) connections.end(handle, 'left');
    }
    batchMicros.push(((performance.now() - start) * 1000) / batchSize);
  }
  return { liveAround, batchMicros };
}

const gc = (globalThis as { gc?: () => void }).gc;

function heapAfterGc(): number {
  gc?.();
  return process.memoryUsage().heapUsed;
}

/**
 * Nothing here calls `connections.stop()`: stopping n actors of one XState system scans every
 * scheduled event of that system per actor (O(n²), minutes at 50k). The worker process exits instead.
 */
export async function measureConnectCost(request: ConnectCostRequest): Promise<ConnectCostResult> {
  const { shardCapacity, count, warmup, timeLimitMs, batchSize, ends } = request;

  const warmStart = performance.now();
  const warm = createRuntime(shardCapacity);
  const warmHandles: ConnectionHandle[] = [];
  for (let i = 0; i < warmup; i++) warmHandles.push(connect(warm, i));
  measureEnds(warm, warmHandles, Math.min(ends, warmup), batchSize);
  const warmupSeconds = (performance.now() - warmStart) / 1000;

  const small = createRuntime(shardCapacity);
  const smallHandles: ConnectionHandle[] = [];
  // Centred on 1,000 live connections: from 1,000 + ends/2 down to 1,000 − ends/2.
  for (let i = 0; i < NEAR_LIVE + ends / 2; i++) smallHandles.push(connect(small, i));
  const endSmall = measureEnds(small, smallHandles, ends, batchSize);

  const heapBefore = heapAfterGc();
  // GC pauses are reported after the synchronous loop; their times place them in batches.
  const pauses: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries())
      pauses.push({ start: entry.startTime, end: entry.startTime + entry.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  const connections = createRuntime(shardCapacity);
  const handles: ConnectionHandle[] = [];
  const batches: { start: number; end: number; cpuMicros: number }[] = [];
  const start = performance.now();
  let timedOut = false;
  while (handles.length < count) {
    const cpuStart = process.cpuUsage();
    const batchStart = performance.now();
    for (let i = 0; i < batchSize; i++) handles.push(connect(connections, handles.length));
    const batchEnd = performance.now();
    const cpu = process.cpuUsage(cpuStart);
    batches.push({ start: batchStart, end: batchEnd, cpuMicros: cpu.user + cpu.system });
    if (batchEnd - start > timeLimitMs) {
      timedOut = handles.length < count;
      break;
    }
  }
  const totalSeconds = (performance.now() - start) / 1000;
  // GC entries are delivered asynchronously, after the synchronous loop.
  await sleep(100);
  observer.disconnect();
  const batchMicros = batches.map((batch) => ((batch.end - batch.start) * 1000) / batchSize);
  const batchCpuMicros = batches.map((batch) => batch.cpuMicros / batchSize);
  const batchGcMicros = batches.map((batch) => {
    let overlap = 0;
    for (const pause of pauses)
      overlap += Math.max(0, Math.min(batch.end, pause.end) - Math.max(batch.start, pause.start));
    return (overlap * 1000) / batchSize;
  });
  const connected = handles.length;
  if (connections.size !== connected) throw new Error(`expected ${connected} connections, have ${connections.size}`);
  const heapPerConnection = gc ? (heapAfterGc() - heapBefore) / connected : Number.NaN;
  const endLarge = measureEnds(connections, handles, Math.min(ends, connected), batchSize);

  return {
    request,
    batchMicros,
    batchCpuMicros,
    batchGcMicros,
    connected,
    timedOut,
    totalSeconds,
    warmupSeconds,
    heapPerConnection,
    endSmall,
    endLarge,
  };
}

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shardMachine } from '../../machines/shard.js';
import { supervisorMachine, supervisorStates } from '../../machines/supervisor.js';
import { startRedis, type TestRedis } from '../support/redis.js';
import { TransitionRecorder } from './coverage.js';
import { describePath, eventsOf } from './paths.js';
import { runSupervisorOnMachine } from './supervisorMachineDriver.js';
import { runSupervisorOnServer } from './supervisorServerDriver.js';
import { supervisorModel, supervisorShortestPaths, supervisorSimplePaths } from './supervisorModel.js';

/*
 * Paths: every shortest path of the abstract model (one per model transition, 49, 26 of them through
 * RESTART) and every simple path to `stopped` without RESTART (16, none longer than 10 events).
 * Nothing here waits for a timeout, so all of them also run against a server: about 6 s, restarts
 * included (a restart is a drain, a close and a new process on the same port, ~20 ms with Redis).
 */
const shortest = supervisorShortestPaths();
const simple = supervisorSimplePaths({ maxEvents: 10, limit: 100 });
const named = (paths: typeof shortest) => paths.map((path) => [describePath(path), path] as const);

describe('supervisor model', () => {
  it("has the real supervisor's states, and generates the paths these tests are sized for", () => {
    expect(Object.keys(supervisorModel.states)).toEqual([...supervisorStates]);
    expect(shortest).toHaveLength(49);
    expect(shortest.filter((path) => eventsOf(path).includes('RESTART'))).toHaveLength(26);
    expect([simple.paths.length, simple.total]).toEqual([16, 16]);
  });
});

describe('supervisor model against the real machines', () => {
  it.each(named(shortest))('shortest: %s', async (_, path) => {
    await runSupervisorOnMachine(path, new TransitionRecorder());
  });
  it.each(named(simple.paths))('simple: %s', async (_, path) => {
    await runSupervisorOnMachine(path, new TransitionRecorder());
  });
  it('visits every state and every transition of the supervisor and the shard machines', async () => {
    const recorder = new TransitionRecorder();
    for (const path of [...shortest, ...simple.paths]) await runSupervisorOnMachine(path, recorder);
    expect(recorder.missing(supervisorMachine)).toEqual({ states: [], transitions: [], unknown: [] });
    expect(recorder.missing(shardMachine)).toEqual({ states: [], transitions: [], unknown: [] });
  });
});

describe('supervisor model against a real server (Redis)', () => {
  // One redis-server for the file; every path has its own key prefix, node id and port.
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis[Symbol.asyncDispose]();
  });
  it.each(named(shortest))('shortest: %s', async (_, path) => {
    await runSupervisorOnServer(path, redis);
  });
  it.each(named(simple.paths))('simple: %s', async (_, path) => {
    await runSupervisorOnServer(path, redis);
  });
});

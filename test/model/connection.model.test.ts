import { describe, expect, it } from 'vitest';
import { connectionMachine, connectionStates } from '../../machines/connection.js';
import { connectionModel, connectionShortestPaths, connectionSimplePaths } from './connectionModel.js';
import { runOnMachine } from './connectionMachineDriver.js';
import { runOnServer } from './connectionServerDriver.js';
import { TransitionRecorder } from './coverage.js';
import { describePath, eventsOf } from './paths.js';

/*
 * Paths: every shortest path of the abstract model (one per model transition, 36), and its simple
 * paths to a final state without RESTART of at most 6 events (88 of 91; the other three are 7-event
 * variants of these). Against the machine they take milliseconds. Against a server each costs real
 * time — a SILENCE waits staleMs (300 ms), a GRACE_ELAPSED the grace period (700/900 ms), so 0.05 to
 * 2 s a path — and they run four at a time: about 25 s for the 115 paths without RESTART. The nine
 * shortest paths through RESTART run against Redis in connection.restart.model.test.ts.
 */
const shortest = connectionShortestPaths();
const simple = connectionSimplePaths({ maxEvents: 6, limit: 100 });
const named = (paths: typeof shortest) => paths.map((path) => [describePath(path), path] as const);

describe('connection model', () => {
  it("has the real machine's states, and generates the paths these tests are sized for", () => {
    expect(Object.keys(connectionModel.states)).toEqual([...connectionStates]);
    expect(shortest).toHaveLength(36);
    expect(shortest.filter((path) => eventsOf(path).includes('RESTART'))).toHaveLength(9);
    expect([simple.paths.length, simple.total]).toEqual([88, 88]);
  });
});

describe('connection model against the real machine', () => {
  it.each(named(shortest))('shortest: %s', async (_, path) => {
    await runOnMachine(path, new TransitionRecorder());
  });
  it.each(named(simple.paths))('simple: %s', async (_, path) => {
    await runOnMachine(path, new TransitionRecorder());
  });
  it('visits every state and every transition of the connection machine', async () => {
    const recorder = new TransitionRecorder();
    for (const path of [...shortest, ...simple.paths]) await runOnMachine(path, recorder);
    expect(recorder.missing(connectionMachine)).toEqual({ states: [], transitions: [], unknown: [] });
  });
});

describe.concurrent('connection model against a real server', () => {
  const withoutRestart = shortest.filter((path) => !eventsOf(path).includes('RESTART'));
  it.each(named(withoutRestart))('shortest: %s', async (_, path) => {
    await runOnServer(path);
  });
  it.each(named(simple.paths))('simple: %s', async (_, path) => {
    await runOnServer(path);
  });
});

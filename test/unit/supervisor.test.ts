import { describe, expect, it } from 'vitest';
import { createActor, SimulatedClock, type ActorRefFrom, type AnyActorRef } from 'xstate';
import { connectionMachine, type ConnectionTiming } from '../../machines/connection.js';
import { createTimerActions } from '../../machines/timers.js';
import { shardMachine } from '../../machines/shard.js';
import { supervisorMachine } from '../../machines/supervisor.js';

type ShardRef = ActorRefFrom<typeof shardMachine>;

const timing: ConnectionTiming = { staleMs: 1_000, expireMs: 1_000, inGameExpireMs: 1_000, warnMs: 0 };

function start(shardCapacity: number) {
  const clock = new SimulatedClock();
  const logic = supervisorMachine.provide({
    actors: {
      shard: shardMachine.provide({
        actors: { connection: connectionMachine.provide({ actions: createTimerActions(clock).actions }) },
      }),
    },
  });
  const supervisor = createActor(logic, { clock, input: { shardCapacity } }).start();
  const connect = (id: string) =>
    supervisor.send({ type: 'CONNECT', input: { connectionId: id, userId: id, at: clock.now(), timing } });
  const shards = () => Object.keys(supervisor.getSnapshot().children);
  const connection = (id: string) => supervisor.system.get(id) as AnyActorRef | undefined;
  return { supervisor, clock, connect, shards, connection };
}

describe('supervisor machine', () => {
  it('goes starting → running → draining → stopped', () => {
    const { supervisor } = start(4);
    expect(supervisor.getSnapshot().value).toBe('starting');
    supervisor.send({ type: 'READY' });
    expect(supervisor.getSnapshot().value).toBe('running');
    supervisor.send({ type: 'DRAIN' });
    expect(supervisor.getSnapshot().value).toBe('draining');
    supervisor.send({ type: 'STOP' });
    expect(supervisor.getSnapshot().status).toBe('done');
  });

  it('accepts connections only while running', () => {
    const { supervisor, connect, connection } = start(4);
    connect('early');
    expect(connection('early')).toBeUndefined();
    supervisor.send({ type: 'READY' });
    connect('c1');
    expect(connection('c1')?.getSnapshot()).toMatchObject({ value: 'connected' });
    supervisor.send({ type: 'DRAIN' });
    connect('late');
    expect(connection('late')).toBeUndefined();
  });

  it('spawns into shards of bounded capacity, opening a new shard as each fills', () => {
    const { supervisor, connect, shards } = start(3);
    supervisor.send({ type: 'READY' });
    for (let i = 0; i < 7; i++) connect(`c${i}`);
    expect(shards()).toEqual(['shard-0', 'shard-1', 'shard-2']);
    const sizes = shards().map(
      (id) => Object.keys((supervisor.getSnapshot().children[id] as ShardRef).getSnapshot().children).length,
    );
    expect(sizes).toEqual([3, 3, 1]);
  });

  it('stops every ended connection and retires a sealed shard once it is empty (nothing leaks)', () => {
    const { supervisor, connect, shards, connection, clock } = start(2);
    supervisor.send({ type: 'READY' });
    connect('a');
    connect('b');
    connect('c');
    connection('a')?.send({ type: 'END', reason: 'left', at: clock.now() });
    expect(connection('a')).toBeUndefined();
    expect(shards()).toEqual(['shard-0', 'shard-1']);
    connection('b')?.send({ type: 'END', reason: 'kicked', at: clock.now() });
    // shard-0 was sealed after two spawns and is now empty: it retires and is stopped.
    expect(shards()).toEqual(['shard-1']);
    // Expiry by time ends the last one the same way.
    for (let i = 0; i < 250; i++) clock.increment(10);
    expect(connection('c')).toBeUndefined();
    const open = supervisor.getSnapshot().children['shard-1'] as ShardRef;
    expect(Object.keys(open.getSnapshot().children)).toEqual([]);
  });
});

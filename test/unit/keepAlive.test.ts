import { describe, expect, it } from 'vitest';
import { keepAliveSweepMs, sweepKeepAlive, type Liveness, type PingSocket } from '../../src/wire/keepAlive.js';

function socket() {
  const sent: string[] = [];
  const peer = { sent, terminated: false } as { sent: string[]; terminated: boolean } & PingSocket;
  peer.send = (data) => void sent.push(data);
  peer.terminate = () => void (peer.terminated = true);
  return peer;
}

const timing = { pingMs: 100, pongWaitMs: 200 };

describe('keep-alive sweep', () => {
  it('sweeps every eighth of the shorter interval, never more often than every 5 ms', () => {
    expect(keepAliveSweepMs(timing)).toBe(12.5);
    expect(keepAliveSweepMs({ pingMs: 25_000, pongWaitMs: 30_000 })).toBe(3_125);
    expect(keepAliveSweepMs({ pingMs: 4, pongWaitMs: 4 })).toBe(5);
  });

  it('pings after pingMs of silence, drops pongWaitMs after an unanswered ping', () => {
    const quiet = socket();
    const liveness: Liveness = { heard: false, quietSince: 0, pingedAt: null };
    const sweep = (at: number) => sweepKeepAlive([[quiet, liveness]], at, timing);
    sweep(75);
    expect(quiet.sent).toEqual([]);
    sweep(100);
    expect(quiet.sent).toEqual(['PING']);
    sweep(125);
    sweep(275);
    expect(quiet.sent).toEqual(['PING']);
    expect(quiet.terminated).toBe(false);
    sweep(300);
    expect(quiet.terminated).toBe(true);
  });

  it('any message is an answer and restarts the silence', () => {
    const chatty = socket();
    const liveness: Liveness = { heard: false, quietSince: 0, pingedAt: null };
    const sweep = (at: number) => sweepKeepAlive([[chatty, liveness]], at, timing);
    sweep(100);
    expect(chatty.sent).toEqual(['PING']);
    liveness.heard = true;
    sweep(125);
    expect(liveness).toEqual({ heard: false, quietSince: 125, pingedAt: null });
    sweep(200);
    expect(chatty.sent).toEqual(['PING']);
    sweep(225);
    expect(chatty.sent).toEqual(['PING', 'PING']);
    expect(chatty.terminated).toBe(false);
  });
});

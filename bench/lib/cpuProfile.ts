import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * A stretch of time in microseconds of the monotonic clock: V8 stamps profile samples with it, and
 * `process.hrtime` reads the same clock in every process of the machine, so the benchmark process can
 * say which samples of a child's profile fall into its measured window.
 */
export interface MicrosWindow {
  from: number;
  to: number;
}

export const nowMicros = () => Number(process.hrtime.bigint() / 1000n);

export interface SelfTime {
  name: string;
  /** Share of the profile's non-idle samples, 0–1. */
  share: number;
}

/** Where a frame's code comes from: a package under node_modules, presenced's own code, or Node. */
function origin(url: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  if (/\/(src|machines)\//.test(url)) return 'presenced (src/, machines/)';
  if (url.startsWith('node:') || url === '') return 'Node.js internals, GC, native';
  return url;
}

/**
 * Self time of the `.cpuprofile` written into `dir` by `node --cpu-prof --cpu-prof-dir dir`: the top
 * functions and the share per origin, over the samples that were not idle and fall into `window`
 * (all of them without one). `busy` is the share of the window's samples that were not idle.
 */
export function summariseProfile(
  dir: string,
  window?: MicrosWindow,
  top = 12,
): { functions: SelfTime[]; origins: SelfTime[]; busy: number } {
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const byFunction = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (window && (at < window.from || at > window.to)) return;
    const frame = byId.get(id)?.callFrame;
    const micros = profile.timeDeltas[i + 1] ?? 0;
    if (frame?.functionName === '(idle)') idle += micros;
    if (!frame || frame.functionName === '(idle)') return;
    const where = frame.url
      ? `${frame.url.replace(/^.*node_modules\//, '').replace(/^.*\/(src|machines)\//, '$1/')}:${frame.lineNumber + 1}`
      : '';
    const name = `${frame.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
    const from = origin(frame.url);
    byOrigin.set(from, (byOrigin.get(from) ?? 0) + micros);
    total += micros;
  });
  const ranked = (map: Map<string, number>, limit: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, micros]) => ({ name, share: micros / total }));
  return { functions: ranked(byFunction, top), origins: ranked(byOrigin, 8), busy: total / (total + idle) };
}

/**
 * The outage scenario in a process of its own (`node --expose-gc --import tsx bench/outageWorker.ts
 * '{"quick":…}'`, see lib/worker.ts): the server runs in this process, so its heap and RSS are the
 * server's and the harness', never those of whatever else the benchmark runs meanwhile. Prints the
 * report's sections as one JSON line.
 */
import { runRedisOutage } from './redisOutage.js';

const { quick } = JSON.parse(process.argv[2] ?? '{}') as { quick: boolean };
const sections = await runRedisOutage({
  quick,
  log: (line) => process.stderr.write(`bench-log ${line}\n`),
  quiet: () => Promise.resolve(),
});
process.stdout.write(`${JSON.stringify(sections)}\n`);
process.exit(0);

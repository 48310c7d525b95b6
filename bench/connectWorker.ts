/**
 * One connect-cost measurement in a fresh process (so one run's heap and JIT state never colour
 * the next): `node --expose-gc --import tsx bench/connectWorker.ts '<ConnectCostRequest JSON>'`.
 * Prints the result as one JSON line.
 */
import { measureConnectCost, type ConnectCostRequest } from './lib/connectCost.js';

const request = JSON.parse(process.argv[2] ?? '') as ConnectCostRequest;
const result = await measureConnectCost(request);
process.stdout.write(`${JSON.stringify(result)}\n`);
// The connection actors armed 60 s stale timers: do not wait for them.
process.exit(0);

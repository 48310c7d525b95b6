import { afterEach } from 'vitest';
import { installSentinel, takeCrashes } from './sentinel.js';

installSentinel();

// After every test: no crash in this process, no server child process that died or printed one.
afterEach(() => {
  const crashes = takeCrashes();
  if (crashes.length > 0) throw new Error(`the server under test crashed:\n${crashes.join('\n---\n')}`);
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'contract',
          include: ['test/contract/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          // The crash sentinel: a test fails if the server under test crashed during it.
          setupFiles: ['test/support/sentinelHooks.ts'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
      {
        test: {
          // The socket-facing integration tests again, with fast paths off (PRESENCED_FAST_PATHS=false,
          // the default of test/support's startServer and spawnServer): every call and event through the
          // procedures and the transformer must behave, and write, exactly as with them on.
          name: 'integration-slow-paths',
          include: [
            'test/integration/{presence,lifecycle,heartbeatFastPath,directEvents,badInput,errors,admin,hostile,endsAreFinal,session,trpcProtocol}.test.ts',
          ],
          env: { PRESENCED_FAST_PATHS: 'false' },
          setupFiles: ['test/support/sentinelHooks.ts'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
      {
        test: {
          // Paths generated from abstract models (xstate/graph), run against the real machines and a
          // real server over WebSocket (and a real redis-server for restarts).
          name: 'model',
          include: ['test/model/**/*.test.ts'],
          setupFiles: ['test/support/sentinelHooks.ts'],
          testTimeout: 60_000,
          hookTimeout: 20_000,
          // Server paths mostly wait on real timers; a few at a time keeps the run short.
          maxConcurrency: 4,
        },
      },
    ],
  },
});

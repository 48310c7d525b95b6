import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.bench-tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The router's procedures return values and event streams; how they reach a socket is the wire's business.
    files: ['src/router/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/wire/**', '**/connections/**'],
              message:
                'the router knows procedures and the services interface, not the wire or the connections internals',
            },
          ],
        },
      ],
    },
  },
  {
    // Presence is fed by the connections and read by the router and the wire; it knows neither.
    files: ['src/presence/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/wire/**', '**/router/**', '**/connections/**', '**/store/**'],
              message: 'presence is the membership index and its topics: it imports nothing that serves or stores',
            },
          ],
        },
      ],
    },
  },
  {
    // A store keeps records and history; it knows nothing of sockets, procedures or presence.
    files: ['src/store/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/wire/**', '**/router/**', '**/connections/**', '**/presence/**'],
              message: 'a store keeps records: it imports nothing that serves them',
            },
          ],
        },
      ],
    },
  },
  {
    // The connections run the machines; the wire and the router call them, never the other way round.
    files: ['src/connections/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/wire/**', '**/router/**'],
              message: 'the connections run machines and their effects: no wire, no procedures',
            },
          ],
        },
      ],
    },
  },
  {
    // The machines are pure XState logic; the server binds their actions.
    files: ['machines/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/src/**'], message: 'the machines are pure: nothing from src/' }] },
      ],
    },
  },
  {
    files: ['eslint.config.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);

// Type-aware lint (typescript-eslint). Prettier owns the layout; this file owns correctness rules.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const nodeGlobals = {
  process: 'readonly',
  console: 'readonly',
  URL: 'readonly',
  Buffer: 'readonly',
  setTimeout: 'readonly',
  clearTimeout: 'readonly',
};

export default tseslint.config(
  {
    // What `npm start` and the CLI write (data/, .big-uploader/) holds users' files, not ours.
    ignores: [
      'dist/**',
      'test-output/**',
      'node_modules/**',
      'docs/examples/**',
      'coverage/**',
      'data/**',
      '.big-uploader/**',
      'bench/.work/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // Stores and fakes implement Promise-returning interfaces with synchronous bodies;
      // no-floating-promises and no-misused-promises catch the mistakes that matter.
      '@typescript-eslint/require-await': 'off',
      // Chunk states live in typed arrays (numbers) and are compared with their const enum.
      '@typescript-eslint/no-unsafe-enum-comparison': 'off',
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // Lit binds `this` to the host element for @event listeners in templates.
    files: ['client/component/**/*.ts'],
    rules: { '@typescript-eslint/unbound-method': 'off' },
  },
  {
    // Tests and the bench: an assumption that does not hold throws and fails the run, which is
    // what they are for; the source (protocol, server, client, cli) proves its values instead.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
      // JSON.parse results and vitest's asymmetric matchers (expect.any) are `any` by design.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: nodeGlobals },
  },
);

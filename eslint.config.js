import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'build/', 'dist/', 'proto/generated/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      'no-restricted-syntax': [
        'error',
        {
          selector:
            "CallExpression[callee.object.name=/^(it|test|describe)$/][callee.property.name='only']",
          message: 'no .only in committed tests',
        },
      ],
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: 'koffi',
              message:
                'koffi is imported only in agent/src/native/ffi.ts and runtime/src/sys/host-native.ts',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['agent/src/native/ffi.ts', 'runtime/src/sys/host-native.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);

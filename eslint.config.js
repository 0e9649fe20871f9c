import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// koffi, the FFI, is imported in exactly one file per half: the native
// boundary is one typed module (CONVENTIONS).
const KOFFI_FILES = ['agent/src/native/ffi.ts', 'runtime/src/sys/host-native.ts'];
const koffi = {
  name: 'koffi',
  message: `koffi is imported only in ${KOFFI_FILES.join(' and ')}`,
};

// runtime/ (host) and agent/ (guest) never import each other: they share
// only proto/ (the contract) and oci/ (the spec types).
const otherHalf = {
  runtime: {
    group: ['**/agent/src', '**/agent/src/**'],
    message: 'runtime/ never imports agent/: share through proto/ or oci/',
  },
  agent: {
    group: ['**/runtime/src', '**/runtime/src/**'],
    message: 'agent/ never imports runtime/: share through proto/ or oci/',
  },
};

/** no-restricted-imports for one half; `withKoffi` lifts the koffi ban. */
const restrictImports = (half, withKoffi = false) => [
  'error',
  { paths: withKoffi ? [] : [koffi], patterns: [otherHalf[half]] },
];

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
      'no-restricted-imports': ['error', { paths: [koffi] }],
    },
  },
  { files: ['runtime/**/*.ts'], rules: { 'no-restricted-imports': restrictImports('runtime') } },
  { files: ['agent/**/*.ts'], rules: { 'no-restricted-imports': restrictImports('agent') } },
  {
    files: ['runtime/src/sys/host-native.ts'],
    rules: { 'no-restricted-imports': restrictImports('runtime', true) },
  },
  {
    files: ['agent/src/native/ffi.ts'],
    rules: { 'no-restricted-imports': restrictImports('agent', true) },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);

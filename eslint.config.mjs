// @ts-check
// `npm run lint` = typecheck, then this: typescript-eslint's recommended rules, and the layer rules of
// docs/architecture.md as import restrictions, so the build fails when a layer imports what it must not.
// test/unit/layers.test.ts proves each rule bites.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// ------------------------------------------------------------------------------------------ layers
// Each rule is a regex on the import specifier, with the reason shown in the lint error. ESLint does not
// merge a rule's options across config objects (the last one that matches a file wins), so each folder
// below gets the full list that applies to it.

const CORE = 'src/core is the pure core: it runs in plain Node (unit tests, the CLI) and never depends on the layers above it';

/** src/core/**: no vscode, nothing from src/vscode/, src/cli/, src/extension. */
const core = [
  { regex: '^vscode$', message: `${CORE}; only src/vscode/ adapters import vscode.` },
  { regex: '^(\\.\\./)+(vscode|cli)(/|$)', message: `${CORE}: src/vscode/ and src/cli/ import the core, never the other way round.` },
  { regex: '^(\\.\\./)+extension$', message: `${CORE}: src/extension.ts only wires the core into VS Code.` },
];

/** Everything in src/core/ but workspace itself: workspace is the top of the core, it combines the modules. */
const notWorkspace = [
  {
    regex: '^(\\.\\./)+workspace(/|$)',
    message: 'src/core/workspace/ is the top of the core (it combines the other modules): no other core module imports it.',
  },
];

/**
 * Folders of src/core/ that a module may not import, as one regex.
 * @param {string[]} folders
 * @param {string} why
 */
const noneOf = (folders, why) => ({ regex: `^(\\.\\./)+(${folders.join('|')})(/|$)`, message: why });

const layers = {
  'src/core/**': [...core, ...notWorkspace],
  'src/core/workspace/**': core,
  // The one rule below covers vscode and the folders above too: it allows ./ imports only.
  'src/core/protocol/**': [
    {
      regex: '^(?!\\./)',
      message:
        'src/core/protocol/ holds the formats that the extension, the CLI and the webview (a browser) all import: ' +
        'it imports only ./ files of its own folder, no other core module, no node builtins, no packages.',
    },
  ],
  'src/core/store/**': [
    ...core,
    {
      regex: '^\\.\\./(?!protocol/)',
      message: 'src/core/store/ reads and writes the stored formats: it imports only src/core/protocol/ (and node builtins), nothing that runs or estimates.',
    },
  ],
  'src/core/config/**': [
    ...core,
    ...notWorkspace,
    noneOf(['estimate', 'run', 'store'], 'src/core/config/ parses and validates configs: the estimator and the runs build on it, not the other way round.'),
  ],
  'src/core/estimate/**': [
    ...core,
    ...notWorkspace,
    noneOf(['run', 'store', 'transport', 'slurm', 'models'], 'src/core/estimate/ predicts from a config alone: it never runs, stores or reaches a host (src/core/models/ finds shapes and hands them in).'),
  ],
  'src/core/models/**': [
    ...core,
    ...notWorkspace,
    noneOf(['run', 'store', 'slurm'], 'src/core/models/ finds a model\'s shape (files, caches, the Hub, a host\'s cache over a transport): it never runs a benchmark or touches the results store.'),
  ],
  'src/core/recommend/**': [
    ...core,
    ...notWorkspace,
    noneOf(
      ['run', 'store', 'transport', 'slurm'],
      'src/core/recommend/ chooses from predictions and from summaries it is given: it never runs, stores or reaches a host (src/cli/ and src/vscode/ read the stored runs).',
    ),
  ],
  'src/core/import/**': [
    ...core,
    {
      regex: '^\\.\\./(?!protocol/|store/)',
      message: "src/core/import/ turns other tools' result files into stored runs: it imports only src/core/protocol/ and src/core/store/ (and node builtins), nothing that runs or estimates.",
    },
  ],
  'webview/**': [
    { regex: '^vscode$', message: 'webview/ runs in a browser: it talks to the extension by postMessage (src/core/protocol/webview.ts), never through the vscode API.' },
    { regex: `^(node:|(${builtinModules.join('|')})(/|$))`, message: 'webview/ runs in a browser: there are no node builtins there.' },
    { regex: '(^|/)src/vscode(/|$)', message: 'webview/ runs in a browser: it imports the shared protocol from src/core/protocol/, never extension code.' },
  ],
};

// A file gets the list of the last row above that matches it: the more specific folders come after src/core/**.
const layerConfigs = Object.entries(layers).map(([glob, patterns]) => ({
  name: `wattbench/layers ${glob}`,
  files: [glob],
  rules: {
    '@typescript-eslint/no-restricted-imports': ['error', { patterns }],
    // import() and import('x').T are not seen by the rule above: the core and the webview use static imports only.
    'no-restricted-syntax': [
      'error',
      { selector: 'ImportExpression', message: 'src/core and webview/ import statically, so that the layer rules can see every dependency.' },
      { selector: 'TSImportType', message: 'src/core and webview/ import types with `import type`, so that the layer rules can see every dependency.' },
    ],
  },
}));

export default tseslint.config(
  {
    name: 'wattbench/ignores',
    ignores: ['dist/', 'node_modules/', 'test-results/', '.tmp/', '.demo/', '.wattbench/', 'agent/', 'media/', 'bench/history.jsonl', 'bench/results.json', 'examples/', 'schemas/', 'docs/', '**/*.vsix'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    name: 'wattbench/relaxed',
    rules: {
      // Two deliberate require()s: ssh-config ships CommonJS with ESM-only typings (src/core/transport/ssh-config.ts),
      // and the CLI reads its version from package.json (src/cli/main.ts). Any other require() is still an error.
      '@typescript-eslint/no-require-imports': ['error', { allow: ['^ssh-config$', '/package\\.json$'] }],
      // `const { e_j: _, ...rest } = x` is how the code drops a field; tsc's noUnusedLocals checks the rest.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true, argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    name: 'wattbench/node-scripts',
    files: ['**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    name: 'wattbench/webview',
    files: ['webview/**'],
    // Core's max-len is deprecated (formatting moved to @stylistic) but still works in ESLint 9, and needs no plugin.
    rules: { 'max-len': ['error', { code: 120 }] },
  },
  ...layerConfigs,
);

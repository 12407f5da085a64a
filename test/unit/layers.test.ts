// The layer rules live in eslint.config.mjs. These tests lint made-up files with the project's own config
// to prove each rule bites (and lets the allowed imports through), then lint the real tree.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ESLint } from 'eslint';

const root = join(__dirname, '..', '..');
const eslint = new ESLint({ cwd: root });
/** The rules that carry the layer rules: every other rule's messages are not this test's business. */
const LAYER_RULES = new Set(['@typescript-eslint/no-restricted-imports', 'no-restricted-syntax']);

/** The layer errors for `code` as if it were the file at `path` (relative to the repository root). */
async function layerErrors(path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, path) });
  return result.messages.filter((m) => m.ruleId !== null && LAYER_RULES.has(m.ruleId)).map((m) => m.message);
}

/** Each forbidden import: the file it is in, the specifier, and a piece of the reason the error must give. */
const FORBIDDEN: [path: string, specifier: string, why: RegExp][] = [
  ['src/core/store/x.ts', '../run/summarize', /src\/core\/store\/ .* imports only src\/core\/protocol\//],
  ['src/core/store/x.ts', '../config/model', /src\/core\/store\//],
  ['src/core/protocol/x.ts', '../config/model', /src\/core\/protocol\/ .* imports only \.\/ files of its own folder/],
  ['src/core/protocol/x.ts', 'node:fs', /no node builtins/],
  ['src/core/config/x.ts', '../estimate/catalog', /src\/core\/config\/ parses and validates configs/],
  ['src/core/config/x.ts', '../run/summarize', /src\/core\/config\//],
  ['src/core/estimate/x.ts', '../run/summarize', /src\/core\/estimate\/ predicts from a config alone/],
  ['src/core/estimate/x.ts', '../transport/types', /src\/core\/estimate\//],
  ['src/core/run/x.ts', 'vscode', /only src\/vscode\/ adapters import vscode/],
  ['src/core/run/x.ts', '../../vscode/panels', /src\/vscode\/ and src\/cli\/ import the core, never the other way round/],
  ['src/core/run/x.ts', '../../cli/main', /src\/vscode\/ and src\/cli\/ import the core/],
  ['src/core/run/x.ts', '../../extension', /src\/extension\.ts only wires/],
  ['src/core/run/x.ts', '../workspace/reports', /src\/core\/workspace\/ is the top of the core/],
  ['src/core/protocol/x.ts', 'vscode', /src\/core\/protocol\/ .* imports only \.\/ files/],
  ['src/core/models/x.ts', '../run/summarize', /src\/core\/models\/ finds a model's shape/],
  ['src/core/models/x.ts', '../store/store', /src\/core\/models\/ .* never runs a benchmark or touches the results store/],
  ['src/core/models/x.ts', 'vscode', /only src\/vscode\/ adapters import vscode/],
  ['src/core/estimate/x.ts', '../models/resolve-shape', /src\/core\/models\/ finds shapes and hands them in/],
  ['src/core/import/x.ts', '../estimate/catalog', /src\/core\/import\/ .* imports only src\/core\/protocol\/ and src\/core\/store\//],
  ['src/core/import/x.ts', '../run/summarize', /src\/core\/import\//],
  ['src/core/recommend/x.ts', '../store/store', /src\/core\/recommend\/ chooses from predictions/],
  ['src/core/recommend/x.ts', '../transport/types', /src\/core\/recommend\/ .* never runs, stores or reaches a host/],
  ['webview/x.ts', 'node:fs', /webview\/ runs in a browser: there are no node builtins/],
  ['webview/x.ts', 'vscode', /webview\/ runs in a browser/],
  ['webview/x.ts', '../src/vscode/panels', /never extension code/],
];

const ALLOWED: [path: string, specifier: string][] = [
  ['src/core/store/x.ts', '../protocol/events'],
  ['src/core/store/x.ts', 'node:fs'],
  ['src/core/protocol/x.ts', './summary'],
  ['src/core/config/x.ts', '../util/suggest'],
  ['src/core/estimate/x.ts', '../config/model'],
  ['src/core/run/x.ts', '../store/store'],
  ['src/core/models/x.ts', '../transport/types'],
  ['src/core/models/x.ts', '../estimate/hf-config'],
  ['src/core/import/x.ts', '../store/store'],
  ['src/core/import/x.ts', '../protocol/events'],
  ['src/core/recommend/x.ts', '../estimate/config-estimate'],
  ['src/core/workspace/x.ts', '../run/stored'],
  ['src/core/workspace/x.ts', './configs'],
  ['src/vscode/x.ts', 'vscode'],
  ['src/vscode/x.ts', '../core/workspace/reports'],
  ['webview/x.ts', '../src/core/protocol/webview'],
  ['webview/x.ts', 'chart.js'],
];

describe('layer rules (eslint.config.mjs)', () => {
  for (const [path, specifier, why] of FORBIDDEN) {
    it(`${path} may not import ${specifier}`, async () => {
      for (const code of [`import { a } from '${specifier}';\nexport { a };\n`, `import type { A } from '${specifier}';\nexport type { A };\n`, `export * from '${specifier}';\n`]) {
        const errors = await layerErrors(path, code);
        // An import can break two rules (vscode in src/core/protocol/): one of them must say why.
        assert.ok(errors.some((e) => why.test(e)), `${code}: ${JSON.stringify(errors)}`);
      }
    });
  }

  for (const [path, specifier] of ALLOWED) {
    it(`${path} may import ${specifier}`, async () => {
      assert.deepEqual(await layerErrors(path, `import { a } from '${specifier}';\nexport { a };\n`), []);
    });
  }

  it('the core and the webview import statically, where the rules can see it', async () => {
    for (const path of ['src/core/run/x.ts', 'webview/x.ts']) {
      assert.equal((await layerErrors(path, "export const v = import('./y');\n")).length, 1, path);
      assert.equal((await layerErrors(path, "export let u: import('./y').Y;\n")).length, 1, path);
    }
  });

  it('the real src/ and webview/ break none of them', async () => {
    const results = await eslint.lintFiles(['src', 'webview']);
    const broken = results.flatMap((r) =>
      r.messages.filter((m) => m.ruleId !== null && LAYER_RULES.has(m.ruleId)).map((m) => `${r.filePath.slice(root.length + 1)}:${m.line}: ${m.message}`),
    );
    assert.deepEqual(broken, []);
    assert.ok(results.some((r) => r.filePath.endsWith(join('src', 'core', 'store', 'store.ts'))), 'src/core was linted');
    assert.ok(results.some((r) => r.filePath.endsWith(join('webview', 'main.ts'))), 'webview/ was linted');
  });
});

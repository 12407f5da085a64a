import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic, loadConfig } from '../../src/core/config';
import { catalogChecks } from '../../src/core/estimate/config-checks';

const load = (text: string) => loadConfig(text, { extraChecks: catalogChecks });
const lines = (text: string) => load(text).diagnostics.map((d) => formatDiagnostic('f', d));

describe('config checks against the catalogs', () => {
  it('warns, with the place and the fix, when the model does not fit its GPUs', () => {
    assert.deepEqual(lines('name: x\nserver: { sim: true }\nmodel: { id: meta-llama/Llama-3.1-405B-Instruct }\ngpus:\n  type: H100-SXM-80GB\n  count: 1\n'), [
      'f:6:10: warning: Llama-3.1-405B in bf16 needs 810 GB; 1×H100-SXM-80GB has 80 GB — use gpus.count ≥ 11 or fp8',
    ]);
  });

  it('warns about a power cap outside the GPU\'s range', () => {
    const found = lines('name: x\nserver: { sim: true }\nmodel: { id: meta-llama/Llama-3.1-8B-Instruct }\ngpus: { type: A100-SXM4-80GB }\nsweep:\n  power_cap_w: [250W, 50W]\n');
    assert.equal(found.length, 1);
    assert.match(found[0], /^f:6:16: warning: A power cap of 50 W is outside the A100-SXM4-80GB's range of \d+–\d+ W/);
  });

  it('suggests the catalog GPU or model a misspelling was meant to be', () => {
    const loaded = load('name: x\nserver: { sim: true }\nmodel: { id: meta-llama/Llama-3.1-8B-Instruct }\ngpus: { type: H10O-SXM-80GB }\n');
    const warning = loaded.diagnostics.find((d) => d.code === 'unknown-gpu');
    assert.equal(warning?.severity, 'warning');
    assert.match(warning!.message, /H100-SXM-80GB/);
    assert.ok(loaded.config, 'warnings do not block running');
  });

  it('says how to describe a model the catalog does not know', () => {
    const warning = load('name: x\nserver: { sim: true }\nmodel: { id: acme/mystery-13b }\n').diagnostics.find((d) => d.code === 'unknown-model');
    assert.match(warning?.message ?? '', /give model\.params_b, layers, hidden and heads/);
    assert.equal(warning?.range.start.line, 2);
  });

  it('is quiet for every example', () => {
    for (const id of ['meta-llama/Llama-3.1-8B-Instruct', 'huggyllama/llama-65b']) {
      assert.deepEqual(lines(`name: x\nserver: { sim: true }\nmodel: { id: ${id} }\ngpus: { type: A100-SXM4-80GB, count: 4 }\n`), []);
    }
  });
});

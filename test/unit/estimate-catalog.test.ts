import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import gpuData from '../../src/core/estimate/data/gpus.json';
import modelData from '../../src/core/estimate/data/models.json';
import {
  computeParams,
  getGpu,
  getModel,
  isMoe,
  kvBytesPerToken,
  listGpus,
  listModels,
  lookupGpu,
  lookupModel,
  moeSplit,
  normalizeKey,
  weightBytes,
} from '../../src/core/estimate';

const REQUIRED_GPUS = [
  'V100-SXM2-32GB', 'A100-SXM4-40GB', 'A100-SXM4-80GB', 'A100-PCIe-40GB', 'A100-PCIe-80GB', 'H100-SXM-80GB',
  'H100-PCIe-80GB', 'H200-SXM-141GB', 'B200', 'L40S', 'L4', 'MI300X',
];

describe('GPU catalog', () => {
  it('has every required GPU, each with a source and physically ordered numbers', () => {
    const ids = listGpus().map((g) => g.id);
    for (const id of REQUIRED_GPUS) assert.ok(ids.includes(id), id);
    for (const g of gpuData.gpus) {
      assert.ok(g.source.length > 20, `${g.id} source`);
      assert.ok(g.flopsBf16 > 1e13 && g.memoryGB > 0 && g.memoryBWGBs > 0 && g.interconnectGBs > 0, g.id);
      assert.ok(g.idleW < g.minLimitW && g.minLimitW < g.maxLimitW && g.tdpW <= g.maxLimitW, `${g.id} power range`);
      if (g.flopsFp8 !== null) assert.ok(g.flopsFp8 >= g.flopsBf16, `${g.id} fp8 ≥ bf16`);
    }
  });

  it('has no fp8 on GPUs without fp8 tensor cores', () => {
    for (const id of ['V100-SXM2-32GB', 'A100-SXM4-80GB', 'A100-PCIe-40GB']) assert.equal(getGpu(id).flopsFp8, null);
    assert.ok(getGpu('H100').flopsFp8! > 1.9e15);
  });

  it('resolves aliases case-, dash- and punctuation-insensitively', () => {
    assert.equal(getGpu('H100').id, 'H100-SXM-80GB');
    assert.equal(getGpu('h100_sxm').id, 'H100-SXM-80GB');
    assert.equal(getGpu('A100-80GB').id, 'A100-SXM4-80GB');
    assert.equal(getGpu('a100').id, 'A100-SXM4-80GB');
    assert.equal(getGpu('a100 pcie 80gb').id, 'A100-PCIe-80GB');
    assert.equal(getGpu('mi300x').id, 'MI300X');
    assert.equal(normalizeKey('A100-SXM4_80 GB'), 'a100sxm480gb');
  });

  it('answers a miss with did-you-mean candidates and a message naming them', () => {
    const miss = lookupGpu('H10');
    assert.equal(miss.ok, false);
    if (miss.ok) return;
    assert.ok(miss.candidates.includes('H100-SXM-80GB'), miss.candidates.join());
    assert.match(miss.message, /Unknown GPU "H10" — did you mean .*H100-SXM-80GB/);
    assert.throws(() => getGpu('A1OO-80GB'), /did you mean "A100-SXM4-80GB"/);
  });

  it('lists the whole catalog when nothing is close', () => {
    const miss = lookupGpu('zzzzzzzz');
    assert.equal(miss.ok, false);
    if (!miss.ok) assert.match(miss.message, /Known: V100-SXM2-32GB, .*MI300X/);
  });
});

describe('model catalog', () => {
  const REQUIRED = [
    'llama-7b', 'llama-13b', 'llama-65b', 'llama-2-7b', 'llama-2-13b', 'llama-2-70b', 'llama-3.1-8b', 'llama-3.1-70b',
    'llama-3.1-405b', 'mistral-7b', 'mixtral-8x7b', 'qwen3-8b', 'qwen3-32b', 'qwen3-30b-a3b', 'gpt-j-6b', 'gpt-oss-20b',
    'gpt-oss-120b',
  ];

  it('has every required model, each with a Hugging Face id and a source', () => {
    for (const name of REQUIRED) assert.ok(lookupModel(name).ok, name);
    for (const m of modelData.models) {
      assert.match(m.id, /^[\w.-]+\/[\w.-]+$/, m.id);
      assert.ok(m.source.length > 10, `${m.id} source`);
    }
  });

  it('resolves Hugging Face ids, instruct variants and loose spellings', () => {
    assert.equal(getModel('meta-llama/Llama-3.1-8B').id, 'meta-llama/Llama-3.1-8B');
    assert.equal(getModel('meta-llama/Llama-3.1-8B-Instruct').id, 'meta-llama/Llama-3.1-8B');
    assert.equal(getModel('Llama 3.1 70B').id, 'meta-llama/Llama-3.1-70B');
    assert.equal(getModel('QWEN3-8B').id, 'Qwen/Qwen3-8B');
    assert.equal(getModel('together/gpt-j-6b').id, 'EleutherAI/gpt-j-6b');
  });

  it('reads a quantisation suffix as the dtype of a catalog model', () => {
    const fp8 = getModel('meta-llama/Llama-3.1-405B-Instruct-FP8');
    assert.equal(fp8.id, 'meta-llama/Llama-3.1-405B');
    assert.equal(fp8.dtype, 'fp8');
    assert.equal(getModel('Qwen3-32B-AWQ').dtype, 'int4');
    assert.equal(getModel('llama-3.1-8b').dtype, 'bf16');
  });

  it('suggests the nearest models on a miss', () => {
    const miss = lookupModel('llama-3.1-9b');
    assert.equal(miss.ok, false);
    if (!miss.ok) assert.ok(miss.candidates.includes('meta-llama/Llama-3.1-8B'), miss.candidates.join());
    assert.throws(() => getModel('qwen3-33b'), /did you mean .*Qwen\/Qwen3-32B/);
  });

  it('has consistent mixture-of-experts shapes', () => {
    for (const m of listModels().filter(isMoe)) {
      const split = moeSplit(m)!;
      assert.ok(m.activeParamsB! < m.paramsB, m.id);
      assert.ok(split.sharedParams > 0 && split.expertParams > 0, `${m.id} split`);
      assert.ok(computeParams(m) < m.activeParamsB! * 1e9, `${m.id} compute params exclude the embedding`);
    }
    assert.ok(listModels().filter(isMoe).length >= 10);
  });

  it('sizes weights and KV cache from the shape', () => {
    const llama = getModel('llama-3.1-8b');
    assert.ok(Math.abs(weightBytes(llama) - 16.06e9) < 1);
    // 2 (K, V) × 32 layers × 8 KV heads × 128 head dim × 2 bytes
    assert.equal(kvBytesPerToken(llama), 131072);
    // Qwen3-32B has head_dim 128 although hidden / heads = 80.
    assert.equal(kvBytesPerToken(getModel('qwen3-32b')), 2 * 64 * 8 * 128 * 2);
  });
});

describe('estimate layer', () => {
  it('imports nothing from vscode', () => {
    const dir = join(__dirname, '..', '..', 'src', 'core', 'estimate');
    for (const f of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      assert.doesNotMatch(readFileSync(join(dir, f), 'utf8'), /from ['"]vscode['"]|require\(['"]vscode['"]\)/, f);
    }
  });
});

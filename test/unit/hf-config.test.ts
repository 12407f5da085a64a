import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lookupModel } from '../../src/core/estimate/catalog';
import { shapeFromHfConfig } from '../../src/core/estimate/hf-config';
import { parseLenientJson } from '../../src/core/models/lenient-json';

const DIR = join(__dirname, '..', 'fixtures', 'hf');
type Json = Record<string, unknown>;

function fixture(name: string): Json {
  return JSON.parse(readFileSync(join(DIR, name, 'config.json'), 'utf8')) as Json;
}

/** The language model's keys, where a multimodal wrapper nests them. */
function lm(cfg: Json): Json {
  return (cfg.text_config as Json | undefined) ?? cfg;
}

function parse(name: string) {
  const r = shapeFromHfConfig(fixture(name), name.replace('--', '/'));
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r;
}

/**
 * Published parameter counts, billions, with where each figure is printed. `tol` is relative and
 * matches the figure's precision (a figure given as "12B" only promises ±5%).
 */
const PUBLISHED: Record<string, { total: number; active?: number; tol: number; source: string; activeExcludesEmbedding?: boolean }> = {
  'meta-llama--Meta-Llama-3.1-8B': { total: 8.03, tol: 0.01, source: 'Hugging Face model page, safetensors parameter count 8.03B' },
  'meta-llama--Llama-4-Scout-17B-16E-Instruct': { total: 109, active: 17, tol: 0.02, source: 'Llama 4 model card: 17B activated, 109B total (total includes the vision encoder, which is not counted here)' },
  'Qwen--Qwen2.5-7B': { total: 7.61, tol: 0.01, source: 'Qwen2.5-7B model card: "Number of Parameters: 7.61B"' },
  'Qwen--Qwen3-8B': { total: 8.2, tol: 0.01, source: 'Qwen3-8B model card: "Number of Parameters: 8.2B"' },
  'Qwen--Qwen3-30B-A3B': { total: 30.5, active: 3.3, tol: 0.02, source: 'Qwen3-30B-A3B model card: 30.5B in total and 3.3B activated' },
  'Qwen--Qwen3-30B-A3B-FP8': { total: 30.5, active: 3.3, tol: 0.02, source: 'Qwen3-30B-A3B model card (same weights in fp8)' },
  'Qwen--Qwen3-VL-30B-A3B-Instruct': { total: 30.5, active: 3.3, tol: 0.02, source: 'its language model is Qwen3-30B-A3B (30.5B / 3.3B, model card); the vision tower is not counted' },
  'Qwen--Qwen3-235B-A22B': { total: 235, active: 22, tol: 0.02, source: 'Qwen3-235B-A22B model card: 235B in total and 22B activated' },
  'Qwen--Qwen3-Next-80B-A3B-Thinking': { total: 80, tol: 0.02, source: 'Qwen3-Next-80B-A3B model card: 80B in total (its "3B activated" is rounded too coarsely to test)' },
  'deepseek-ai--DeepSeek-V3': { total: 671, active: 37, tol: 0.02, source: 'DeepSeek-V3 technical report (arXiv 2412.19437): 671B total, 37B activated; the 14B MTP module excluded' },
  'moonshotai--Kimi-K2-Instruct': { total: 1040, active: 32.6, tol: 0.02, source: 'Kimi K2 technical report (arXiv 2507.20534): 1.04 trillion total, 32.6B activated' },
  'google--gemma-3-4b-it': { total: 3.884, tol: 0.01, source: 'Gemma 3 technical report Table 1, 4B: 675M embedding + 3,209M non-embedding (417M vision encoder not counted)' },
  'mistralai--Mistral-Nemo-Base-2407': { total: 12, tol: 0.05, source: 'Mistral NeMo announcement (mistral.ai, 2024-07-18): "12B parameters"' },
  'mistralai--Mixtral-8x7B-v0.1': { total: 46.7, active: 12.9, tol: 0.01, source: 'Mixtral of experts (mistral.ai, 2023-12-11): 46.7B total, 12.9B per token' },
  'microsoft--Phi-3.5-mini-instruct': { total: 3.8, tol: 0.02, source: 'Phi-3.5-mini-instruct model card: 3.8B parameters' },
  'openai--gpt-oss-20b': { total: 20.91, active: 3.61, tol: 0.01, activeExcludesEmbedding: true, source: 'gpt-oss model card (OpenAI, 2025) Table 1: 20.91B total, 3.61B active (active leaves out the input embedding)' },
  'openai--gpt-oss-120b': { total: 116.83, active: 5.13, tol: 0.01, activeExcludesEmbedding: true, source: 'gpt-oss model card (OpenAI, 2025) Table 1: 116.83B total, 5.13B active (active leaves out the input embedding)' },
};

const FIXTURES = readdirSync(DIR).filter((f) => !f.endsWith('.md'));

describe('hf-config: fixtures', () => {
  it('has at least 12 families and a published count for each fixture', () => {
    assert.ok(FIXTURES.length >= 12);
    assert.deepEqual([...FIXTURES].sort(), Object.keys(PUBLISHED).sort());
  });

  for (const name of FIXTURES) {
    it(`${name}: shape fields are the file's own keys`, () => {
      const cfg = lm(fixture(name));
      const { shape } = parse(name);
      assert.equal(shape.hidden, cfg.hidden_size);
      assert.equal(shape.layers, cfg.num_hidden_layers);
      assert.equal(shape.heads, cfg.num_attention_heads);
      assert.equal(shape.kvHeads, cfg.num_key_value_heads ?? cfg.num_attention_heads);
      assert.equal(shape.vocab, cfg.vocab_size);
      const experts = cfg.num_experts ?? cfg.num_local_experts ?? cfg.n_routed_experts;
      assert.equal(shape.experts, experts);
      assert.equal(shape.expertsPerToken, experts === undefined ? undefined : cfg.num_experts_per_tok);
      assert.equal(shape.intermediate, cfg.moe_intermediate_size ?? cfg.intermediate_size);
      if (cfg.kv_lora_rank === undefined && typeof cfg.head_dim === 'number' && cfg.head_dim !== (cfg.hidden_size as number) / (cfg.num_attention_heads as number))
        assert.equal(shape.headDim, cfg.head_dim);
    });

    it(`${name}: computed parameters match the published count`, () => {
      const { shape } = parse(name);
      const p = PUBLISHED[name]!;
      const near = (got: number, want: number, what: string) =>
        assert.ok(Math.abs(got / want - 1) <= p.tol, `${what} ${got.toFixed(3)}B vs published ${want}B (±${p.tol * 100}%; ${p.source})`);
      near(shape.paramsB, p.total, 'total');
      if (p.active !== undefined) {
        const cfg = lm(fixture(name));
        const embedding = p.activeExcludesEmbedding ? ((cfg.vocab_size as number) * (cfg.hidden_size as number)) / 1e9 : 0;
        near(shape.activeParamsB! - embedding, p.active, 'active');
      }
    });
  }
});

describe('hf-config: families', () => {
  it('reads MLA from DeepSeek-V3 and counts its dense first layers', () => {
    const cfg = fixture('deepseek-ai--DeepSeek-V3');
    const { shape } = parse('deepseek-ai--DeepSeek-V3');
    assert.deepEqual(shape.mla, { kvLoraRank: cfg.kv_lora_rank, qkRopeHeadDim: cfg.qk_rope_head_dim, qkNopeHeadDim: cfg.qk_nope_head_dim, vHeadDim: cfg.v_head_dim, qLoraRank: cfg.q_lora_rank });
    assert.equal(shape.moe?.denseLayers, cfg.first_k_dense_replace);
    assert.equal(shape.moe?.denseIntermediate, cfg.intermediate_size);
    assert.equal(shape.moe?.sharedExperts, cfg.n_shared_experts);
    assert.equal(shape.dtype, 'fp8');
    assert.match(shape.quantization ?? '', /128×128/);
  });

  it('reads Gemma 3 through text_config and its 5:1 sliding pattern', () => {
    const r = parse('google--gemma-3-4b-it');
    const text = lm(fixture('google--gemma-3-4b-it'));
    // Layers 5, 11, 17, 23, 29 (0-based) are global: 34 - 5 slide.
    assert.deepEqual(r.shape.slidingWindow, { window: text.sliding_window, layers: 29 });
    assert.equal(r.shape.tiedEmbeddings, true);
    assert.ok(r.notes.some((n) => n.includes('text_config')));
  });

  it('reads gpt-oss layer_types and MXFP4', () => {
    const cfg = fixture('openai--gpt-oss-20b');
    const { shape } = parse('openai--gpt-oss-20b');
    const sliding = (cfg.layer_types as string[]).filter((t) => t === 'sliding_attention').length;
    assert.deepEqual(shape.slidingWindow, { window: cfg.sliding_window, layers: sliding });
    assert.equal(shape.dtype, 'int4');
    assert.match(shape.quantization ?? '', /mxfp4/);
  });

  it('reads Qwen3-Next linear-attention layers as state layers, with their recurrent state', () => {
    const cfg = fixture('Qwen--Qwen3-Next-80B-A3B-Thinking');
    const { shape } = parse('Qwen--Qwen3-Next-80B-A3B-Thinking');
    const layers = cfg.num_hidden_layers as number;
    const full = layers / (cfg.full_attention_interval as number);
    assert.equal(shape.stateLayers, layers - full);
    assert.equal(shape.moe?.sharedExpertIntermediate, cfg.shared_expert_intermediate_size);
    // Per layer: value heads × key dim × value dim, plus (2·keys + values) × (kernel − 1) of conv state, in bf16.
    const kd = (cfg.linear_num_key_heads as number) * (cfg.linear_key_head_dim as number);
    const vd = (cfg.linear_num_value_heads as number) * (cfg.linear_value_head_dim as number);
    const perLayer = (cfg.linear_num_value_heads as number) * (cfg.linear_key_head_dim as number) * (cfg.linear_value_head_dim as number) + (2 * kd + vd) * ((cfg.linear_conv_kernel_dim as number) - 1);
    assert.equal(shape.stateBytesPerSeq, (layers - full) * perLayer * 2);
  });

  it('ignores sliding windows that do not apply (Qwen2.5 use_sliding_window false, Phi-3.5 window past the context)', () => {
    assert.equal(parse('Qwen--Qwen2.5-7B').shape.slidingWindow, undefined);
    assert.equal(parse('microsoft--Phi-3.5-mini-instruct').shape.slidingWindow, undefined);
  });

  it('Llama 4 keeps its shared expert and an untied head', () => {
    const { shape, notes } = parse('meta-llama--Llama-4-Scout-17B-16E-Instruct');
    assert.equal(shape.moe?.sharedExperts, 1);
    assert.equal(shape.tiedEmbeddings, false);
    assert.ok(notes.some((n) => n.includes('tie_word_embeddings absent')));
  });

  it('reads an AWQ int4 quantization_config (the block as AWQ checkpoints write it)', () => {
    const cfg = { ...fixture('Qwen--Qwen3-8B'), quantization_config: { bits: 4, group_size: 128, modules_to_not_convert: null, quant_method: 'awq', version: 'gemm', zero_point: true } };
    const r = shapeFromHfConfig(cfg, 'Qwen/Qwen3-8B-AWQ');
    assert.ok(r.ok);
    assert.equal(r.shape.dtype, 'int4');
    assert.equal(r.shape.quantization, 'awq 4-bit, group 128');
  });

  it('reads transformers 5 `dtype` and gptq 8-bit', () => {
    const { torch_dtype: _, ...rest } = fixture('Qwen--Qwen3-8B');
    const r = shapeFromHfConfig({ ...rest, dtype: 'float16', quantization_config: { quant_method: 'gptq', bits: 8, group_size: 128 } }, 'x/y');
    assert.ok(r.ok);
    assert.equal(r.shape.dtype, 'int8');
    assert.ok(r.notes.includes('dtype from dtype float16'));
  });
});

describe('hf-config: bad input', () => {
  it('names the missing field', () => {
    const { hidden_size: _, ...cfg } = fixture('meta-llama--Meta-Llama-3.1-8B');
    const r = shapeFromHfConfig(cfg, 'x');
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.message, /hidden_size/);
  });

  it('names the field inside text_config', () => {
    const cfg = fixture('google--gemma-3-4b-it');
    const { num_hidden_layers: _, ...text } = cfg.text_config as Json;
    const r = shapeFromHfConfig({ ...cfg, text_config: text }, 'x');
    assert.match(r.ok ? '' : r.message, /text_config\.num_hidden_layers/);
  });

  it('rejects a non-object and a wrongly typed field', () => {
    for (const v of [null, [], 'config', 3]) assert.match((shapeFromHfConfig(v, 'x') as { message: string }).message, /expected a JSON object/);
    const r = shapeFromHfConfig({ ...fixture('Qwen--Qwen3-8B'), num_attention_heads: '32' }, 'x');
    assert.match(r.ok ? '' : r.message, /num_attention_heads should be/);
  });

  it('asks for experts per token when experts are given without it', () => {
    const { num_experts_per_tok: _, ...cfg } = fixture('mistralai--Mixtral-8x7B-v0.1');
    assert.match((shapeFromHfConfig(cfg, 'x') as { message: string }).message, /num_experts_per_tok/);
  });
});

describe('Nemotron-H: hybrid_override_pattern and a config.json with Infinity', () => {
  // The keys that matter of nvidia/NVIDIA-Nemotron-Nano-9B-v2's config.json, as public code quotes them
  // (NVIDIA's model card: 56 layers, 27 Mamba-2, 25 MLP, 4 attention). The full file is not stored here yet;
  // its time_step_limit carries the Infinity that Python's json writes and JSON.parse refuses.
  const PATTERN = 'M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-';
  const TEXT = `{"architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h", "hidden_size": 4480, "intermediate_size": 15680,
    "num_hidden_layers": 56, "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 131072,
    "hybrid_override_pattern": "${PATTERN}", "mamba_num_heads": 128, "mamba_head_dim": 80, "n_groups": 8, "ssm_state_size": 128,
    "conv_kernel": 4, "use_conv_bias": true, "mamba_ssm_cache_dtype": "float32", "tie_word_embeddings": false, "torch_dtype": "bfloat16",
    "time_step_limit": [0.0, Infinity], "note": "Infinity and NaN inside a string stay text"}`;

  it('reads the tolerant JSON, the block counts and the Mamba-2 state', () => {
    assert.throws(() => JSON.parse(TEXT));
    const config = parseLenientJson(TEXT) as Json;
    assert.deepEqual(config.time_step_limit, [0, Infinity]);
    assert.equal(config.note, 'Infinity and NaN inside a string stay text');
    const r = shapeFromHfConfig(config, 'nvidia/NVIDIA-Nemotron-Nano-9B-v2');
    assert.ok(r.ok, r.ok ? '' : r.message);
    const count = (c: string) => [...PATTERN].filter((x) => x === c).length;
    assert.deepEqual([count('M'), count('*'), count('-'), PATTERN.length], [27, 4, 25, 56]);
    // Every block but the attention ones keeps no KV cache.
    assert.equal(r.shape.stateLayers, 56 - 4);
    // Per Mamba-2 layer: SSM state heads × head_dim × state in float32, conv state (d_inner + 2·groups·state) × (kernel − 1) in bf16.
    const perLayer = 128 * 80 * 128 * 4 + (128 * 80 + 2 * 8 * 128) * (4 - 1) * 2;
    assert.equal(r.shape.stateBytesPerSeq, 27 * perLayer);
    // arXiv 2508.14444: Nemotron-Nano-9B-v2 has 8.9B parameters.
    assert.ok(Math.abs(r.shape.paramsB - 8.9) / 8.9 < 0.01, `${r.shape.paramsB} B`);
    assert.equal(r.shape.kvHeads, 8);
    // The catalog's entry was computed the same way by hand: the two agree.
    const catalog = lookupModel('nvidia/NVIDIA-Nemotron-Nano-9B-v2');
    assert.ok(catalog.ok);
    assert.deepEqual([catalog.value.stateLayers, catalog.value.stateBytesPerSeq], [r.shape.stateLayers, r.shape.stateBytesPerSeq]);
  });
});

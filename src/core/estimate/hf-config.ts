/**
 * A ModelShape from a Hugging Face `config.json`, for any architecture family the estimator can
 * reason about. Pure: the caller finds and parses the file (local cache, GPU host, Hub); this reads
 * the keys transformers itself reads, says what it inferred in `notes`, and computes the parameter
 * counts from the shape rather than trusting a number typed in somewhere.
 */
import type { Dtype, ModelShape } from './catalog';
import { countParams, type ArchDetail, type HybridBlocks } from './hf-params';

export type HfShapeResult = { ok: true; shape: ModelShape; notes: string[] } | { ok: false; message: string };

type Json = Record<string, unknown>;

class Missing extends Error {}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads keys from the language model's part of the config, naming them by their path in messages. */
class Reader {
  constructor(
    readonly cfg: Json,
    readonly top: Json,
    readonly prefix: string,
  ) {}

  where(key: string): string {
    return `${this.prefix}${key}`;
  }

  /** First of `keys` that is present and not null, in the LM config, then (for wrappers) at the top. */
  raw(...keys: string[]): { key: string; value: unknown } | undefined {
    for (const src of this.cfg === this.top ? [this.cfg] : [this.cfg, this.top])
      for (const key of keys) if (src[key] !== undefined && src[key] !== null) return { key, value: src[key] };
    return undefined;
  }

  int(...keys: string[]): number | undefined {
    const found = this.raw(...keys);
    if (!found) return undefined;
    const v = found.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
      throw new Missing(`config.json: ${this.where(found.key)} should be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  }

  need(keys: string[], what: string): number {
    const v = this.int(...keys);
    if (v === undefined || v === 0)
      throw new Missing(`config.json: missing ${this.where(keys[0]!)} (${what})${this.prefix ? '' : ' — is this a model config.json?'}`);
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.raw(key)?.value;
    return typeof v === 'boolean' ? v : undefined;
  }

  str(key: string): string | undefined {
    const v = this.raw(key)?.value;
    return typeof v === 'string' ? v : undefined;
  }

  list(key: string): unknown[] | undefined {
    const v = this.raw(key)?.value;
    return Array.isArray(v) ? v : undefined;
  }
}

/** Where multimodal wrappers keep the language model (Gemma 3, Llama 4, Mistral3, Qwen-VL: text_config; InternVL: llm_config). */
const LM_KEYS = ['text_config', 'llm_config', 'language_config'] as const;

export function shapeFromHfConfig(config: unknown, id: string): HfShapeResult {
  if (!isObject(config)) return { ok: false, message: `config.json: expected a JSON object, got ${config === null ? 'null' : Array.isArray(config) ? 'an array' : typeof config}` };
  try {
    return read(config, id);
  } catch (e) {
    if (e instanceof Missing) return { ok: false, message: e.message };
    throw e;
  }
}

function read(top: Json, id: string): HfShapeResult {
  const notes: string[] = [];
  const lmKey = LM_KEYS.find((k) => isObject(top[k]));
  const r = lmKey ? new Reader(top[lmKey] as Json, top, `${lmKey}.`) : new Reader(top, top, '');
  const modelType = r.str('model_type') ?? '';
  if (lmKey) notes.push(`language model read from ${lmKey} (${modelType || 'no model_type'}); the ${top.model_type ?? 'wrapper'}'s vision/audio tower is not counted`);

  const hidden = r.need(['hidden_size', 'n_embd', 'd_model'], 'the model width');
  const layers = r.need(['num_hidden_layers', 'n_layer', 'num_layers'], 'the number of decoder layers');
  const heads = r.need(['num_attention_heads', 'n_head'], 'the number of attention heads');
  let kvHeads = r.int('num_key_value_heads', 'num_kv_heads', 'n_head_kv');
  if (kvHeads === undefined || kvHeads === 0) {
    kvHeads = r.bool('multi_query') ? 1 : heads;
    notes.push(`${r.where('num_key_value_heads')} absent: ${kvHeads === 1 ? 'multi-query attention (1 KV head)' : `full multi-head attention (${heads} KV heads)`}`);
  }
  const vocab = r.int('vocab_size', 'padded_vocab_size');
  if (vocab === undefined) notes.push(`${r.where('vocab_size')} absent: embeddings not counted`);

  const mla = readMla(r);
  const explicitHeadDim = r.int('head_dim', 'attention_head_dim');
  const headDim = mla ? mla.qkNopeHeadDim + mla.qkRopeHeadDim : explicitHeadDim ?? hidden / heads;
  if (!mla && !Number.isInteger(headDim)) throw new Missing(`config.json: ${r.where('hidden_size')} ${hidden} is not a multiple of ${r.where('num_attention_heads')} ${heads} and ${r.where('head_dim')} is not given`);
  if (mla) notes.push(`multi-head latent attention: kv_lora_rank ${mla.kvLoraRank}, query/key head ${headDim} (nope ${mla.qkNopeHeadDim} + rope ${mla.qkRopeHeadDim}), value head ${mla.vHeadDim}`);

  const { dtype, quantization } = readDtype(r, top, notes);
  const moe = readMoe(r, layers, hidden, modelType, notes);
  const attention = readAttentionLayout(r, layers, modelType, notes);
  const tied = readTied(r, modelType, notes);

  const shape: ModelShape = {
    id,
    name: id.split('/').pop() || id,
    paramsB: 0,
    layers,
    hidden,
    heads,
    kvHeads,
    dtype,
  };
  if (vocab !== undefined) shape.vocab = vocab;
  const intermediate = moe ? moe.expertIntermediate : r.int('intermediate_size', 'n_inner', 'ffn_hidden_size');
  if (intermediate !== undefined) shape.intermediate = intermediate;
  else notes.push(`${r.where('intermediate_size')} absent: MLP not counted`);
  if (headDim !== hidden / heads) shape.headDim = headDim;
  if (mla) shape.mla = mla;
  if (moe) {
    shape.experts = moe.experts;
    shape.expertsPerToken = moe.expertsPerToken;
    shape.moe = {
      sharedExperts: moe.sharedExperts,
      expertIntermediate: moe.expertIntermediate,
      denseLayers: layers - moe.moeLayers,
      ...(moe.moeLayers < layers && { denseIntermediate: moe.denseIntermediate }),
      ...(moe.sharedExperts > 0 && { sharedExpertIntermediate: moe.sharedIntermediate }),
    };
  }
  if (attention.sliding) shape.slidingWindow = attention.sliding;
  if (attention.stateLayers) shape.stateLayers = attention.stateLayers;
  if (attention.mambaStateBytes) shape.stateBytesPerSeq = attention.mambaStateBytes;
  if (attention.linear) {
    shape.stateBytesPerSeq = linearStateBytes(attention.linear, kvBytes(dtype));
    notes.push(`Gated DeltaNet state: ${(shape.stateBytesPerSeq / 2 ** 20).toFixed(1)} MiB per sequence (per layer a ${attention.linear.valueHeads}×${attention.linear.keyHeadDim}×${attention.linear.valueHeadDim} recurrent state and a conv state, in the activation dtype)`);
  }
  shape.tiedEmbeddings = tied;
  if (quantization) shape.quantization = quantization;

  const detail: ArchDetail = {
    modelType,
    attentionBias: r.bool('attention_bias') ?? (['qwen2', 'qwen2_moe', 'qwen2_vl_text', 'qwen2_5_vl_text'].includes(modelType) ? 'qkv' : false),
    qkNorm: /^qwen3|^gemma3|^olmo2/.test(modelType),
    norms: /^gemma[23]/.test(modelType) ? 4 : 2,
    gatedMlp: !NON_GATED_MLP.has(modelType),
    mlpBias: r.bool('mlp_bias') ?? false,
    denseIntermediate: moe?.denseIntermediate ?? intermediate ?? 0,
    moeLayers: moe?.moeLayers ?? 0,
    linear: attention.linear,
    ...(attention.hybrid && { hybrid: attention.hybrid }),
    gatedQuery: modelType === 'qwen3_next',
  };
  const counts = countParams(shape, detail);
  shape.paramsB = counts.total / 1e9;
  if (moe) shape.activeParamsB = counts.active / 1e9;
  const mtp = r.int('num_nextn_predict_layers');
  if (mtp) notes.push(`num_nextn_predict_layers ${mtp}: the multi-token-prediction module is not counted (published totals leave it out)`);
  return { ok: true, shape, notes };
}

/** Families whose MLP is fc1 → activation → fc2 (two matrices), not the gated SwiGLU/GeGLU three. */
const NON_GATED_MLP = new Set(['gpt2', 'gpt_neox', 'gptj', 'gpt_bigcode', 'falcon', 'phi', 'starcoder2', 'opt', 'bloom', 'nemotron', 'nemotron_h']);

function readMla(r: Reader): ModelShape['mla'] | undefined {
  const kvLoraRank = r.int('kv_lora_rank');
  if (!kvLoraRank) return undefined;
  const need = (key: string) => r.need([key], 'multi-head latent attention needs it with kv_lora_rank');
  const mla: NonNullable<ModelShape['mla']> = {
    kvLoraRank,
    qkRopeHeadDim: need('qk_rope_head_dim'),
    qkNopeHeadDim: need('qk_nope_head_dim'),
    vHeadDim: need('v_head_dim'),
  };
  const q = r.int('q_lora_rank');
  if (q) mla.qLoraRank = q;
  return mla;
}

const TORCH_DTYPES: Record<string, Dtype> = { bfloat16: 'bf16', float16: 'fp16', half: 'fp16', float32: 'fp32', float: 'fp32' };

function readDtype(r: Reader, top: Json, notes: string[]): { dtype: Dtype; quantization?: string } {
  const named = r.str('torch_dtype') ?? r.str('dtype');
  let dtype: Dtype = 'bf16';
  if (named && TORCH_DTYPES[named.replace(/^torch\./, '')]) {
    dtype = TORCH_DTYPES[named.replace(/^torch\./, '')]!;
    notes.push(`dtype from ${r.raw('torch_dtype') ? 'torch_dtype' : 'dtype'} ${named}`);
  } else notes.push(`torch_dtype ${named ? `${named} not understood` : 'absent'}: assumed bf16`);
  const qc = isObject(top.quantization_config) ? top.quantization_config : isObject(r.cfg.quantization_config) ? r.cfg.quantization_config : undefined;
  if (!qc) return { dtype };
  const q = readQuantization(qc);
  if (!q) {
    notes.push(`quantization_config.quant_method ${JSON.stringify(qc.quant_method)} not understood: weights taken as ${dtype}`);
    return { dtype };
  }
  notes.push(`${q.dtype} weights from quantization_config (${q.label})`);
  return { dtype: q.dtype, quantization: q.label };
}

function bitsDtype(bits: unknown, float: boolean): Dtype | undefined {
  if (bits === 8) return float ? 'fp8' : 'int8';
  if (bits === 4) return 'int4';
  return undefined;
}

/** The weight format a quantization_config describes, as transformers/vLLM read its quant_method. */
function readQuantization(qc: Json): { dtype: Dtype; label: string } | undefined {
  const method = String(qc.quant_method ?? '').toLowerCase();
  const group = typeof qc.group_size === 'number' ? `, group ${qc.group_size}` : '';
  switch (method) {
    case 'fp8': {
      const block = Array.isArray(qc.weight_block_size) ? qc.weight_block_size : undefined;
      return { dtype: 'fp8', label: block ? `fp8, block ${block.join('×')}` : 'fp8, per-tensor scales' };
    }
    case 'mxfp4':
      return { dtype: 'int4', label: 'mxfp4 (4-bit, block 32 shared exponent)' };
    case 'awq':
    case 'gptq':
    case 'awq_marlin':
    case 'gptq_marlin':
    case 'auto-round':
    case 'hqq': {
      const dtype = bitsDtype(qc.bits ?? qc.w_bit, false);
      return dtype && { dtype, label: `${method} ${qc.bits ?? qc.w_bit}-bit${group}` };
    }
    case 'bitsandbytes':
      if (qc.load_in_4bit) return { dtype: 'int4', label: `bitsandbytes ${qc.bnb_4bit_quant_type ?? '4-bit'}` };
      if (qc.load_in_8bit) return { dtype: 'int8', label: 'bitsandbytes int8' };
      return undefined;
    case 'compressed-tensors': {
      const groups = isObject(qc.config_groups) ? Object.values(qc.config_groups) : [];
      const weights = groups.map((g) => (isObject(g) && isObject(g.weights) ? g.weights : undefined)).find(Boolean);
      if (!weights) return undefined;
      const float = weights.type === 'float';
      const dtype = bitsDtype(weights.num_bits, float);
      return dtype && { dtype, label: `compressed-tensors ${float ? 'float' : 'int'}${weights.num_bits} (${qc.format ?? 'format unknown'})` };
    }
    case 'modelopt': {
      const algo = String(qc.quant_algo ?? (isObject(qc.quantization) ? qc.quantization.quant_algo : '')).toUpperCase();
      if (algo.startsWith('FP8')) return { dtype: 'fp8', label: `modelopt ${algo}` };
      if (algo.includes('FP4') || algo.includes('INT4')) return { dtype: 'int4', label: `modelopt ${algo}` };
      return undefined;
    }
    default:
      return undefined;
  }
}

interface MoeRead {
  experts: number;
  expertsPerToken: number;
  expertIntermediate: number;
  sharedExperts: number;
  /** Width of the (all) shared expert MLP together. */
  sharedIntermediate: number;
  denseIntermediate: number;
  moeLayers: number;
}

function readMoe(r: Reader, layers: number, hidden: number, modelType: string, notes: string[]): MoeRead | undefined {
  const expertsKey = ['num_experts', 'num_local_experts', 'n_routed_experts', 'moe_num_experts'];
  const experts = r.int(...expertsKey);
  if (!experts || experts < 2) return undefined;
  const expertsPerToken = r.need(['num_experts_per_tok', 'experts_per_token', 'num_experts_per_token', 'moe_top_k'], `experts chosen per token, needed with ${expertsKey.join('/')}`);
  const moeWidth = r.int('moe_intermediate_size', 'expert_intermediate_size');
  const ffn = r.int('intermediate_size');
  const expertIntermediate = moeWidth ?? ffn;
  if (!expertIntermediate) throw new Missing(`config.json: missing ${r.where('moe_intermediate_size')} (the width of one expert) for a model with ${experts} experts`);
  if (!moeWidth) notes.push(`${r.where('intermediate_size')} taken as the width of one expert (${modelType || 'MoE'} has no moe_intermediate_size)`);
  // Dense layers (DeepSeek's first_k_dense_replace, Qwen's mlp_only_layers) use the ordinary FFN width;
  // Llama 4 keeps it in intermediate_size_mlp because intermediate_size is the expert width.
  const denseIntermediate = r.int('intermediate_size_mlp') ?? (moeWidth ? ffn : undefined) ?? expertIntermediate;

  let sharedExperts = 0;
  let sharedIntermediate = 0;
  const nShared = r.int('n_shared_experts', 'num_shared_experts');
  const sharedWidth = r.int('shared_expert_intermediate_size');
  if (nShared) {
    sharedExperts = nShared;
    sharedIntermediate = nShared * expertIntermediate;
  } else if (sharedWidth) {
    // Qwen2-MoE / Qwen3-Next: one shared expert of its own width, behind a sigmoid gate.
    sharedExperts = 1;
    sharedIntermediate = sharedWidth;
  } else if (/^llama4/.test(modelType)) {
    sharedExperts = 1;
    sharedIntermediate = expertIntermediate;
    notes.push('llama4: one shared expert per MoE layer, as wide as a routed expert');
  }

  const moeLayers = countMoeLayers(r, layers);
  if (moeLayers.note) notes.push(moeLayers.note);
  notes.push(`MoE: ${experts} experts of width ${expertIntermediate}, ${expertsPerToken} per token${sharedExperts ? `, shared ${sharedIntermediate}` : ''}, on ${moeLayers.count}/${layers} layers; router ${hidden}×${experts}`);
  return { experts, expertsPerToken, expertIntermediate, sharedExperts, sharedIntermediate, denseIntermediate, moeLayers: moeLayers.count };
}

/** Which decoder layers hold experts, by the rule each family's modeling code applies. */
function countMoeLayers(r: Reader, layers: number): { count: number; note?: string } {
  const idx = Array.from({ length: layers }, (_, i) => i);
  const explicit = r.list('moe_layers');
  if (explicit) return { count: explicit.length, note: `moe_layers lists ${explicit.length} MoE layers` };
  const firstDense = r.int('first_k_dense_replace');
  if (firstDense !== undefined) {
    // DeepSeek-V2/V3, Kimi K2: MoE where layer >= first_k_dense_replace and layer % moe_layer_freq == 0.
    const freq = r.int('moe_layer_freq') || 1;
    const count = idx.filter((i) => i >= firstDense && i % freq === 0).length;
    return { count, note: `first_k_dense_replace ${firstDense}: ${layers - count} dense layers` };
  }
  const step = r.int('decoder_sparse_step');
  if (step !== undefined) {
    // Qwen2-MoE / Qwen3-MoE / Qwen3-Next: MoE where layer not in mlp_only_layers and (layer+1) % step == 0.
    const only = new Set((r.list('mlp_only_layers') ?? []).filter((v): v is number => typeof v === 'number'));
    const s = step || 1;
    const count = idx.filter((i) => !only.has(i) && (i + 1) % s === 0).length;
    return { count, note: count < layers ? `decoder_sparse_step ${step} / mlp_only_layers: ${layers - count} dense layers` : undefined };
  }
  const interleave = r.int('interleave_moe_layer_step');
  if (interleave !== undefined && interleave > 1) {
    // Llama 4 (Maverick): layers interleave-1, 2*interleave-1, … hold experts.
    const count = idx.filter((i) => (i + 1) % interleave === 0).length;
    return { count, note: `interleave_moe_layer_step ${interleave}: ${count}/${layers} MoE layers` };
  }
  return { count: layers };
}

interface AttentionLayout {
  sliding?: { window: number; layers: number };
  stateLayers?: number;
  linear?: ArchDetail['linear'];
  hybrid?: HybridBlocks;
  /** Mamba-2 state per sequence (SSM state and conv state), bytes. */
  mambaStateBytes?: number;
}

/** Sliding-window, full, and linear/state-space layers: from layer_types where given, else each family's rule. */
function readAttentionLayout(r: Reader, layers: number, modelType: string, notes: string[]): AttentionLayout {
  const out: AttentionLayout = {};
  const types = r.list('layer_types')?.map(String);
  const window = r.int('sliding_window', 'attention_window');
  const maxPos = r.int('max_position_embeddings');
  let stateLayers = 0;
  let slidingLayers = 0;
  const pattern = r.str('hybrid_override_pattern');
  if (pattern !== undefined && pattern.length === layers && /^[M*\-E]+$/.test(pattern)) {
    // Nemotron-H: one mixer per block. Only the attention blocks keep a growing KV cache.
    const count = (c: string) => [...pattern].filter((x) => x === c).length;
    const heads = r.need(['mamba_num_heads'], 'Mamba-2 heads');
    const headDim = r.need(['mamba_head_dim'], 'Mamba-2 head width');
    const state = r.need(['ssm_state_size'], 'Mamba-2 state size');
    const groups = r.int('n_groups', 'mamba_n_groups') ?? 1;
    const convKernel = r.int('conv_kernel') ?? 4;
    out.hybrid = { mamba: count('M'), attention: count('*'), mlp: count('-'), moe: count('E'), mamba2: { heads, headDim, state, groups, convKernel, convBias: r.bool('use_conv_bias') ?? true } };
    out.stateLayers = layers - out.hybrid.attention;
    // vLLM keeps the SSM state in mamba_ssm_cache_dtype (float32 where the config asks), the conv state in the activation dtype.
    const ssmFp32 = r.str('mamba_ssm_cache_dtype') === 'float32';
    const perLayer = heads * headDim * state * (ssmFp32 ? 4 : 2) + (heads * headDim + 2 * groups * state) * (convKernel - 1) * 2;
    out.mambaStateBytes = out.hybrid.mamba * perLayer;
    notes.push(
      `hybrid_override_pattern: ${out.hybrid.mamba} Mamba-2, ${out.hybrid.attention} attention, ${out.hybrid.mlp} MLP, ${out.hybrid.moe} MoE blocks; ` +
        `Mamba-2 state ${(out.mambaStateBytes / 2 ** 20).toFixed(1)} MiB per sequence (SSM state in ${ssmFp32 ? 'float32' : 'the activation dtype'})`,
    );
    return out;
  }
  if (types && types.length === layers) {
    slidingLayers = types.filter((t) => t === 'sliding_attention' || t === 'chunked_attention').length;
    stateLayers = types.filter((t) => /linear|mamba|ssm|conv|recurrent/.test(t)).length;
    notes.push(`layer_types: ${[...new Set(types)].map((t) => `${types.filter((x) => x === t).length} ${t}`).join(', ')}`);
  } else if (r.int('full_attention_interval')) {
    // Qwen3-Next: every full_attention_interval-th layer is full attention, the rest Gated DeltaNet.
    const k = r.int('full_attention_interval')!;
    stateLayers = layers - Math.floor(layers / k);
    notes.push(`full_attention_interval ${k}: ${stateLayers} linear-attention layers, ${layers - stateLayers} full`);
  } else if (r.int('attn_layer_period')) {
    // Jamba: attention where layer % attn_layer_period == attn_layer_offset, Mamba elsewhere.
    const period = r.int('attn_layer_period')!;
    const offset = r.int('attn_layer_offset') ?? 0;
    stateLayers = layers - Array.from({ length: layers }, (_, i) => i).filter((i) => i % period === offset).length;
    notes.push(`attn_layer_period ${period}: ${stateLayers} Mamba layers`);
  } else if (window) {
    const pattern = r.int('sliding_window_pattern');
    if (pattern) {
      // Gemma 3: layer i is global when (i+1) % pattern == 0, sliding otherwise.
      slidingLayers = Array.from({ length: layers }, (_, i) => i).filter((i) => (i + 1) % pattern !== 0).length;
      notes.push(`sliding_window_pattern ${pattern}: ${slidingLayers} of ${layers} layers slide`);
    } else if (r.bool('use_sliding_window') === false) {
      notes.push(`sliding_window ${window} ignored: use_sliding_window is false`);
    } else if (maxPos !== undefined && window >= maxPos) {
      notes.push(`sliding_window ${window} ≥ max_position_embeddings ${maxPos}: no layer is windowed in practice`);
    } else {
      // Mistral-style: every layer (Qwen2: the layers from max_window_layers on) sees only the window.
      const from = r.bool('use_sliding_window') ? r.int('max_window_layers') ?? 0 : 0;
      slidingLayers = layers - Math.min(from, layers);
      notes.push(`sliding_window ${window} on ${slidingLayers} layers`);
    }
  }
  if (slidingLayers && window) out.sliding = { window, layers: slidingLayers };
  else if (slidingLayers) {
    const chunk = r.int('attention_chunk_size');
    if (chunk) out.sliding = { window: chunk, layers: slidingLayers };
  }
  if (stateLayers) {
    out.stateLayers = stateLayers;
    if (modelType === 'qwen3_next') {
      const keyHeads = r.need(['linear_num_key_heads'], 'Gated DeltaNet key heads');
      const valueHeads = r.need(['linear_num_value_heads'], 'Gated DeltaNet value heads');
      out.linear = {
        layers: stateLayers,
        keyDim: keyHeads * r.need(['linear_key_head_dim'], 'Gated DeltaNet key head width'),
        valueDim: valueHeads * r.need(['linear_value_head_dim'], 'Gated DeltaNet value head width'),
        valueHeads,
        keyHeadDim: r.need(['linear_key_head_dim'], 'Gated DeltaNet key head width'),
        valueHeadDim: r.need(['linear_value_head_dim'], 'Gated DeltaNet value head width'),
        convKernel: r.int('linear_conv_kernel_dim') ?? 4,
      };
    } else notes.push(`${modelType}: state-space layer weights counted as attention layers (approximate)`);
  }
  return out;
}

/**
 * Gated DeltaNet keeps, per layer and sequence, a key×value state for each value head and the last
 * kernel-1 inputs of its causal conv over q, k and v (transformers' Qwen3NextDynamicCache).
 */
function linearStateBytes(l: NonNullable<ArchDetail['linear']>, bytes: number): number {
  const recurrent = l.valueHeads * l.keyHeadDim * l.valueHeadDim;
  const conv = (2 * l.keyDim + l.valueDim) * (l.convKernel - 1);
  return l.layers * (recurrent + conv) * bytes;
}

/** Activations, KV cache and recurrent state stay in the compute dtype (bf16) even for fp8/int weights. */
function kvBytes(dtype: Dtype): number {
  return dtype === 'fp32' ? 4 : 2;
}

/** Config classes whose tie_word_embeddings defaults to true (PretrainedConfig's default, kept by these families). */
const TIED_BY_DEFAULT = /^(gemma|gpt2|gpt_neo$|opt$|bloom$|falcon$)/;

function readTied(r: Reader, modelType: string, notes: string[]): boolean {
  const tied = r.bool('tie_word_embeddings');
  if (tied !== undefined) return tied;
  // Llama, Qwen, Mistral and most modern families override transformers' default to untied.
  const byDefault = TIED_BY_DEFAULT.test(modelType);
  notes.push(`tie_word_embeddings absent: ${byDefault ? 'tied' : 'untied'}, the ${modelType || 'config class'} default`);
  return byDefault;
}

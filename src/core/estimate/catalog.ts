import gpuData from './data/gpus.json';
import modelData from './data/models.json';

export type Dtype = 'fp32' | 'bf16' | 'fp16' | 'fp8' | 'int8' | 'int4';
export const DTYPES: readonly Dtype[] = ['fp32', 'bf16', 'fp16', 'fp8', 'int8', 'int4'];

export interface ModelShape {
  id: string;
  paramsB: number;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  intermediate?: number;
  vocab?: number;
  dtype: Dtype;
  experts?: number;
  expertsPerToken?: number;
  activeParamsB?: number;
  /** Attention head width where it is not hidden / heads (Qwen3, gpt-oss). */
  headDim?: number;
  /** Short display name, e.g. "Llama-3.1-8B". */
  name?: string;
  /** Multi-head latent attention (DeepSeek-V2/V3, Kimi K2): the cache holds kvLoraRank + qkRopeHeadDim per layer. */
  mla?: { kvLoraRank: number; qkRopeHeadDim: number; qkNopeHeadDim: number; vHeadDim: number; qLoraRank?: number };
  /**
   * MoE detail beyond experts/expertsPerToken: always-on shared experts, expert MLP width, dense layers (and
   * their FFN width), and the shared experts' total width where it is not sharedExperts × expertIntermediate
   * (Qwen2-MoE and Qwen3-Next have one shared expert of its own width).
   */
  moe?: { sharedExperts: number; expertIntermediate: number; denseLayers: number; denseIntermediate?: number; sharedExpertIntermediate?: number };
  /** Layers whose attention sees only the last `window` tokens (Gemma 3, Mistral, gpt-oss alternate layers). */
  slidingWindow?: { window: number; layers: number };
  /** Layers with no growing KV cache (linear attention or state-space layers of hybrid models). */
  stateLayers?: number;
  /** Recurrent state each sequence keeps across those layers (Mamba-2 SSM and conv state), read and written every step. */
  stateBytesPerSeq?: number;
  tiedEmbeddings?: boolean;
  /** How the checkpoint is quantised when dtype alone does not say (fp8 block scales, AWQ, GPTQ, MXFP4). */
  quantization?: string;
  /** How this model's own published FP8 checkpoint is quantised, applied when it is served in fp8 (withDtype). */
  fp8Checkpoint?: string;
}

export type GpuVendor = 'nvidia' | 'amd';

export interface GpuSpec {
  id: string;
  name: string;
  /** Dense bf16 (fp16 on V100 and T4) tensor FLOP/s. */
  flopsBf16: number;
  /** Dense fp8 tensor FLOP/s, null where the GPU has no fp8. */
  flopsFp8: number | null;
  /** Dense int8 tensor OP/s, null where the GPU has no int8 tensor cores (V100). */
  flopsInt8?: number | null;
  /** Dense fp4 tensor FLOP/s (Blackwell), null where the GPU has no fp4. */
  flopsFp4?: number | null;
  memoryGB: number;
  memoryBWGBs: number;
  /** Total bidirectional GPU-to-GPU bandwidth per GPU, as datasheets quote it. */
  interconnectGBs: number;
  tdpW: number;
  idleW: number;
  minLimitW: number;
  maxLimitW: number;
  source: string;
  interconnect?: string;
  aliases?: string[];
  vendor?: GpuVendor;
  /** Architecture name, e.g. "Hopper", "CDNA 3". */
  arch?: string;
  /** CUDA compute capability, e.g. "9.0" (NVIDIA only). */
  computeCapability?: string;
  /** The product names the driver reports (nvmlDeviceGetName, rocm-smi/amd-smi), exactly. */
  deviceNames?: string[];
  /** The model tokens of a driver-reported name ("h100"; "rtx", "6000", "ada"), for names not in deviceNames. */
  family?: string[];
  formFactor?: string;
  /** Built from what a driver reported, not from a datasheet: `source` says what was derived from what. */
  estimated?: boolean;
}

export type Lookup<T> =
  | { ok: true; value: T }
  | { ok: false; query: string; candidates: string[]; message: string };

interface ModelRecord {
  id: string;
  name: string;
  aliases: string[];
  params_b: number;
  layers: number;
  hidden: number;
  heads: number;
  kv_heads: number;
  head_dim?: number;
  intermediate: number | null;
  vocab: number | null;
  dtype: string;
  experts: number | null;
  experts_per_token: number | null;
  active_params_b: number | null;
  mla?: { kv_lora_rank: number; qk_rope_head_dim: number; qk_nope_head_dim: number; v_head_dim: number; q_lora_rank?: number };
  moe?: { shared_experts: number; expert_intermediate: number; dense_layers: number; dense_intermediate?: number };
  sliding_window?: { window: number; layers: number };
  state_layers?: number;
  state_bytes_per_seq?: number;
  tied_embeddings?: boolean;
  fp8_quantization?: string;
  source: string;
}

const GPUS: readonly GpuSpec[] = gpuData.gpus.map((g) => ({
  ...g,
  vendor: g.vendor as GpuVendor,
  aliases: [...g.aliases],
  deviceNames: [...g.deviceNames],
  family: [...g.family],
}));
const MODEL_RECORDS: readonly ModelRecord[] = modelData.models as unknown as ModelRecord[];
const MODELS: readonly ModelShape[] = MODEL_RECORDS.map(modelFromRecord);

function modelFromRecord(r: ModelRecord): ModelShape {
  if (!(DTYPES as readonly string[]).includes(r.dtype)) throw new Error(`models.json: ${r.id} has unknown dtype ${r.dtype}`);
  const m: ModelShape = {
    id: r.id,
    name: r.name,
    paramsB: r.params_b,
    layers: r.layers,
    hidden: r.hidden,
    heads: r.heads,
    kvHeads: r.kv_heads,
    dtype: r.dtype as Dtype,
  };
  if (r.intermediate != null) m.intermediate = r.intermediate;
  if (r.vocab != null) m.vocab = r.vocab;
  if (r.head_dim != null) m.headDim = r.head_dim;
  if (r.experts != null) m.experts = r.experts;
  if (r.experts_per_token != null) m.expertsPerToken = r.experts_per_token;
  if (r.active_params_b != null) m.activeParamsB = r.active_params_b;
  if (r.mla) {
    const { kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim, q_lora_rank } = r.mla;
    m.mla = { kvLoraRank: kv_lora_rank, qkRopeHeadDim: qk_rope_head_dim, qkNopeHeadDim: qk_nope_head_dim, vHeadDim: v_head_dim };
    if (q_lora_rank !== undefined) m.mla.qLoraRank = q_lora_rank;
  }
  if (r.moe) {
    m.moe = { sharedExperts: r.moe.shared_experts, expertIntermediate: r.moe.expert_intermediate, denseLayers: r.moe.dense_layers };
    if (r.moe.dense_intermediate !== undefined) m.moe.denseIntermediate = r.moe.dense_intermediate;
  }
  if (r.sliding_window) m.slidingWindow = { ...r.sliding_window };
  if (r.state_layers !== undefined) m.stateLayers = r.state_layers;
  if (r.state_bytes_per_seq !== undefined) m.stateBytesPerSeq = r.state_bytes_per_seq;
  if (r.tied_embeddings !== undefined) m.tiedEmbeddings = r.tied_embeddings;
  if (r.fp8_quantization !== undefined) {
    m.fp8Checkpoint = r.fp8_quantization;
    if (m.dtype === 'fp8') m.quantization = r.fp8_quantization;
  }
  return m;
}

export function listGpus(): GpuSpec[] {
  return GPUS.map((g) => ({ ...g }));
}

export function listModels(): ModelShape[] {
  return MODELS.map((m) => ({ ...m }));
}

/** Case-, dash- and punctuation-insensitive key: "A100-80GB", "a100 80gb" and "a100_80GB" are one key. */
export function normalizeKey(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]/g, '');
}

interface Named<T> {
  value: T;
  canonical: string;
  keys: string[];
}

const GPU_INDEX: Named<GpuSpec>[] = GPUS.map((g) => ({
  value: g,
  canonical: g.id,
  keys: [g.id, g.name, ...(g.aliases ?? [])].map(normalizeKey),
}));

const MODEL_INDEX: Named<ModelShape>[] = MODEL_RECORDS.map((r, i) => ({
  value: MODELS[i]!,
  canonical: r.id,
  keys: [r.id, r.id.split('/').pop()!, r.name, ...r.aliases].map(normalizeKey),
}));

export function lookupGpu(query: string): Lookup<GpuSpec> {
  return lookup(GPU_INDEX, query, 'GPU', (g) => ({ ...g }));
}

/** Name suffixes that say how a checkpoint is quantised ("…-Instruct-FP8", "…-AWQ"). */
const DTYPE_SUFFIXES: [RegExp, Dtype][] = [
  [/[-_ .](fp8|w8a8[-_]?fp8)$/i, 'fp8'],
  [/[-_ .](int8|w8a8)$/i, 'int8'],
  [/[-_ .](int4|awq|gptq|w4a16)$/i, 'int4'],
  [/[-_ .]bf16$/i, 'bf16'],
  [/[-_ .]fp16$/i, 'fp16'],
];

/** Name suffixes of tuned variants that keep the base model's shape ("…-Instruct-2507", "…-Thinking", "…-it"). */
const VARIANT_SUFFIX = /[-_ .](instruct|thinking|chat|it|base|hf|\d{4})$/i;

export function lookupModel(query: string): Lookup<ModelShape> {
  const found = lookup(MODEL_INDEX, query, 'model', (m) => ({ ...m }));
  if (found.ok) return found;
  // A quantised checkpoint of a catalog model: the catalog shape in that dtype.
  let name = query;
  let dtype: Dtype | undefined;
  for (const [suffix, d] of DTYPE_SUFFIXES) {
    if (!suffix.test(name)) continue;
    name = name.replace(suffix, '');
    dtype = d;
    break;
  }
  // A tuned variant: strip one suffix at a time until a catalog name matches.
  for (let i = 0; i < 4; i++) {
    const base = lookup(MODEL_INDEX, name, 'model', (m) => ({ ...m }));
    if (base.ok) return { ok: true, value: dtype ? withDtype(base.value, dtype) : base.value };
    if (!VARIANT_SUFFIX.test(name)) break;
    name = name.replace(VARIANT_SUFFIX, '');
  }
  return found;
}

/** Like lookupGpu, but throws an Error whose message carries the did-you-mean list. */
export function getGpu(query: string): GpuSpec {
  const r = lookupGpu(query);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

export function getModel(query: string): ModelShape {
  const r = lookupModel(query);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

/** The same model served in another precision (e.g. fp8 weights). */
export function withDtype(model: ModelShape, dtype: Dtype): ModelShape {
  if (dtype === model.dtype) return { ...model };
  const out: ModelShape = { ...model, dtype };
  delete out.quantization;
  if (dtype === 'fp8' && model.fp8Checkpoint) out.quantization = model.fp8Checkpoint;
  return out;
}

export function displayName(model: ModelShape): string {
  return model.name ?? model.id.split('/').pop() ?? model.id;
}

function lookup<T>(index: Named<T>[], query: string, kind: string, copy: (v: T) => T): Lookup<T> {
  const key = normalizeKey(query);
  // "org/name" queries also match on the name alone (e.g. another org's copy of a model).
  const keys = [key, normalizeKey(query.split('/').pop() ?? '')].filter(Boolean);
  for (const k of keys) {
    const hit = index.find((e) => e.keys.includes(k));
    if (hit) return { ok: true, value: copy(hit.value) };
  }
  const candidates = suggest(index, key);
  const hint = candidates.length ? ` — did you mean ${candidates.map((c) => `"${c}"`).join(', ')}?` : '';
  const known = candidates.length ? '' : ` Known: ${index.map((e) => e.canonical).join(', ')}.`;
  return { ok: false, query, candidates, message: `Unknown ${kind} "${query}"${hint}${known}` };
}

/** Closest catalog names: substring matches first, then by edit distance relative to length. */
function suggest<T>(index: Named<T>[], key: string, max = 4): string[] {
  if (!key) return [];
  const scored = index.map((e) => {
    let best = Infinity;
    for (const k of e.keys) {
      const containment = k.includes(key) || key.includes(k) ? 0.2 : Infinity;
      const edit = levenshtein(key, k) / Math.max(key.length, k.length);
      best = Math.min(best, containment, edit);
    }
    return { name: e.canonical, score: best };
  });
  return scored
    .filter((s) => s.score <= 0.45)
    .sort((a, b) => a.score - b.score || a.name.localeCompare(b.name))
    .slice(0, max)
    .map((s) => s.name);
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const sub = prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      cur.push(Math.min(sub, prev[j]! + 1, cur[j - 1]! + 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

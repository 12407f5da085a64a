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
}

export interface GpuSpec {
  id: string;
  name: string;
  /** Dense bf16 (fp16 on V100) tensor FLOP/s. */
  flopsBf16: number;
  /** Dense fp8 tensor FLOP/s, null where the GPU has no fp8. */
  flopsFp8: number | null;
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
  source: string;
}

const GPUS: readonly GpuSpec[] = gpuData.gpus.map((g) => ({ ...g, aliases: [...g.aliases] }));
const MODEL_RECORDS: readonly ModelRecord[] = modelData.models as ModelRecord[];
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

export function lookupModel(query: string): Lookup<ModelShape> {
  const found = lookup(MODEL_INDEX, query, 'model', (m) => ({ ...m }));
  if (found.ok) return found;
  // A quantised checkpoint of a catalog model: the catalog shape in that dtype.
  for (const [suffix, dtype] of DTYPE_SUFFIXES) {
    if (!suffix.test(query)) continue;
    const base = lookup(MODEL_INDEX, query.replace(suffix, ''), 'model', (m) => ({ ...m }));
    if (base.ok) return { ok: true, value: withDtype(base.value, dtype) };
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
  return { ...model, dtype };
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

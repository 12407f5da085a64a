import type { Dtype, GpuSpec, ModelShape } from './catalog';

/** Bytes per weight. int4 counts 4.25 bits: the group scales of GPTQ/AWQ/MXFP4 add about a quarter bit. */
export const DTYPE_BYTES: Record<Dtype, number> = { fp32: 4, bf16: 2, fp16: 2, fp8: 1, int8: 1, int4: 4.25 / 8 };

export function headDim(m: ModelShape): number {
  return m.headDim ?? m.hidden / m.heads;
}

/** All weights, for sizing memory. */
export function weightBytes(m: ModelShape): number {
  return m.paramsB * 1e9 * DTYPE_BYTES[m.dtype];
}

/**
 * Engines keep the KV cache in the activation dtype (bf16) even for fp8/int weights unless told
 * otherwise (vLLM's kv_cache_dtype=auto), so only fp32 models differ.
 */
export function kvDtypeBytes(m: ModelShape): number {
  return m.dtype === 'fp32' ? 4 : 2;
}

/** Layers that keep a KV cache: hybrid models' linear-attention and state-space layers keep none. */
export function kvLayers(m: ModelShape): number {
  return Math.max(1, m.layers - (m.stateLayers ?? 0));
}

/** K and V bytes one token occupies in one layer on one GPU: MLA's latent is replicated on every GPU. */
function kvBytesPerLayerToken(m: ModelShape, gpuCount: number): number {
  if (m.mla) return (m.mla.kvLoraRank + m.mla.qkRopeHeadDim) * kvDtypeBytes(m);
  // KV heads are split across GPUs, but a GPU never holds less than one head.
  const headsPerGpu = Math.max(1, m.kvHeads / gpuCount);
  return 2 * headsPerGpu * headDim(m) * kvDtypeBytes(m);
}

/**
 * Layer-equivalents of KV cache a sequence with `context` tokens holds per token: sliding-window layers
 * keep only the last `window` tokens, so at long contexts they count for less than a full layer.
 */
export function kvLayersAt(m: ModelShape, context: number): number {
  const all = kvLayers(m);
  const sw = m.slidingWindow;
  if (!sw || !(context > sw.window)) return all;
  const sliding = Math.min(sw.layers, all);
  return all - sliding + (sliding * sw.window) / context;
}

/** KV-cache bytes one token of context occupies across the whole model (one copy; at `context` tokens per sequence). */
export function kvBytesPerToken(m: ModelShape, context = 0): number {
  return kvLayersAt(m, context) * kvBytesPerLayerToken(m, 1);
}

/**
 * KV bytes per token of context held (and read each step) by each GPU under tensor parallelism, for
 * sequences `context` tokens long.
 */
export function kvBytesPerTokenPerGpu(m: ModelShape, gpuCount: number, context = 0): number {
  return kvLayersAt(m, context) * kvBytesPerLayerToken(m, gpuCount);
}

/** Recurrent state per sequence on each GPU (split across GPUs with the heads), read and written every step. */
export function stateBytesPerSeqPerGpu(m: ModelShape, gpuCount: number): number {
  return (m.stateBytesPerSeq ?? 0) / gpuCount;
}

/** The input embedding is a row lookup, not a matmul, and only B of its rows are read per step. */
function inputEmbeddingParams(m: ModelShape): number {
  return m.vocab ? m.vocab * m.hidden : 0;
}

/** Parameters that do a multiply-add for every token (active experts only; input embedding excluded). */
export function computeParams(m: ModelShape): number {
  const active = (m.activeParamsB ?? m.paramsB) * 1e9;
  return Math.max(active - inputEmbeddingParams(m), 0.5 * active);
}

/** Matmul FLOPs per token through the whole model. */
export function flopsPerToken(m: ModelShape): number {
  return 2 * computeParams(m);
}

/**
 * Attention score and value FLOPs per token of context, per generated token (QK^T and AV), over the
 * layers that attend. MLA decodes in its absorbed form: scores over the latent plus the rope part, values
 * over the latent.
 */
export function attentionFlopsPerContextToken(m: ModelShape, context = 0): number {
  const perHead = m.mla ? 2 * (2 * m.mla.kvLoraRank + m.mla.qkRopeHeadDim) : 4 * headDim(m);
  return kvLayersAt(m, context) * m.heads * perHead;
}

/** Layers whose MLP is a mixture of experts. */
export function moeLayers(m: ModelShape): number {
  return isMoe(m) ? m.layers - (m.moe?.denseLayers ?? 0) : 0;
}

export function isMoe(m: ModelShape): boolean {
  return (m.experts ?? 0) > 1 && (m.expertsPerToken ?? 0) > 0 && m.activeParamsB != null;
}

/**
 * Split of a mixture-of-experts model's weights: total = shared + experts and
 * active = shared + experts * k/E, so experts = (total - active) / (1 - k/E).
 */
export function moeSplit(m: ModelShape): { expertParams: number; sharedParams: number } | null {
  if (!isMoe(m)) return null;
  const share = m.expertsPerToken! / m.experts!;
  const expertParams = ((m.paramsB - m.activeParamsB!) * 1e9) / (1 - share);
  return { expertParams, sharedParams: m.paramsB * 1e9 - expertParams };
}

/**
 * Expected fraction of experts a decode step touches when `tokens` tokens each pick k of E
 * experts (per layer, routing taken as uniform): 1 - (1 - k/E)^tokens.
 */
export function expertsTouched(m: ModelShape, tokens: number): number {
  if (!isMoe(m)) return 1;
  return 1 - Math.pow(1 - m.expertsPerToken! / m.experts!, Math.max(tokens, 0));
}

/** d(expertsTouched)/d(tokens), for linearising the MoE weight traffic around a batch. */
export function expertsTouchedSlope(m: ModelShape, tokens: number): number {
  if (!isMoe(m)) return 0;
  const keep = 1 - m.expertsPerToken! / m.experts!;
  return -Math.log(keep) * Math.pow(keep, Math.max(tokens, 0));
}

/** Weight bytes a decode step streams that every token uses (attention, dense MLPs, shared experts; input embedding excluded). */
export function streamedDenseBytes(m: ModelShape): number {
  const bytes = DTYPE_BYTES[m.dtype];
  const embedding = inputEmbeddingParams(m);
  const split = moeSplit(m);
  if (!split) return Math.max(m.paramsB * 1e9 - embedding, 0.5 * m.paramsB * 1e9) * bytes;
  return Math.max(split.sharedParams - embedding, 0) * bytes;
}

/** Routed-expert weight bytes a decode step over `tokens` tokens streams (zero for dense models). */
export function streamedExpertBytes(m: ModelShape, tokens: number): number {
  const split = moeSplit(m);
  return split ? split.expertParams * expertsTouched(m, tokens) * DTYPE_BYTES[m.dtype] : 0;
}

/** Weight bytes a decode step streams from memory (all GPUs together), excluding the input embedding. */
export function streamedWeightBytes(m: ModelShape, tokens: number): number {
  return streamedDenseBytes(m) + streamedExpertBytes(m, tokens);
}

/** Slope of streamedWeightBytes in the batch, at `tokens` (zero for dense models). */
export function streamedWeightBytesSlope(m: ModelShape, tokens: number): number {
  const split = moeSplit(m);
  if (!split) return 0;
  return split.expertParams * expertsTouchedSlope(m, tokens) * DTYPE_BYTES[m.dtype];
}

/** Matmul FLOPs per token in routed experts (the rest of flopsPerToken is dense work). */
export function expertFlopsPerToken(m: ModelShape): number {
  const split = moeSplit(m);
  return split ? (2 * split.expertParams * m.expertsPerToken!) / m.experts! : 0;
}

/** Peak tensor FLOP/s for the model's compute format: fp8 models use fp8 tensor cores where present. */
export function peakFlops(gpu: GpuSpec, m: ModelShape): number {
  return m.dtype === 'fp8' && gpu.flopsFp8 ? gpu.flopsFp8 : gpu.flopsBf16;
}

/** Fine-grained block-scaled fp8 (DeepSeek, Qwen3 FP8 checkpoints): GEMMs rescale every 128×128 block as they stream. */
export function isBlockFp8(m: ModelShape): boolean {
  return m.dtype === 'fp8' && /block/i.test(m.quantization ?? '');
}

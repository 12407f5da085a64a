import type { GpuSpec, ModelShape } from './catalog';
import {
  attentionFlopsPerContextToken,
  expertFlopsPerToken,
  isBlockFp8,
  flopsPerToken,
  kvBytesPerTokenPerGpu,
  moeLayers,
  peakFlops,
  stateBytesPerSeqPerGpu,
  streamedDenseBytes,
  streamedExpertBytes,
  streamedWeightBytesSlope,
} from './shape';
import priorFit from './data/prior.json';
import type { SimProfile } from './steprule';

/**
 * Where the fit of the prior's free numbers starts: physical first guesses (bandwidth and FLOP shares
 * kernels reach, launch and scheduling costs of a CUDA-graph engine, utilisation of each kind of work).
 * The cap exponent is fitted to "From Words to Watts" (Samsi et al., HPEC 2023) and the eager launch cost
 * to HELM's Megatron β; the rest is refitted by fit-prior.ts to the ML.ENERGY Leaderboard v3 rows in
 * data/published (vLLM on 1–8 H100 or B200, dense and MoE, batch 8–2048) and kept in data/prior.json,
 * with the leave-one-model-out errors that give the prior its band. They describe a continuous-batching
 * engine (vLLM, SGLang, TensorRT-LLM class) with CUDA graphs.
 */
export const PRIOR_START: PriorParams = Object.freeze({
  /** Share of peak memory bandwidth reached while streaming weights (skinny GEMMs). */
  weightStreamEfficiency: 0.9,
  /** Share of peak bandwidth reached by paged-attention decode kernels reading the KV cache. */
  kvStreamEfficiency: 0.76,
  /** Model FLOP utilisation of the per-sequence matmul work in a decode step (not overlapped with streaming). */
  decodeMfu: 0.72,
  /** Model FLOP utilisation of prefill (compute-bound). */
  prefillMfu: 0.55,
  /** Per engine step: scheduling, sampling launch, Python. */
  stepOverheadS: 2.06e-3,
  /** Per layer per step: kernel launch gaps and small elementwise kernels. */
  layerOverheadS: 1.17e-5,
  /**
   * Per running sequence per step, a cost that did not shrink on the faster GPU in the fitted data:
   * sampling, detokenising, streaming the token to the client. It overlaps GPU work, so it counts
   * at full utilisation below.
   */
  seqOverheadS: 4.64e-5,
  /**
   * Fixed cost of one hop of a tensor-parallel all-reduce inside a node, and across nodes; a ring
   * all-reduce over N GPUs takes 2(N−1) hops, which is why 8-way parallelism pays more per layer.
   */
  allReduceBaseLatencyS: 3e-6,
  allReduceHopLatencyS: 2.5e-6,
  interNodeHopLatencyS: 1e-5,
  /** Share of the link's one-way bandwidth an all-reduce reaches. */
  linkEfficiency: 0.7,
  /**
   * Utilisation (share of the power range above idle) while each kind of work runs; a step's
   * utilisation is their time-weighted mean. Streaming weights keeps HBM busy but the tensor cores
   * mostly waiting; matmuls and attention over a large batch run the GPU at its power limit; clocks
   * stay up through the per-step overhead; in-node all-reduces spin the SMs while they wait.
   */
  util: Object.freeze({
    weights: 0.64,
    kv: 1.0,
    compute: 1.0,
    overhead: 0.54,
    seqOverhead: 0.97,
    comm: 0.82,
    /** Waiting on a node's network link: kernels block, the GPU sits near idle. */
    interNodeComm: 0.1,
    prefill: 0.95,
  }),
  /**
   * Exponent of the cap rule, time × ((D − idle)/(L − idle))^e. Fitted by fitCapTimeExponent() so
   * that LLaMA-65B on 4×A100-80GB at batch 64 takes 6.7% longer at 175 W than at 250 W, the mean
   * of "From Words to Watts" over max lengths 256/512/1024. A test keeps the two in step.
   */
  capTimeExponent: 0.1292,
  /**
   * Share of peak bandwidth reached streaming routed experts' weights: grouped GEMMs over a few tokens per
   * expert stream less well than one dense GEMM.
   */
  expertStreamEfficiency: 0.6,
  /** Per mixture-of-experts layer per step: router, top-k, token permutation and the grouped-GEMM launches. */
  moeLayerOverheadS: 2e-5,
  /** Per MoE layer per step under expert parallelism: the dispatch and combine all-to-alls' fixed latency. */
  expertParallelLatencyS: 3e-5,
  /** Under expert parallelism a step waits for the busiest GPU's experts: its load over the mean. */
  expertParallelImbalance: 1.2,
  /** Per layer per step in engines without CUDA graphs (HELM's Megatron, Hugging Face generate): kernel launches. */
  eagerLayerOverheadS: 3e-4,
  /** Share of the streaming rate block-scaled fp8 GEMMs keep: they dequantise each 128×128 block on the way. */
  blockFp8StreamFactor: 0.8,
  /** Utilisation while streaming routed experts' weights (grouped GEMMs over a few tokens each). */
  expertUtil: 0.64,
  /**
   * How streaming's share of the power range grows with the GPU's bandwidth per watt of range: memory
   * traffic costs energy per byte, so a GPU that streams more bytes per watt of headroom spends more of it
   * there. util × (r / r_H100)^e with r = bandwidth / (TDP − idle); 0 means no such effect.
   */
  memoryPowerExponent: 0.3,
});

/** H100 SXM's bandwidth per watt of power range, GB/s per W: the GPU the utilisation factors are stated for. */
const REFERENCE_BW_PER_RANGE_W = 3350 / (700 - 70);

/** The prior: PRIOR_START with the fitted numbers of data/prior.json (`npm run accuracy -- --write` refits them). */
export const PRIOR: PriorParams = Object.freeze(mergePrior(PRIOR_START, priorFit.fitted as Record<string, unknown>));

function mergePrior(start: PriorParams, fitted: Record<string, unknown>): PriorParams {
  const util = { ...start.util, ...((fitted.util as object | undefined) ?? {}) };
  return { ...start, ...fitted, util: Object.freeze(util) } as PriorParams;
}

/** The free numbers of the prior (PRIOR holds the fitted values; fit-prior.ts refits them). */
export interface PriorParams {
  readonly weightStreamEfficiency: number;
  readonly kvStreamEfficiency: number;
  readonly decodeMfu: number;
  readonly prefillMfu: number;
  readonly stepOverheadS: number;
  readonly layerOverheadS: number;
  readonly seqOverheadS: number;
  readonly allReduceBaseLatencyS: number;
  readonly allReduceHopLatencyS: number;
  readonly interNodeHopLatencyS: number;
  readonly linkEfficiency: number;
  readonly util: {
    readonly weights: number;
    readonly kv: number;
    readonly compute: number;
    readonly overhead: number;
    readonly seqOverhead: number;
    readonly comm: number;
    readonly interNodeComm: number;
    readonly prefill: number;
  };
  readonly capTimeExponent: number;
  readonly expertStreamEfficiency: number;
  readonly moeLayerOverheadS: number;
  readonly expertParallelLatencyS: number;
  readonly expertParallelImbalance: number;
  readonly eagerLayerOverheadS: number;
  readonly blockFp8StreamFactor: number;
  readonly expertUtil: number;
  readonly memoryPowerExponent: number;
}

/** Engines that launch every kernel from Python each step (no CUDA graphs). */
const EAGER_ENGINES = new Set(['megatron', 'hf', 'transformers', 'fairscale', 'eager', 'deepspeed']);
export function isEagerEngine(engine: string | undefined): boolean {
  return engine !== undefined && EAGER_ENGINES.has(engine.toLowerCase());
}

/** Read-only: step models are cached by a calibration's identity (predict.ts). */
export interface CalibrationParams {
  /** Multiplier on the speed of the fixed and context-proportional (memory-bound) part of every step. */
  readonly bandwidth: number;
  /** Multiplier on the speed of the per-sequence and per-prompt-token (compute-bound) part. */
  readonly compute: number;
  /** Multiplier on the utilisation, i.e. on power above idle. */
  readonly power: number;
}

export const NEUTRAL_CALIBRATION: CalibrationParams = { bandwidth: 1, compute: 1, power: 1 };

/** Where to linearise the batch-dependent parts (MoE weight traffic, utilisation) of the step model. */
export interface StepHint {
  batch: number;
  /** Mean context per running sequence during decode. */
  contextPerSeq: number;
  /** Prompt length, for the quadratic attention term of prefill. */
  promptTokens: number;
}

export const DEFAULT_HINT: StepHint = { batch: 32, contextPerSeq: 768, promptTokens: 512 };

/** GPUs spread over nodes: tensor-parallel traffic between nodes crosses the node's network link. */
export interface Topology {
  gpusPerNode?: number;
  /** One-way bandwidth of a node's network link, GB/s (25 GbE ≈ 3.1). */
  interNodeGBs?: number;
}

/** One kind of work in a step: its seconds per step, per running sequence and per context token. */
export interface WorkPart {
  fixed: number;
  perSeq: number;
  perCtxToken: number;
  util: number;
}

export type DecodePartName = 'weights' | 'kv' | 'compute' | 'overhead' | 'comm';

export interface StepModel {
  sim: SimProfile;
  decodeParts: Record<DecodePartName, WorkPart>;
  prefillParts: { weights_s: number; overhead_s: number; comm_s: number; compute_s_per_token: number; comm_s_per_token: number };
  hint: StepHint;
}

export interface StepModelOptions {
  hint?: StepHint;
  topology?: Topology;
  calibration?: CalibrationParams;
  capTimeExponent?: number;
  prior?: PriorParams;
  /** Routed experts spread over the GPUs (vLLM --enable-expert-parallel) instead of split by tensor parallelism. */
  expertParallel?: boolean;
  /** The engine launches kernels eagerly (no CUDA graphs). */
  eager?: boolean;
  /**
   * Attention data-parallel (vLLM --data-parallel-size N with expert parallelism): every GPU holds all
   * attention and dense weights and serves its own 1/N of the sequences; only the experts are shared.
   */
  attentionDataParallel?: boolean;
}

/** Cost of one tensor-parallel all-reduce: a fixed latency, and seconds per byte of message (ring: 2(N−1)/N of it each way). */
function allReduce(gpu: GpuSpec, gpuCount: number, topology: Topology | undefined, prior: PriorParams): { latency: number; perByte: number; util: number } {
  if (gpuCount <= 1) return { latency: 0, perByte: 0, util: prior.util.comm };
  const intra = (gpu.interconnectGBs / 2) * 1e9;
  const perNode = topology?.gpusPerNode;
  const crossesNodes = perNode !== undefined && perNode < gpuCount;
  const inter = crossesNodes && topology?.interNodeGBs ? (topology.interNodeGBs * 1e9) / perNode : Infinity;
  const oneWay = Math.min(intra, inter) * prior.linkEfficiency;
  const hops = 2 * (gpuCount - 1);
  return {
    latency: prior.allReduceBaseLatencyS + hops * (crossesNodes ? prior.interNodeHopLatencyS : prior.allReduceHopLatencyS),
    perByte: hops / gpuCount / oneWay,
    util: crossesNodes ? prior.util.interNodeComm : prior.util.comm,
  };
}

/**
 * The roofline prior as a step model: seconds of each kind of work per decode and prefill step on
 * each of `gpuCount` tensor-parallel GPUs, folded into the simulator's SimProfile.
 */
export function buildStepModel(model: ModelShape, gpu: GpuSpec, gpuCount: number, opts: StepModelOptions = {}): StepModel {
  const prior = opts.prior ?? PRIOR;
  const hint = opts.hint ?? DEFAULT_HINT;
  const cal = opts.calibration ?? NEUTRAL_CALIBRATION;
  const n = Math.max(1, gpuCount);
  const bw = gpu.memoryBWGBs * 1e9;
  const peak = peakFlops(gpu, model);
  const ar = allReduce(gpu, n, opts.topology, prior);
  const moeCount = moeLayers(model);
  const ep = opts.expertParallel === true && moeCount > 0 && n > 1;
  // Under expert parallelism the MoE layers' all-reduce becomes a dispatch and a combine all-to-all.
  const allReducesPerStep = 2 * model.layers - (ep ? moeCount : 0);
  const activationBytesPerToken = model.hidden * 2;
  const imbalance = ep ? prior.expertParallelImbalance : 1;
  // With data-parallel attention each GPU streams the dense weights whole and its sequences' caches whole.
  const dp = ep && opts.attentionDataParallel === true;
  const denseShards = dp ? 1 : n;
  const allReduces = dp ? 0 : allReducesPerStep;

  const quantFactor = isBlockFp8(model) ? prior.blockFp8StreamFactor : 1;
  const denseRate = bw * prior.weightStreamEfficiency * quantFactor;
  const expertRate = bw * prior.expertStreamEfficiency * quantFactor;
  // MoE: the experts a step touches grow with the batch; take the tangent at the hinted batch.
  const b0 = Math.max(1, hint.batch);
  const expertSlope = (imbalance * streamedWeightBytesSlope(model, b0)) / n;
  const expertAtHint = (imbalance * streamedExpertBytes(model, b0)) / n;
  const denseS = streamedDenseBytes(model) / denseShards / denseRate;
  const streamPower = Math.pow(gpu.memoryBWGBs / Math.max(gpu.tdpW - gpu.idleW, 1) / REFERENCE_BW_PER_RANGE_W, prior.memoryPowerExponent);
  const expertS = expertAtHint / expertRate;
  const weights: WorkPart = {
    fixed: denseS + (expertAtHint - expertSlope * b0) / expertRate,
    perSeq: expertSlope / expertRate,
    perCtxToken: 0,
    // Dense and expert streaming draw differently: weight each by its time at the hinted batch.
    util: Math.min(1, (streamPower * (denseS * prior.util.weights + expertS * prior.expertUtil)) / Math.max(denseS + expertS, 1e-12)),
  };
  const ctx = hint.contextPerSeq;
  const kv: WorkPart = {
    fixed: 0,
    perSeq: (2 * stateBytesPerSeqPerGpu(model, n)) / (bw * prior.kvStreamEfficiency),
    perCtxToken:
      (dp ? kvBytesPerTokenPerGpu(model, 1, ctx) / n : kvBytesPerTokenPerGpu(model, n, ctx)) / (bw * prior.kvStreamEfficiency) +
      attentionFlopsPerContextToken(model, ctx) / n / (peak * prior.decodeMfu),
    util: prior.util.kv,
  };
  const expertFlops = expertFlopsPerToken(model);
  const compute: WorkPart = {
    fixed: 0,
    perSeq: (flopsPerToken(model) - expertFlops + imbalance * expertFlops) / n / (peak * prior.decodeMfu),
    perCtxToken: 0,
    util: prior.util.compute,
  };
  const launches = model.layers * (prior.layerOverheadS + (opts.eager ? prior.eagerLayerOverheadS : 0)) + moeCount * prior.moeLayerOverheadS;
  const overhead: WorkPart = {
    fixed: prior.stepOverheadS + launches,
    // Data-parallel engines schedule, sample and detokenise their own sequences side by side.
    perSeq: prior.seqOverheadS / (dp ? n : 1),
    perCtxToken: 0,
    util: prior.util.overhead,
  };
  // All-to-all: each token's activation goes to its k experts and back, (N−1)/N of it off the GPU.
  const a2aBytesPerToken = ep ? (2 * moeCount * model.expertsPerToken! * activationBytesPerToken * (n - 1)) / n / n : 0;
  const oneWay = ((gpu.interconnectGBs / 2) * 1e9) * prior.linkEfficiency;
  const comm: WorkPart = {
    fixed: allReduces * ar.latency + (ep ? moeCount * prior.expertParallelLatencyS : 0),
    perSeq: allReduces * activationBytesPerToken * ar.perByte + a2aBytesPerToken / oneWay,
    perCtxToken: 0,
    util: ar.util,
  };
  const decodeParts = calibrateParts({ weights, kv, compute, overhead, comm }, cal);

  const prefillParts = {
    weights_s:
      (streamedDenseBytes(model) / denseShards / denseRate + (imbalance * streamedExpertBytes(model, Infinity)) / n / expertRate) / cal.bandwidth,
    overhead_s: overhead.fixed / cal.bandwidth,
    comm_s: comm.fixed / cal.bandwidth,
    compute_s_per_token:
      (flopsPerToken(model) + attentionFlopsPerContextToken(model, hint.promptTokens) * (hint.promptTokens / 2)) / n / (peak * prior.prefillMfu) / cal.compute,
    comm_s_per_token: (allReduces * activationBytesPerToken * ar.perByte + a2aBytesPerToken / oneWay) / cal.compute,
  };

  const sim: SimProfile = {
    v: 1,
    gpu: {
      name: `Simulated ${gpu.id}`,
      count: n,
      idle_w: gpu.idleW,
      tdp_w: gpu.tdpW,
      min_limit_w: gpu.minLimitW,
      max_limit_w: gpu.maxLimitW,
      memory_mb: Math.round(gpu.memoryGB * 1024),
    },
    prefill: {
      fixed_s: prefillParts.weights_s + prefillParts.overhead_s + prefillParts.comm_s,
      s_per_token: prefillParts.compute_s_per_token + prefillParts.comm_s_per_token,
      util: Math.min(1, prior.util.prefill * cal.power),
    },
    decode: { ...sumParts(decodeParts), ...linearisedUtil(decodeParts, hint, cal.power) },
    cap: { time_exponent: opts.capTimeExponent ?? prior.capTimeExponent },
    noise: { rel_std: 0, seed: 1 },
  };
  return { sim, decodeParts, prefillParts, hint };
}

function calibrateParts(parts: Record<DecodePartName, WorkPart>, cal: CalibrationParams): Record<DecodePartName, WorkPart> {
  const out = {} as Record<DecodePartName, WorkPart>;
  for (const [name, p] of Object.entries(parts) as [DecodePartName, WorkPart][]) {
    out[name] = {
      fixed: p.fixed / cal.bandwidth,
      perSeq: p.perSeq / cal.compute,
      perCtxToken: p.perCtxToken / cal.bandwidth,
      util: p.util,
    };
  }
  return out;
}

function sumParts(parts: Record<DecodePartName, WorkPart>): { fixed_s: number; s_per_seq: number; s_per_ctx_token: number } {
  let fixed_s = 0;
  let s_per_seq = 0;
  let s_per_ctx_token = 0;
  for (const p of Object.values(parts)) {
    fixed_s += p.fixed;
    s_per_seq += p.perSeq;
    s_per_ctx_token += p.perCtxToken;
  }
  return { fixed_s, s_per_seq, s_per_ctx_token };
}

/**
 * The physical utilisation is the time-weighted mean of the parts' utilisations, a ratio of two
 * lines in the batch B (context grows with B as B·c): u(B) = (N0 + N1·B) / (T0 + T1·B). The
 * SimProfile wants u = min(util_max, util_base + util_per_seq·B), so take the tangent at the hinted
 * batch — exact there, which is where the prediction evaluates it — with util_max the large-batch
 * limit N1/T1.
 */
function linearisedUtil(
  parts: Record<DecodePartName, WorkPart>,
  hint: StepHint,
  powerScale: number,
): { util_base: number; util_per_seq: number; util_max: number } {
  let n0 = 0, n1 = 0, t0 = 0, t1 = 0;
  for (const p of Object.values(parts)) {
    const slope = p.perSeq + p.perCtxToken * hint.contextPerSeq;
    t0 += p.fixed;
    t1 += slope;
    n0 += p.util * p.fixed;
    n1 += p.util * slope;
  }
  const b0 = Math.max(1, hint.batch);
  const rawAt = (n0 + n1 * b0) / (t0 + t1 * b0);
  const uAt = Math.min(1, rawAt * powerScale);
  const uLimit = t1 > 0 ? Math.min(1, (n1 / t1) * powerScale) : uAt;
  const clamped = rawAt * powerScale >= 1;
  const derivative = clamped ? 0 : (powerScale * (n1 * t0 - n0 * t1)) / Math.pow(t0 + t1 * b0, 2);
  // A falling utilisation would need a negative slope the simulator may not expect; keep it flat.
  let slope = Math.max(0, derivative);
  let base = uAt - slope * b0;
  if (base < 0) {
    slope = uAt / b0;
    base = 0;
  }
  return { util_base: base, util_per_seq: slope, util_max: Math.max(uAt, uLimit) };
}

/** Exact physical decode utilisation at (batch, context per sequence), before linearisation. */
export function physicalDecodeUtil(model: StepModel, batch: number, contextPerSeq: number, powerScale = 1): number {
  let num = 0, den = 0;
  for (const p of Object.values(model.decodeParts)) {
    const t = p.fixed + batch * (p.perSeq + p.perCtxToken * contextPerSeq);
    num += p.util * t;
    den += t;
  }
  return Math.min(1, (num / den) * powerScale);
}

/** Seconds of each kind of decode work at (batch, context per sequence), for the hover. */
export function decodePartSeconds(model: StepModel, batch: number, contextPerSeq: number): Record<DecodePartName, number> {
  const out = {} as Record<DecodePartName, number>;
  for (const [name, p] of Object.entries(model.decodeParts) as [DecodePartName, WorkPart][]) {
    out[name] = p.fixed + batch * (p.perSeq + p.perCtxToken * contextPerSeq);
  }
  return out;
}

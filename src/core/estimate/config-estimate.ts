/**
 * The estimate of a whole config: every sweep point predicted (prior or calibrated) with HELM's
 * idealized runtime beside it, and the totals the CodeLens shows. Pure and fast: no I/O.
 */
import type { ModelSpec, ResolvedConfig, ResolvedPoint } from '../config/model';
import { lookupGpu, lookupModel, type GpuSpec, type Lookup, type ModelShape } from './catalog';
import { idealizedCost, idealizedFromPrior, idealizedRuntime, type IdealizedTable } from './idealized';
import { predictPoint } from './predict';
import type { PointRequest, Prediction } from './prediction';
import type { CalibrationProfile } from './profile';
import type { GpuInfo } from '../protocol/events';
import { gpuForHostGpu } from './gpu-device';

/** The GPU assumed when a config names none: estimates still appear, and say what they assumed. */
export const DEFAULT_GPU = 'H100-SXM-80GB';

export function modelFromSpec(spec: ModelSpec): Lookup<ModelShape> {
  const found = lookupModel(spec.id);
  const given = {
    ...(spec.paramsB !== undefined && { paramsB: spec.paramsB }),
    ...(spec.layers !== undefined && { layers: spec.layers }),
    ...(spec.hidden !== undefined && { hidden: spec.hidden }),
    ...(spec.heads !== undefined && { heads: spec.heads }),
    ...(spec.kvHeads !== undefined && { kvHeads: spec.kvHeads }),
    ...(spec.intermediate !== undefined && { intermediate: spec.intermediate }),
    ...(spec.vocab !== undefined && { vocab: spec.vocab }),
    ...(spec.dtype !== undefined && { dtype: spec.dtype }),
    ...(spec.experts !== undefined && { experts: spec.experts }),
    ...(spec.expertsPerToken !== undefined && { expertsPerToken: spec.expertsPerToken }),
    ...(spec.activeParamsB !== undefined && { activeParamsB: spec.activeParamsB }),
  };
  if (found.ok) return { ok: true, value: { ...found.value, ...given, ...givenDetail(spec, found.value) } };
  const { paramsB, layers, hidden, heads } = given;
  if (paramsB !== undefined && layers !== undefined && hidden !== undefined && heads !== undefined)
    return { ok: true, value: { id: spec.id, kvHeads: heads, dtype: 'bf16', ...given, ...givenDetail(spec, { layers }), paramsB, layers, hidden, heads } };
  return {
    ok: false,
    query: spec.id,
    candidates: found.candidates,
    message: `${found.message} To estimate another model, give model.params_b, layers, hidden and heads (and kv_heads for grouped-query attention).`,
  };
}

/**
 * The config's attention/MoE/sliding detail keys, each overriding the same part of `base` (the catalog's shape, or
 * one read from a config.json by src/core/models/): what the user wrote always wins.
 */
export function givenDetail(spec: ModelSpec, base: Partial<ModelShape>): Partial<ModelShape> {
  const out: Partial<ModelShape> = {};
  if (spec.headDim !== undefined) out.headDim = spec.headDim;
  if (spec.tiedEmbeddings !== undefined) out.tiedEmbeddings = spec.tiedEmbeddings;
  const mlaGiven = {
    ...(spec.kvLoraRank !== undefined && { kvLoraRank: spec.kvLoraRank }),
    ...(spec.qLoraRank !== undefined && { qLoraRank: spec.qLoraRank }),
    ...(spec.qkRopeHeadDim !== undefined && { qkRopeHeadDim: spec.qkRopeHeadDim }),
    ...(spec.qkNopeHeadDim !== undefined && { qkNopeHeadDim: spec.qkNopeHeadDim }),
    ...(spec.vHeadDim !== undefined && { vHeadDim: spec.vHeadDim }),
  };
  const mla = { ...base.mla, ...mlaGiven };
  // Latent attention needs its rank; the head widths default to 0 (not cached) when only the rank is given.
  if (Object.keys(mlaGiven).length > 0 && mla.kvLoraRank !== undefined)
    out.mla = { qkRopeHeadDim: 0, qkNopeHeadDim: 0, vHeadDim: 0, ...mla, kvLoraRank: mla.kvLoraRank };
  if (spec.sharedExperts !== undefined || spec.moeIntermediate !== undefined || spec.denseLayers !== undefined)
    out.moe = {
      sharedExperts: 0,
      expertIntermediate: spec.moeIntermediate ?? spec.intermediate ?? base.intermediate ?? 0,
      denseLayers: 0,
      ...base.moe,
      ...(spec.sharedExperts !== undefined && { sharedExperts: spec.sharedExperts }),
      ...(spec.moeIntermediate !== undefined && { expertIntermediate: spec.moeIntermediate }),
      ...(spec.denseLayers !== undefined && { denseLayers: spec.denseLayers }),
    };
  if (spec.slidingWindow !== undefined || (spec.slidingLayers !== undefined && base.slidingWindow))
    out.slidingWindow = {
      window: spec.slidingWindow ?? base.slidingWindow!.window,
      layers: spec.slidingLayers ?? base.slidingWindow?.layers ?? spec.layers ?? base.layers ?? 0,
    };
  return out;
}

/**
 * The GPU to estimate on: `gpus.type`; else the GPU the config's host reported (its agent's hello, from Test Host
 * Connection or a run), from the catalog or estimated from the report; else DEFAULT_GPU.
 */
export function gpuFromConfig(config: Pick<ResolvedConfig, 'gpus'>, reported?: GpuInfo): Lookup<GpuSpec> {
  if (!config.gpus.type && reported) return { ok: true, value: gpuForHostGpu(reported) };
  return lookupGpu(config.gpus.type ?? DEFAULT_GPU);
}

/** A GPU a host's agent reported, and which host: what a config without `gpus.type` is estimated on. */
export interface ReportedGpu {
  host: string;
  gpu: GpuInfo;
}

export function pointRequest(config: ResolvedConfig, point: ResolvedPoint, model: ModelShape, gpu: GpuSpec): PointRequest {
  const w = point.workload;
  const slurm = config.target.kind === 'slurm' ? config.target.slurm : undefined;
  return {
    model,
    gpu,
    gpuCount: point.gpuCount,
    powerCapW: point.powerCapW,
    inputTokens: w.inputTokens.mean,
    outputTokens: Math.min(w.outputTokens.mean, w.maxTokens),
    numPrompts: w.numPrompts,
    concurrency: w.concurrency,
    requestRate: w.requestRate,
    // An engine we could not tell matches calibration entries made without one.
    engine: config.server.engine === 'generic' || config.server.engine === 'unknown' ? undefined : config.server.engine,
    gpusPerNode: slurm?.gpusPerNode,
  };
}

export interface PointEstimate {
  point: string;
  label: string;
  params: Record<string, unknown>;
  prediction?: Prediction;
  /** HELM's idealized runtime of one request of this point, and its cost-aware variant. */
  idealized?: { runtime_s: number; cost_usd: number; energy_j: number };
  error?: string;
}

export interface ConfigEstimate {
  model?: ModelShape;
  gpu?: GpuSpec;
  /** What was assumed because the config did not say (e.g. the GPU type). */
  assumptions: string[];
  points: PointEstimate[];
  total?: {
    runtime_s: number;
    energy_j: number;
    output_tokens: number;
    j_per_output_token: number;
    usd: number;
    gco2: number;
    low: { runtime_s: number; energy_j: number };
    high: { runtime_s: number; energy_j: number };
    basis: 'prior' | 'calibrated' | 'mixed';
  };
  /** Why nothing could be estimated, when nothing could. */
  error?: string;
}

/** Shapes resolved earlier (from a config.json, a cache, the Hub: src/core/models/), for models the catalog lacks. */
export type ResolvedShapes = (spec: ModelSpec) => ModelShape | undefined;

/** What a workload's dataset file holds, measured without a tokenizer (core/workspace/datasets.ts). */
export interface DatasetStats {
  prompts: number;
  meanPromptTokens: number;
  /** How tokens were counted, said in the estimate's assumptions. */
  method: string;
}
/** Looks up a dataset file named as in the config; undefined when it cannot be read. */
export type DatasetLengths = (path: string) => DatasetStats | undefined;

/** What an estimate may use beyond the config: each found elsewhere (calibration, the shape chain, files, hosts). */
export interface EstimateInputs {
  profile?: CalibrationProfile;
  /** Shapes the resolution chain found for models the catalog lacks. */
  shapes?: ResolvedShapes;
  datasets?: DatasetLengths;
  /** The GPU the config's host reported, for a config without gpus.type. */
  reported?: ReportedGpu;
}

export function estimateConfig(config: ResolvedConfig, points: ResolvedPoint[], inputs: EstimateInputs = {}): ConfigEstimate {
  const { profile, shapes, datasets, reported } = inputs;
  const assumptions: string[] = [];
  const direct = modelFromSpec(config.model);
  const resolved = direct.ok ? undefined : shapes?.(config.model);
  const model: Lookup<ModelShape> = resolved ? { ok: true, value: resolved } : direct;
  if (!model.ok) return { assumptions, points: [], error: model.message };
  const gpu = gpuFromConfig(config, reported?.gpu);
  if (!gpu.ok) return { assumptions, points: [], error: `gpus.type: ${gpu.message}` };
  if (!config.gpus.type)
    assumptions.push(
      reported
        ? `gpus.type not given: the host ${reported.host} reported ${reported.gpu.name} → ${gpu.value.estimated ? `estimated (not in the catalog; ${gpu.value.source})` : gpu.value.id}`
        : `gpus.type not given: assumed ${gpu.value.id}`,
    );
  if (config.server.sim) assumptions.push('simulated server and GPU: the prediction is what the simulation will measure, up to queueing');
  const tables = new Map<number, IdealizedTable>();
  const said = new Set<string>();
  const withDatasetLengths = (point: ResolvedPoint): ResolvedPoint => {
    const dataset = point.workload.dataset;
    if (dataset.kind !== 'file') return point;
    const stats = datasets?.(dataset.path);
    if (!said.has(dataset.path)) {
      said.add(dataset.path);
      assumptions.push(
        stats
          ? `dataset ${dataset.path}: ${stats.prompts} prompts, mean ≈ ${Math.round(stats.meanPromptTokens)} input tokens (${stats.method})`
          : `dataset ${dataset.path} could not be read: assumed ${point.workload.inputTokens.mean} input tokens per request`,
      );
    }
    if (!stats) return point;
    return { ...point, workload: { ...point.workload, inputTokens: { dist: 'fixed', mean: Math.max(1, Math.round(stats.meanPromptTokens)) } } };
  };
  const estimates = points.map(withDatasetLengths).map((point): PointEstimate => {
    const params = point.params as Record<string, unknown>;
    try {
      const prediction = predictPoint(pointRequest(config, point, model.value, gpu.value), profile);
      let table = tables.get(point.gpuCount);
      if (!table) tables.set(point.gpuCount, (table = idealizedFromPrior(model.value, gpu.value, point.gpuCount)));
      const runtime = idealizedRuntime(table, point.workload.inputTokens.mean, Math.min(point.workload.outputTokens.mean, point.workload.maxTokens));
      return {
        point: point.id,
        label: point.label,
        params,
        prediction,
        idealized: {
          runtime_s: runtime,
          cost_usd: idealizedCost(runtime, config.cost.usdPerGpuHour, point.gpuCount),
          // One request at a time draws batch-1 power, not the power of this point's own batch.
          energy_j: runtime * point.gpuCount * (table.powerPerGpuW ?? prediction.avg_power_w),
        },
      };
    } catch (error) {
      return { point: point.id, label: point.label, params, error: (error as Error).message };
    }
  });
  const ok = estimates.filter((e) => e.prediction);
  if (ok.length === 0) return { model: model.value, gpu: gpu.value, assumptions, points: estimates, error: estimates[0]?.error ?? 'no points' };
  const sum = (f: (p: Prediction) => number) => ok.reduce((s, e) => s + f(e.prediction!), 0);
  const energy = sum((p) => p.energy_j);
  const outputTokens = points.reduce(
    (s, point, i) => s + (estimates[i].prediction ? point.workload.numPrompts * Math.min(point.workload.outputTokens.mean, point.workload.maxTokens) : 0),
    0,
  );
  const kwh = (energy * config.cost.pue) / 3.6e6;
  const runtime = sum((p) => p.runtime_s) * config.repeats;
  const bases = new Set(ok.map((e) => e.prediction!.basis));
  return {
    model: model.value,
    gpu: gpu.value,
    assumptions,
    points: estimates,
    total: {
      runtime_s: runtime,
      energy_j: energy * config.repeats,
      output_tokens: outputTokens * config.repeats,
      j_per_output_token: energy / outputTokens,
      usd: kwh * config.repeats * config.cost.usdPerKwh,
      gco2: kwh * config.repeats * config.cost.gco2PerKwh,
      // Each point's band is ×/÷ exp(2σ) of its own σ (bands are read lazily; the totals need only σ).
      low: { runtime_s: sum((p) => p.runtime_s * Math.exp(-2 * p.sigma)) * config.repeats, energy_j: sum((p) => p.energy_j * Math.exp(-2 * p.sigma)) * config.repeats },
      high: { runtime_s: sum((p) => p.runtime_s * Math.exp(2 * p.sigma)) * config.repeats, energy_j: sum((p) => p.energy_j * Math.exp(2 * p.sigma)) * config.repeats },
      basis: bases.size > 1 ? 'mixed' : ([...bases][0] as 'prior' | 'calibrated'),
    },
  };
}

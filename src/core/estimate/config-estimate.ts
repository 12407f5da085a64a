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
  if (found.ok) return { ok: true, value: { ...found.value, ...given } };
  const { paramsB, layers, hidden, heads } = given;
  if (paramsB !== undefined && layers !== undefined && hidden !== undefined && heads !== undefined)
    return { ok: true, value: { id: spec.id, kvHeads: heads, dtype: 'bf16', ...given, paramsB, layers, hidden, heads } };
  return {
    ok: false,
    query: spec.id,
    candidates: found.candidates,
    message: `${found.message} To estimate another model, give model.params_b, layers, hidden and heads (and kv_heads for grouped-query attention).`,
  };
}

export function gpuFromConfig(config: Pick<ResolvedConfig, 'gpus'>): Lookup<GpuSpec> {
  return lookupGpu(config.gpus.type ?? DEFAULT_GPU);
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
    engine: config.server.engine === 'unknown' ? undefined : config.server.engine,
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

export function estimateConfig(config: ResolvedConfig, points: ResolvedPoint[], profile?: CalibrationProfile): ConfigEstimate {
  const assumptions: string[] = [];
  const model = modelFromSpec(config.model);
  if (!model.ok) return { assumptions, points: [], error: model.message };
  const gpu = gpuFromConfig(config);
  if (!gpu.ok) return { assumptions, points: [], error: `gpus.type: ${gpu.message}` };
  if (!config.gpus.type) assumptions.push(`gpus.type not given: assumed ${gpu.value.id}`);
  if (config.server.sim) assumptions.push('simulated server and GPU: the prediction is what the simulation will measure, up to queueing');
  const tables = new Map<number, IdealizedTable>();
  const estimates = points.map((point): PointEstimate => {
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
          energy_j: runtime * point.gpuCount * prediction.avg_power_w,
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

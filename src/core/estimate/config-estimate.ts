/**
 * The estimate of a whole config: every sweep point predicted (prior or calibrated) with HELM's
 * idealized runtime beside it, and the totals the CodeLens shows. Pure and fast: no I/O.
 */
import type { ResolvedConfig, ResolvedPoint } from '../config/model';
import type { GpuSpec, ModelShape } from './catalog';
import { gpuFromConfig, modelFromSpec, pointRequest } from './from-config';
import { idealizedCost, idealizedFromPrior, idealizedRuntime, type IdealizedTable } from './idealized';
import { predictPoint, type Prediction } from './predict';
import type { CalibrationProfile } from './profile';

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

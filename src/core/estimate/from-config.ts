/** From a resolved config to the estimator's inputs: catalog lookups merged with what the config says. */
import type { ModelSpec, ResolvedConfig, ResolvedPoint } from '../config/model';
import { lookupGpu, lookupModel, type GpuSpec, type Lookup, type ModelShape } from './catalog';
import type { PointRequest } from './predict';

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

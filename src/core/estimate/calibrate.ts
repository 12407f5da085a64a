import { getGpu, lookupModel, type GpuSpec, type ModelShape } from './catalog';
import { nelderMead } from './optimize';
import { predictPointUsing } from './predict';
import { type PointRequest, type Prediction } from './prediction';
import {
  ANY_MODEL,
  DEFAULT_ENGINE,
  type CalibrationEntry,
  type CalibrationProfile,
} from './profile';
import type { CalibrationParams } from './roofline';

/**
 * One measured sweep point. Metrics are optional; give what was measured. `avg_power_w` is per GPU
 * (as in Prediction); `energy_j` is all GPUs together.
 */
export interface Measurement {
  model: string | ModelShape;
  gpu: string | GpuSpec;
  gpuCount: number;
  /** Server batch (max_num_seqs) or client concurrency: both become the closed-loop concurrency. */
  batch?: number;
  concurrency?: number;
  requestRate?: number;
  /** Requests in the point; omit for a steady-state measurement. */
  numPrompts?: number;
  inputTokens: number;
  outputTokens: number;
  powerCapW?: number;
  engine?: string;
  expertParallel?: boolean;
  attentionDataParallel?: boolean;
  /** Mean context of a running sequence (PointRequest.contextPerSeq), when the measurement says. */
  contextPerSeq?: number;
  j_per_output_token?: number;
  output_tokens_per_s?: number;
  avg_power_w?: number;
  runtime_s?: number;
  energy_j?: number;
  /** Where the number comes from, kept in the profile entry. */
  source?: string;
}

type Metric = 'j_per_output_token' | 'output_tokens_per_s' | 'avg_power_w' | 'runtime_s' | 'energy_j';
/** Leave-one-out error is reported on the first metric a measurement has, in this order. */
const METRICS: readonly Metric[] = ['j_per_output_token', 'energy_j', 'runtime_s', 'output_tokens_per_s', 'avg_power_w'];
/** J/token carries energy and time at once; it counts twice so the fit favours it. */
const METRIC_WEIGHT: Record<Metric, number> = {
  j_per_output_token: 2,
  energy_j: 1,
  runtime_s: 1,
  output_tokens_per_s: 1,
  avg_power_w: 1,
};
/** Requests per batch slot standing in for a steady-state measurement. */
const STEADY_STATE_WAVES = 100;

export interface ResolvedMeasurement {
  measurement: Measurement;
  request: PointRequest;
}

export interface CalibrateOptions {
  /** Pull of the log multipliers toward 1 (the prior). Keeps one or two points from over-fitting. */
  ridge?: number;
  /** Also fit a GPU-wide entry (model "*") when a GPU has measurements of several models. */
  pool?: boolean;
}

export interface CalibrationResult {
  profile: CalibrationProfile;
  skipped: { measurement: Measurement; reason: string }[];
}

export function calibrate(measurements: Measurement[], opts: CalibrateOptions = {}): CalibrationProfile {
  return calibrateDetailed(measurements, opts).profile;
}

/** Fits one entry per (GPU, model, engine), and says which measurements it could not use. */
export function calibrateDetailed(measurements: Measurement[], opts: CalibrateOptions = {}): CalibrationResult {
  const skipped: CalibrationResult['skipped'] = [];
  const usable: ResolvedMeasurement[] = [];
  for (const m of measurements) {
    try {
      const r = resolveMeasurement(m);
      if (!METRICS.some((k) => positive(m[k]))) throw new Error('it has no measured metric');
      predictPointUsing(r.request, {});
      usable.push(r);
    } catch (e) {
      skipped.push({ measurement: m, reason: (e as Error).message });
    }
  }

  const groups = new Map<string, ResolvedMeasurement[]>();
  const add = (key: string, r: ResolvedMeasurement) => groups.set(key, [...(groups.get(key) ?? []), r]);
  for (const r of usable) {
    add(groupKey(r.request.gpu.id, r.request.model.id, r.measurement.engine), r);
  }
  if (opts.pool ?? true) {
    const byGpu = new Map<string, ResolvedMeasurement[]>();
    for (const r of usable) {
      const k = groupKey(r.request.gpu.id, ANY_MODEL, r.measurement.engine);
      byGpu.set(k, [...(byGpu.get(k) ?? []), r]);
    }
    for (const [k, rs] of byGpu) if (new Set(rs.map((r) => r.request.model.id)).size > 1) groups.set(k, rs);
  }

  const entries: CalibrationEntry[] = [];
  for (const [key, rs] of groups) {
    const [gpu, model, engine] = JSON.parse(key) as [string, string, string];
    const fit = fitCalibration(rs, opts.ridge);
    entries.push({
      key: { gpu, model, engine },
      params: fit.params,
      n: rs.length,
      loo_error: leaveOneOutError(rs, opts.ridge),
      fit_error: Math.round(fit.error * 1e4) / 1e4,
      sources: [...new Set(rs.map((r) => r.measurement.source ?? describe(r.measurement)))],
    });
  }
  entries.sort((a, b) => (a.key.gpu + a.key.model).localeCompare(b.key.gpu + b.key.model));
  return { profile: { v: 1, entries }, skipped };
}

function groupKey(gpu: string, model: string, engine: string | undefined): string {
  return JSON.stringify([gpu, model, engine ?? DEFAULT_ENGINE]);
}

export function resolveMeasurement(m: Measurement): ResolvedMeasurement {
  const model = typeof m.model === 'string' ? resolveModel(m.model) : m.model;
  const gpu = typeof m.gpu === 'string' ? getGpu(m.gpu) : m.gpu;
  const concurrency = m.concurrency ?? m.batch;
  const slots = Math.max(1, Math.round(concurrency ?? 1));
  const request: PointRequest = {
    model,
    gpu,
    gpuCount: m.gpuCount,
    inputTokens: m.inputTokens,
    outputTokens: m.outputTokens,
    numPrompts: m.numPrompts ?? slots * STEADY_STATE_WAVES,
    engine: m.engine,
  };
  if (m.requestRate !== undefined) request.requestRate = m.requestRate;
  else request.concurrency = slots;
  if (m.powerCapW !== undefined) request.powerCapW = m.powerCapW;
  if (m.expertParallel) request.expertParallel = true;
  if (m.attentionDataParallel) request.attentionDataParallel = true;
  if (m.contextPerSeq !== undefined) request.contextPerSeq = m.contextPerSeq;
  return { measurement: m, request };
}

export function resolveModel(name: string): ModelShape {
  const r = lookupModel(name);
  if (!r.ok) throw new Error(r.message);
  return r.value;
}

function positive(x: number | undefined): x is number {
  return x !== undefined && Number.isFinite(x) && x > 0;
}

/** Squared log errors of a prediction against every metric the measurement has, weighted. */
function logResiduals(pred: Prediction, m: Measurement): number {
  let s = 0;
  for (const k of METRICS) {
    const measured = m[k];
    if (positive(measured)) s += METRIC_WEIGHT[k] * Math.log(pred[k] / measured) ** 2;
  }
  return s;
}

function paramsFrom(x: number[]): CalibrationParams {
  return { bandwidth: Math.exp(x[0]!), compute: Math.exp(x[1]!), power: Math.exp(x[2]!) };
}

/**
 * Log-space least squares over the three multipliers of the prior (memory-bound speed,
 * compute-bound speed, power above idle), with a ridge pull toward the prior.
 */
export function fitCalibration(rs: ResolvedMeasurement[], ridge = 0.02): { params: CalibrationParams; error: number } {
  const objective = (x: number[]) => {
    if (x.some((v) => Math.abs(v) > 3)) return 1e12;
    const calibration = paramsFrom(x);
    let s = 0;
    for (const r of rs) s += logResiduals(predictPointUsing(r.request, { calibration }), r.measurement);
    return s + ridge * x.reduce((a, v) => a + v * v, 0);
  };
  const best = nelderMead(objective, [0, 0, 0], { step: 0.2, maxIterations: 600, tolerance: 1e-9 });
  const params = paramsFrom(best.x);
  const errors = rs.map((r) => relativeError(predictPointUsing(r.request, { calibration: params }), r.measurement));
  return { params: roundParams(params), error: rms(errors) };
}

function roundParams(p: CalibrationParams): CalibrationParams {
  const r = (x: number) => Math.round(x * 1e4) / 1e4;
  return { bandwidth: r(p.bandwidth), compute: r(p.compute), power: r(p.power) };
}

/** Relative error of the measurement's headline metric (J/token, else energy, runtime, tokens/s, power). */
function relativeError(pred: Prediction, m: Measurement): number {
  const k = METRICS.find((key) => positive(m[key]))!;
  return pred[k] / m[k]! - 1;
}

function rms(xs: number[]): number {
  return xs.length ? Math.sqrt(xs.reduce((a, x) => a + x * x, 0) / xs.length) : 0;
}

/** Above this many points, hold out tenths instead of single points: the same estimate, 10 fits instead of n. */
const MAX_LEAVE_ONE_OUT = 20;

/** Cross-validated RMS relative error: each point predicted by a fit that did not see it. */
function leaveOneOutError(rs: ResolvedMeasurement[], ridge?: number): number | null {
  if (rs.length < 2) return null;
  const folds = Math.min(rs.length, rs.length > MAX_LEAVE_ONE_OUT ? 10 : rs.length);
  const errors: number[] = [];
  for (let f = 0; f < folds; f++) {
    const held = rs.filter((_, i) => i % folds === f);
    const { params } = fitCalibration(rs.filter((_, i) => i % folds !== f), ridge);
    for (const h of held) errors.push(relativeError(predictPointUsing(h.request, { calibration: params }), h.measurement));
  }
  return Math.round(rms(errors) * 1e4) / 1e4;
}

function describe(m: Measurement): string {
  const name = (x: string | { id: string }) => (typeof x === 'string' ? x : x.id);
  const load = m.requestRate !== undefined ? `rate ${m.requestRate}/s` : `batch ${m.concurrency ?? m.batch ?? 1}`;
  return `${name(m.model)} on ${m.gpuCount}×${name(m.gpu)}, ${load}, ${m.inputTokens}→${m.outputTokens} tokens`;
}

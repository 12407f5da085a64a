import { getGpu, lookupModel, withDtype, DTYPES, type Dtype, type GpuSpec, type ModelShape } from './catalog';
import { nelderMead } from './optimize';
import { predictPointUsing, type PointRequest, type Prediction } from './predict';
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
  return { measurement: m, request };
}

function resolveModel(name: string): ModelShape {
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

// ---------------------------------------------------------------------------------------------
// ML.ENERGY leaderboard rows

/** One row of the ML.ENERGY v3 sample CSV; cells may be empty. avg_power_w there is all GPUs together. */
export interface MlEnergyRow {
  model: string;
  hf_id: string;
  params_b?: number;
  layers?: number;
  hidden?: number;
  heads?: number;
  kv_heads?: number;
  intermediate?: number;
  dtype?: string;
  gpu: string;
  n_gpus: number;
  batch: number;
  j_per_output_token?: number;
  avg_power_w?: number;
  output_tok_per_s?: number;
}

const NUMERIC_COLUMNS = new Set([
  'params_b', 'layers', 'hidden', 'heads', 'kv_heads', 'intermediate', 'n_gpus', 'batch',
  'j_per_output_token', 'avg_power_w', 'output_tok_per_s',
]);

/** Parses CSV text (header row, commas, optional double quotes); empty cells are left out. */
export function parseCsv(text: string): Record<string, string>[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (!lines.length) return [];
  const header = splitCsvLine(lines[0]!).map((h) => h.trim());
  return lines.slice(1).map((line) => {
    const cells = splitCsvLine(line);
    const row: Record<string, string> = {};
    header.forEach((h, i) => {
      const v = cells[i]?.trim();
      if (v) row[h] = v;
    });
    return row;
  });
}

function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') (cur += '"'), i++;
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') out.push(cur), (cur = '');
    else cur += c;
  }
  out.push(cur);
  return out;
}

export function parseMlEnergyCsv(text: string): MlEnergyRow[] {
  return parseCsv(text).map((cells, i) => {
    const row: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(cells)) {
      if (!NUMERIC_COLUMNS.has(k)) row[k] = v;
      else {
        const x = Number(v);
        if (!Number.isFinite(x)) throw new Error(`ML.ENERGY CSV row ${i + 2}: ${k} is not a number ("${v}")`);
        row[k] = x;
      }
    }
    for (const k of ['model', 'gpu', 'n_gpus', 'batch'] as const) {
      if (row[k] === undefined) throw new Error(`ML.ENERGY CSV row ${i + 2}: missing ${k}`);
    }
    return row as unknown as MlEnergyRow;
  });
}

export interface MlEnergyOptions {
  /** Mean prompt and output length of the task; lm-arena-chat: 256 and 717. */
  inputTokens?: number;
  outputTokens?: number;
  engine?: string;
}

/** The model of a row: the catalog entry for its Hugging Face id, else a shape from its columns. */
export function mlEnergyModel(row: MlEnergyRow): ModelShape {
  const dtype = (DTYPES as readonly string[]).includes(row.dtype ?? '') ? (row.dtype as Dtype) : undefined;
  for (const name of [row.hf_id, row.model]) {
    const hit = name ? lookupModel(name) : undefined;
    if (hit?.ok) return dtype ? withDtype(hit.value, dtype) : hit.value;
  }
  const need = ['params_b', 'layers', 'hidden', 'heads', 'kv_heads'] as const;
  const missing = need.filter((k) => row[k] === undefined);
  if (missing.length) throw new Error(`ML.ENERGY row for ${row.model}: not in the catalog and missing ${missing.join(', ')}`);
  const m: ModelShape = {
    id: row.hf_id || row.model,
    name: row.model,
    paramsB: row.params_b!,
    layers: row.layers!,
    hidden: row.hidden!,
    heads: row.heads!,
    kvHeads: row.kv_heads!,
    dtype: dtype ?? 'bf16',
  };
  if (row.intermediate !== undefined) m.intermediate = row.intermediate;
  return m;
}

export function mlEnergyMeasurements(rows: MlEnergyRow[], opts: MlEnergyOptions = {}): Measurement[] {
  return rows.map((row) => {
    const m: Measurement = {
      model: mlEnergyModel(row),
      gpu: getGpu(row.gpu),
      gpuCount: row.n_gpus,
      batch: row.batch,
      inputTokens: opts.inputTokens ?? 256,
      outputTokens: opts.outputTokens ?? 717,
      source: `ML.ENERGY v3 ${row.model} on ${row.n_gpus}×${row.gpu}, batch ${row.batch}`,
    };
    if (opts.engine) m.engine = opts.engine;
    if (row.j_per_output_token !== undefined) m.j_per_output_token = row.j_per_output_token;
    if (row.output_tok_per_s !== undefined) m.output_tokens_per_s = row.output_tok_per_s;
    if (row.avg_power_w !== undefined) m.avg_power_w = row.avg_power_w / row.n_gpus;
    return m;
  });
}

// ---------------------------------------------------------------------------------------------
// The cap rule's exponent, fitted to "From Words to Watts"

/**
 * "From Words to Watts" (Samsi et al., HPEC 2023): LLaMA-65B on 4×A100 80GB, GSM8K, batch 64,
 * capped at 175 W instead of 250 W: time +6.23/+6.51/+7.40% and energy −21.82/−23.95/−23.87% for
 * max output length 256/512/1024. Their FairScale generation loop runs to the max length, so that
 * is the number of decode steps; GSM8K questions are about 64 tokens.
 */
export const WORDS_TO_WATTS_CAP = {
  model: 'llama-65b',
  gpu: 'A100-80GB',
  gpuCount: 4,
  batch: 64,
  inputTokens: 64,
  numPrompts: 4096,
  fromW: 250,
  toW: 175,
  points: [
    { outputTokens: 256, timeChange: 0.0623, energyChange: -0.2182 },
    { outputTokens: 512, timeChange: 0.0651, energyChange: -0.2395 },
    { outputTokens: 1024, timeChange: 0.074, energyChange: -0.2387 },
  ],
  meanTimeChange: 0.067,
  meanEnergyChange: -0.232,
};

export interface CapEffect {
  outputTokens: number;
  timeChange: number;
  energyChange: number;
}

/** Predicted time and energy change of the Words-to-Watts cap experiment under a given exponent. */
export function wordsToWattsCapEffect(capTimeExponent?: number): CapEffect[] {
  const a = WORDS_TO_WATTS_CAP;
  const base = {
    model: resolveModel(a.model),
    gpu: getGpu(a.gpu),
    gpuCount: a.gpuCount,
    inputTokens: a.inputTokens,
    numPrompts: a.numPrompts,
    concurrency: a.batch,
  };
  return a.points.map(({ outputTokens }) => {
    const at = (powerCapW: number) => predictPointUsing({ ...base, outputTokens, powerCapW }, { capTimeExponent });
    const from = at(a.fromW);
    const to = at(a.toW);
    return { outputTokens, timeChange: to.runtime_s / from.runtime_s - 1, energyChange: to.energy_j / from.energy_j - 1 };
  });
}

/** The exponent for which the prior reproduces the mean Words-to-Watts time increase (bisection). */
export function fitCapTimeExponent(): number {
  const target = WORDS_TO_WATTS_CAP.meanTimeChange;
  const meanTime = (e: number) => {
    const fx = wordsToWattsCapEffect(e);
    return fx.reduce((s, x) => s + x.timeChange, 0) / fx.length;
  };
  let lo = 0;
  let hi = 2;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (meanTime(mid) < target) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}


import { displayName, type GpuSpec, type ModelShape } from './catalog';
import { EstimateError, checkFit, kvCapacitySequences } from './memory';
import { findCalibration, type CalibrationEntry, type CalibrationProfile } from './profile';
import {
  buildStepModel,
  decodePartSeconds,
  type CalibrationParams,
  type DecodePartName,
  type StepModel,
  type Topology,
} from './roofline';
import { weightBytes } from './shape';
import { decodeStep, effectiveLimit, prefillStep, type StepOutcome } from './steprule';

export interface PointRequest {
  model: ModelShape;
  gpu: GpuSpec;
  gpuCount: number;
  powerCapW?: number;
  inputTokens: number;
  outputTokens: number;
  numPrompts: number;
  /** Closed loop: this many requests in flight. Default 1 when no request rate is given. */
  concurrency?: number;
  /** Open loop: Poisson arrivals at this many requests per second. */
  requestRate?: number;
  engine?: string;
  /** The engine's limit on running sequences (vLLM max_num_seqs; the simulated server's is 256). Default: none. */
  maxBatch?: number;
  /** Set when the GPUs span nodes: tensor-parallel traffic then crosses the node link. */
  gpusPerNode?: number;
  interNodeGBs?: number;
}

export interface PredictionBand {
  runtime_s: number;
  energy_j: number;
  j_per_output_token: number;
}

export type BatchLimit = 'concurrency' | 'max-batch' | 'kv-cache' | 'num-prompts' | 'arrival-rate' | 'saturated';

export interface PredictionBreakdown {
  /** Seconds spent in prefill steps and decode steps, and with nothing to run. */
  prefill_s: number;
  decode_s: number;
  idle_s: number;
  idle_share: number;
  /** Mean decode step (inter-token latency) at the steady-state batch. */
  step_s: number;
  /** Steady-state running batch (while busy). */
  batch: number;
  batch_limited_by: BatchLimit;
  kv_capacity_seqs: number;
  prefill_step_s: number;
  decode_util: number;
  prefill_util: number;
  /** Per GPU, during decode: what the work demands and what the GPU draws under the limit. */
  demand_w: number;
  draw_w: number;
  /** Decode-step time multiplier from the power cap. */
  cap_slowdown: number;
  power_limit_w: number | null;
  /** Seconds of each kind of work in one decode step at the steady-state batch, before any cap slowdown. */
  decode_parts_s: Record<DecodePartName, number>;
  /** The part that dominates the decode step. */
  bound: DecodePartName;
  weights_gb_per_gpu: number;
}

export interface Prediction {
  runtime_s: number;
  output_tokens_per_s: number;
  /** Mean power per GPU over the point. */
  avg_power_w: number;
  /** Energy of all GPUs over the point. */
  energy_j: number;
  j_per_output_token: number;
  j_per_response: number;
  ttft_s: number;
  low: PredictionBand;
  high: PredictionBand;
  basis: 'prior' | 'calibrated';
  basisDetail: string;
  breakdown: PredictionBreakdown;
}

/**
 * Spread of the prior, as a log standard deviation. Its J/token RMS log error on the 60 published
 * ML.ENERGY rows in data/published is 0.10 (scripts/accuracy.ts); 0.12 allows for GPUs and models
 * without published measurements. The band is ×/÷ exp(2σ), about a 95% interval were the errors
 * log-normal.
 */
export const PRIOR_LOG_SIGMA = 0.12;
/** Calibrated bands never go below ±2·3%: run-to-run spread of measured energy on one host. */
export const MIN_CALIBRATED_SIGMA = 0.03;

/** What bounds the running batch besides the load: KV-cache room and the engine's sequence limit. */
interface BatchSlots {
  kv: number;
  engine: number;
}

function slotLimit(slots: BatchSlots, numPrompts: number): { max: number; by: BatchLimit } {
  const max = Math.min(slots.kv, slots.engine, numPrompts);
  return { max, by: max === numPrompts ? 'num-prompts' : max === slots.engine ? 'max-batch' : 'kv-cache' };
}

interface RunTotals {
  prefillS: number;
  decodeS: number;
  idleS: number;
  runtimeS: number;
  energyPerGpuJ: number;
  ttftS: number;
  batch: number;
  limitedBy: BatchLimit;
  decode: StepOutcome;
  prefill: StepOutcome;
  model: StepModel;
}

/**
 * Step models by their inputs. A sweep's points share most of them (a power cap, for one, does not
 * change the step model), and building one is most of a prediction's cost.
 */
const stepModels = new WeakMap<ModelShape, Map<string, ReturnType<typeof buildStepModel>>>();
function memoized(shape: ModelShape, key: string, build: () => ReturnType<typeof buildStepModel>): ReturnType<typeof buildStepModel> {
  let byKey = stepModels.get(shape);
  if (!byKey) stepModels.set(shape, (byKey = new Map()));
  let model = byKey.get(key);
  if (!model) {
    if (byKey.size >= 4096) byKey.clear();
    byKey.set(key, (model = build()));
  }
  return model;
}

export function predictPoint(req: PointRequest, profile?: CalibrationProfile): Prediction {
  return predictPointUsing(req, { profile });
}

export interface PredictOptions {
  profile?: CalibrationProfile;
  /** Calibration multipliers to use instead of a profile entry (what the calibration fit varies). */
  calibration?: CalibrationParams;
  /** Cap-rule exponent instead of PRIOR.capTimeExponent (what fitCapTimeExponent varies). */
  capTimeExponent?: number;
}

/** predictPoint with the knobs the fits turn. */
export function predictPointUsing(req: PointRequest, opts: PredictOptions): Prediction {
  validate(req);
  const { model, gpu } = req;
  const n = req.gpuCount;
  const p = req.inputTokens;
  const o = req.outputTokens;
  const fit = checkFit(model, gpu, n, p + o);
  if (!fit.fits) throw new EstimateError('model-does-not-fit', fit.message!, fit);

  const entry = opts.calibration ? undefined : findCalibration(opts.profile, gpu.id, model.id, req.engine);
  const contextPerSeq = p + o / 2;
  const kvCapacity = Math.max(1, kvCapacitySequences(model, gpu, n, contextPerSeq));
  const slots: BatchSlots = { kv: kvCapacity, engine: req.maxBatch === undefined ? Infinity : Math.floor(req.maxBatch) };
  const topology: Topology = { gpusPerNode: req.gpusPerNode, interNodeGBs: req.interNodeGBs };
  const calibration = opts.calibration ?? entry?.params;
  const shared = `${gpu.id}|${n}|${contextPerSeq}|${p}|${req.gpusPerNode}|${req.interNodeGBs}|${calibration ? JSON.stringify(calibration) : ''}|${opts.capTimeExponent}`;
  const stepModelAt = (batch: number) =>
    memoized(model, `${shared}|${batch}`, () =>
      buildStepModel(model, gpu, n, {
        hint: { batch, contextPerSeq, promptTokens: p },
        topology,
        calibration,
        capTimeExponent: opts.capTimeExponent,
      }),
    );

  const run =
    req.requestRate !== undefined
      ? openLoop(req, req.requestRate, slots, stepModelAt)
      : closedLoop(req, req.concurrency ?? 1, slots, stepModelAt);

  const energyJ = run.energyPerGpuJ * n;
  const outputTokens = req.numPrompts * o;
  // A relative error of a few percent is, to first order, the same as a log error.
  const sigma = entry ? Math.max(entry.loo_error ?? PRIOR_LOG_SIGMA, MIN_CALIBRATED_SIGMA) : PRIOR_LOG_SIGMA;
  const band = (f: number): PredictionBand => ({
    runtime_s: run.runtimeS * f,
    energy_j: energyJ * f,
    j_per_output_token: (energyJ * f) / outputTokens,
  });
  const parts = decodePartSeconds(run.model, run.batch, contextPerSeq);
  const limit = effectiveLimit(run.model.sim, req.powerCapW);

  return {
    runtime_s: run.runtimeS,
    output_tokens_per_s: outputTokens / run.runtimeS,
    avg_power_w: run.energyPerGpuJ / run.runtimeS,
    energy_j: energyJ,
    j_per_output_token: energyJ / outputTokens,
    j_per_response: energyJ / req.numPrompts,
    ttft_s: run.ttftS,
    low: band(Math.exp(-2 * sigma)),
    high: band(Math.exp(2 * sigma)),
    basis: entry ? 'calibrated' : 'prior',
    basisDetail: describeBasis(req, entry, run, sigma),
    breakdown: {
      prefill_s: run.prefillS,
      decode_s: run.decodeS,
      idle_s: run.idleS,
      idle_share: run.idleS / run.runtimeS,
      step_s: run.decode.seconds,
      batch: run.batch,
      batch_limited_by: run.limitedBy,
      kv_capacity_seqs: kvCapacity,
      prefill_step_s: run.prefill.seconds,
      decode_util: run.decode.util,
      prefill_util: run.prefill.util,
      demand_w: run.decode.demandW,
      draw_w: run.decode.drawW,
      cap_slowdown: run.decode.slowdown,
      power_limit_w: limit ?? null,
      decode_parts_s: parts,
      bound: (Object.keys(parts) as DecodePartName[]).reduce((a, b) => (parts[b] > parts[a] ? b : a)),
      weights_gb_per_gpu: weightBytes(model) / n / 1e9,
    },
  };
}

function validate(req: PointRequest): void {
  const bad = (msg: string) => {
    throw new EstimateError('invalid-request', msg);
  };
  if (!Number.isInteger(req.gpuCount) || req.gpuCount < 1) bad(`gpuCount must be a whole number ≥ 1 (got ${req.gpuCount})`);
  if (!(req.inputTokens >= 0)) bad(`inputTokens must be ≥ 0 (got ${req.inputTokens})`);
  if (!(req.outputTokens >= 1)) bad(`outputTokens must be ≥ 1 (got ${req.outputTokens})`);
  if (!Number.isInteger(req.numPrompts) || req.numPrompts < 1) bad(`numPrompts must be a whole number ≥ 1 (got ${req.numPrompts})`);
  if (req.concurrency !== undefined && req.requestRate !== undefined) bad('give concurrency or requestRate, not both');
  if (req.concurrency !== undefined && !(req.concurrency >= 1)) bad(`concurrency must be ≥ 1 (got ${req.concurrency})`);
  if (req.maxBatch !== undefined && !(req.maxBatch >= 1)) bad(`maxBatch must be ≥ 1 (got ${req.maxBatch})`);
  if (req.requestRate !== undefined && !(req.requestRate > 0)) bad(`requestRate must be > 0 requests/s (got ${req.requestRate})`);
  if (req.powerCapW !== undefined && !(req.powerCapW > req.gpu.idleW)) bad(`powerCapW must be above the GPU's idle power ${req.gpu.idleW} W (got ${req.powerCapW})`);
}

/**
 * Closed loop: `concurrency` clients each send a new request when theirs finishes. Everyone starts
 * together, so requests run in waves: one prefill step over the wave's prompts, then o−1 decode
 * steps over the whole wave (continuous batching with equal output lengths keeps them in step).
 * Engines with chunked prefill fold later prompts into decode steps at the same marginal cost.
 */
function closedLoop(req: PointRequest, concurrency: number, slots: BatchSlots, stepModelAt: (b: number) => StepModel): RunTotals {
  const { numPrompts: n, inputTokens: p, outputTokens: o } = req;
  const clients = Math.floor(concurrency);
  const limit = slotLimit(slots, n);
  const batch = Math.min(clients, limit.max);
  const limitedBy: BatchLimit = batch === clients ? 'concurrency' : limit.by;
  const model = stepModelAt(batch);
  const powerLimit = effectiveLimit(model.sim, req.powerCapW);
  const contextPerSeq = p + o / 2;

  const wave = (b: number) => {
    const prefill = prefillStep(model.sim, b * p, powerLimit);
    const decode = decodeStep(model.sim, b, b * contextPerSeq, powerLimit);
    const decodeS = (o - 1) * decode.seconds;
    return { prefill, decode, prefillS: prefill.seconds, decodeS, energy: prefill.seconds * prefill.drawW + decodeS * decode.drawW };
  };
  const full = wave(batch);
  const waves = Math.floor(n / batch);
  const rest = n - waves * batch;
  const tail = rest > 0 ? wave(rest) : undefined;

  const prefillS = waves * full.prefillS + (tail?.prefillS ?? 0);
  const decodeS = waves * full.decodeS + (tail?.decodeS ?? 0);
  const runtimeS = prefillS + decodeS;

  // TTFT: the first wave waits for its joint prefill; later requests arrive one by one into a
  // running batch, wait half a decode step, and prefill with the few that arrived alongside.
  const waveS = full.prefillS + full.decodeS;
  const arrivalsPerStep = Math.max(1, batch / Math.max(o - 1, 1));
  const steadyTtft = 0.5 * full.decode.seconds + prefillStep(model.sim, arrivalsPerStep * p, powerLimit).seconds;
  const queueWait = clients > batch ? (clients / batch - 1) * waveS : 0;
  const firstWave = Math.min(batch, n);
  const ttftS = (firstWave * full.prefillS + (n - firstWave) * steadyTtft) / n + queueWait;

  return {
    prefillS,
    decodeS,
    idleS: 0,
    runtimeS,
    energyPerGpuJ: waves * full.energy + (tail?.energy ?? 0),
    ttftS,
    batch,
    limitedBy,
    decode: full.decode,
    prefill: full.prefill,
    model,
  };
}

/**
 * Open loop: Poisson arrivals at `rate`. Below saturation the engine behaves like an M/G/∞ queue —
 * every request is served at once for its residence time R — so the number running is Poisson
 * with mean λR (Little's law): the GPU idles with probability e^{−λR}, and while busy the batch
 * averages λR / (1 − e^{−λR}). R depends on the batch through the step time, so iterate.
 * Above saturation the batch sits at the KV-cache limit and a queue builds.
 */
function openLoop(req: PointRequest, rate: number, slots: BatchSlots, stepModelAt: (b: number) => StepModel): RunTotals {
  const { numPrompts: n, inputTokens: p, outputTokens: o } = req;
  const contextPerSeq = p + o / 2;
  const { max: maxBatch, by: maxBy } = slotLimit(slots, n);
  let batch = 1;
  let state = residence(batch);
  for (let i = 0; i < 100; i++) {
    const inSystem = rate * state.residenceS;
    const busyBatch = inSystem < 1e-9 ? 1 : inSystem / (1 - Math.exp(-inSystem));
    const next = Math.min(maxBatch, Math.max(1, busyBatch));
    if (Math.abs(next - batch) < 1e-6 * batch) break;
    batch = 0.5 * batch + 0.5 * next;
    state = residence(batch);
  }
  const saturated = rate * state.residenceS / (1 - Math.exp(-rate * state.residenceS)) > maxBatch + 1e-9;

  const decodeSteps = (n * (o - 1)) / batch;
  const prefillSteps = n / state.promptsPerPrefill;
  const decodeS = decodeSteps * state.decode.seconds;
  const prefillS = prefillSteps * state.prefill.seconds;
  const busyS = decodeS + prefillS;
  const arrivalsS = n / rate;
  const runtimeS = Math.max(busyS, arrivalsS + state.residenceS);
  const idleS = saturated ? 0 : Math.max(0, runtimeS - busyS);
  const throughputReqS = n / busyS;
  const queueWait = saturated ? Math.max(0, n / throughputReqS - arrivalsS) / 2 : 0;

  return {
    prefillS,
    decodeS,
    idleS,
    runtimeS,
    energyPerGpuJ: decodeS * state.decode.drawW + prefillS * state.prefill.drawW + idleS * state.model.sim.gpu.idle_w,
    ttftS: state.ttftS + queueWait,
    batch,
    limitedBy: saturated ? 'saturated' : batch >= maxBatch ? maxBy : 'arrival-rate',
    decode: state.decode,
    prefill: state.prefill,
    model: state.model,
  };

  function residence(b: number) {
    const model = stepModelAt(b);
    const limit = effectiveLimit(model.sim, req.powerCapW);
    const decode = decodeStep(model.sim, b, b * contextPerSeq, limit);
    // Requests that arrive during one decode step share the next prefill step.
    const promptsPerPrefill = Math.max(1, rate * decode.seconds);
    const prefill = prefillStep(model.sim, promptsPerPrefill * p, limit);
    const busy = 1 - Math.exp(-rate * (prefill.seconds + (o - 1) * decode.seconds));
    const ttftS = busy * 0.5 * decode.seconds + prefill.seconds;
    return { model, decode, prefill, promptsPerPrefill, ttftS, residenceS: ttftS + (o - 1) * decode.seconds };
  }
}

function describeBasis(req: PointRequest, entry: CalibrationEntry | undefined, run: RunTotals, sigma: number): string {
  const limit = effectiveLimit(run.model.sim, req.powerCapW);
  const cap =
    req.powerCapW === undefined
      ? ''
      : limit !== req.powerCapW
        ? `, power cap ${req.powerCapW} W clamped to the GPU's range: ${limit} W`
        : `, power cap ${limit} W`;
  const where = `${displayName(req.model)} (${req.model.dtype}) on ${req.gpuCount}×${req.gpu.id}${cap}`;
  const batch = `steady batch ${fmt(run.batch)} (${run.limitedBy})`;
  const bandPct = Math.round((Math.exp(2 * sigma) - 1) * 100);
  if (entry) {
    const loo = entry.loo_error === null ? 'no leave-one-out error with one point' : `leave-one-out error ${(entry.loo_error * 100).toFixed(1)}%`;
    const scope = entry.key.model === '*' ? `all models measured on ${entry.key.gpu}` : `${entry.key.model} on ${entry.key.gpu}`;
    return (
      `calibrated on ${entry.n} measurement${entry.n === 1 ? '' : 's'} of ${scope} (engine ${entry.key.engine}, ${loo}); ${where}, ${batch}; ` +
      `band ±${bandPct}% = ×/÷ exp(2σ) with σ the leave-one-out error`
    );
  }
  const engine = req.engine ? ` (engine "${req.engine}" has no calibration yet)` : '';
  return (
    `roofline prior for a continuous-batching engine (vLLM class)${engine}: ${where}, ${batch}; ` +
    `band ±${bandPct}% = ×/÷ exp(2σ), σ = ${PRIOR_LOG_SIGMA} the prior's RMS log error on published measurements`
  );
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

/**
 * What a prediction says: its headline numbers, its band, and (built when read) the breakdown and
 * the sentence saying what it rests on. predict.ts computes the run these describe.
 */
import { displayName, type GpuSpec, type ModelShape } from './catalog';
import type { CalibrationEntry } from './profile';
import { decodePartSeconds, type DecodePartName, type StepModel } from './roofline';
import priorFit from './data/prior.json';
import { weightBytes } from './shape';
import { effectiveLimit, type StepOutcome } from './steprule';

/** One sweep point as the estimator sees it: the model, the GPUs and the load. */
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
  /** Routed experts spread over the GPUs (expert parallelism) rather than split by tensor parallelism. */
  expertParallel?: boolean;
  /** With expert parallelism: attention data-parallel over the GPUs rather than tensor-parallel. */
  attentionDataParallel?: boolean;
  /**
   * Mean context of a running sequence, where it is not prompt + output/2: in a steady state with varied
   * output lengths long answers occupy the batch longer (prompt + E[o²]/2E[o]).
   */
  contextPerSeq?: number;
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
  readonly low: PredictionBand;
  readonly high: PredictionBand;
  basis: 'prior' | 'calibrated';
  /** Log standard deviation of the band: low and high are ×/÷ exp(2σ). */
  sigma: number;
  readonly basisDetail: string;
  readonly breakdown: PredictionBreakdown;
}

const PRIOR_LOO = (priorFit as { loo?: { sigma?: number; families?: number } }).loo;

/**
 * Spread of the prior, as a log standard deviation: the RMS log error of its J/token on published
 * measurements of models it was not fitted to (leave one model family out over the ML.ENERGY
 * leaderboard; data/prior.json, written by `npm run accuracy -- --write`). The band is ×/÷ exp(2σ),
 * about a 95% interval were the errors log-normal.
 */
export const PRIOR_LOG_SIGMA = PRIOR_LOO?.sigma ?? 0.25;
/** Calibrated bands never go below ±2·3%: run-to-run spread of measured energy on one host. */
export const MIN_CALIBRATED_SIGMA = 0.03;

/** What the prior's run model works out for one point: the inputs of a Prediction. */
export interface RunTotals {
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
 * A prediction whose breakdown, basis sentence and bands are built on first read: a sweep's
 * CodeLens reads only the headline numbers of a thousand points, a hover or `--json` the rest of a
 * few. toJSON writes every field.
 */
export class RooflinePrediction implements Prediction {
  readonly runtime_s: number;
  readonly output_tokens_per_s: number;
  readonly avg_power_w: number;
  readonly energy_j: number;
  readonly j_per_output_token: number;
  readonly j_per_response: number;
  readonly ttft_s: number;
  readonly basis: 'prior' | 'calibrated';
  readonly sigma: number;
  readonly #req: PointRequest;
  readonly #run: RunTotals;
  readonly #entry: CalibrationEntry | undefined;
  readonly #kvCapacity: number;
  readonly #contextPerSeq: number;
  #low?: PredictionBand;
  #high?: PredictionBand;
  #breakdown?: PredictionBreakdown;
  #basisDetail?: string;

  constructor(req: PointRequest, run: RunTotals, entry: CalibrationEntry | undefined, kvCapacity: number, contextPerSeq: number) {
    this.#req = req;
    this.#run = run;
    this.#entry = entry;
    this.#kvCapacity = kvCapacity;
    this.#contextPerSeq = contextPerSeq;
    const energyJ = run.energyPerGpuJ * req.gpuCount;
    const outputTokens = req.numPrompts * req.outputTokens;
    this.runtime_s = run.runtimeS;
    this.output_tokens_per_s = outputTokens / run.runtimeS;
    this.avg_power_w = run.energyPerGpuJ / run.runtimeS;
    this.energy_j = energyJ;
    this.j_per_output_token = energyJ / outputTokens;
    this.j_per_response = energyJ / req.numPrompts;
    this.ttft_s = run.ttftS;
    this.basis = entry ? 'calibrated' : 'prior';
    // A relative error of a few percent is, to first order, the same as a log error.
    this.sigma = entry ? Math.max(entry.loo_error ?? PRIOR_LOG_SIGMA, MIN_CALIBRATED_SIGMA) : PRIOR_LOG_SIGMA;
  }

  get low(): PredictionBand {
    return (this.#low ??= this.#band(Math.exp(-2 * this.sigma)));
  }

  get high(): PredictionBand {
    return (this.#high ??= this.#band(Math.exp(2 * this.sigma)));
  }

  get basisDetail(): string {
    return (this.#basisDetail ??= describeBasis(this.#req, this.#entry, this.#run, this.sigma));
  }

  get breakdown(): PredictionBreakdown {
    return (this.#breakdown ??= describeRun(this.#req, this.#run, this.#kvCapacity, this.#contextPerSeq));
  }

  #band(f: number): PredictionBand {
    return { runtime_s: this.runtime_s * f, energy_j: this.energy_j * f, j_per_output_token: this.j_per_output_token * f };
  }

  toJSON(): Prediction {
    const { runtime_s, output_tokens_per_s, avg_power_w, energy_j, j_per_output_token, j_per_response, ttft_s, low, high, basis, sigma, basisDetail, breakdown } = this;
    return { runtime_s, output_tokens_per_s, avg_power_w, energy_j, j_per_output_token, j_per_response, ttft_s, low, high, basis, sigma, basisDetail, breakdown };
  }
}

function describeRun(req: PointRequest, run: RunTotals, kvCapacity: number, contextPerSeq: number): PredictionBreakdown {
  const parts = decodePartSeconds(run.model, run.batch, contextPerSeq);
  return {
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
    power_limit_w: effectiveLimit(run.model.sim, req.powerCapW) ?? null,
    decode_parts_s: parts,
    bound: (Object.keys(parts) as DecodePartName[]).reduce((a, b) => (parts[b] > parts[a] ? b : a)),
    weights_gb_per_gpu: weightBytes(req.model) / req.gpuCount / 1e9,
  };
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
    `band ±${bandPct}% = ×/÷ exp(2σ), σ = ${PRIOR_LOG_SIGMA}: the prior's out-of-sample RMS log error of J/token ` +
    `(each of ${PRIOR_LOO?.families ?? 'its'} model families predicted by a prior fitted without it)`
  );
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

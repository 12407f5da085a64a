/**
 * The prior's run model: one sweep point's request played through the step rule, closed loop
 * (fixed concurrency) or open loop (Poisson arrivals), into a Prediction (prediction.ts).
 */
import type { GpuSpec, ModelShape } from './catalog';
import { EstimateError, checkFit, kvCapacitySequences, type FitReport } from './memory';
import { RooflinePrediction, type BatchLimit, type PointRequest, type Prediction, type RunTotals } from './prediction';
import { findCalibration, type CalibrationProfile } from './profile';
import { buildStepModel, isEagerEngine, type CalibrationParams, type PriorParams, type StepModel, type Topology } from './roofline';
import { decodeStep, effectiveLimit, prefillStep } from './steprule';

/** What bounds the running batch besides the load: KV-cache room and the engine's sequence limit. */
interface BatchSlots {
  kv: number;
  engine: number;
}

function slotLimit(slots: BatchSlots, numPrompts: number): { max: number; by: BatchLimit } {
  const max = Math.min(slots.kv, slots.engine, numPrompts);
  return { max, by: max === numPrompts ? 'num-prompts' : max === slots.engine ? 'max-batch' : 'kv-cache' };
}

/**
 * Step models by their inputs. A sweep's points share most of them (a power cap, for one, does not
 * change the step model), and building one is most of a prediction's cost.
 */
const stepModels = new WeakMap<ModelShape, Map<string, Map<number, StepModel>>>();

const paramKeys = new WeakMap<object, string>();
function paramsKey(params: CalibrationParams | PriorParams): string {
  let key = paramKeys.get(params);
  if (key === undefined) paramKeys.set(params, (key = JSON.stringify(params)));
  return key;
}

/** How the engine runs the model, beyond the shape and the GPUs: what the step model needs of the request. */
interface EngineMode {
  prior?: PriorParams;
  expertParallel: boolean;
  attentionDataParallel: boolean;
  eager: boolean;
}

/** The step models of one model on one set of GPUs at one context length, by running batch. */
class StepModels {
  readonly #byBatch: Map<number, StepModel>;

  constructor(
    private readonly model: ModelShape,
    private readonly gpu: GpuSpec,
    private readonly gpuCount: number,
    private readonly contextPerSeq: number,
    private readonly promptTokens: number,
    private readonly topology: Topology,
    private readonly calibration: CalibrationParams | undefined,
    private readonly capTimeExponent: number | undefined,
    private readonly mode: EngineMode,
  ) {
    let byContext = stepModels.get(model);
    if (!byContext) stepModels.set(model, (byContext = new Map()));
    const key = `${gpu.id}|${gpuCount}|${contextPerSeq}|${promptTokens}|${topology.gpusPerNode}|${topology.interNodeGBs}|${calibration ? paramsKey(calibration) : ''}|${capTimeExponent}|${mode.prior ? paramsKey(mode.prior) : ''}|${mode.expertParallel}|${mode.attentionDataParallel}|${mode.eager}`;
    let byBatch = byContext.get(key);
    if (!byBatch) {
      if (byContext.size >= 1024) byContext.clear();
      byContext.set(key, (byBatch = new Map()));
    }
    this.#byBatch = byBatch;
  }

  at(batch: number): StepModel {
    let model = this.#byBatch.get(batch);
    if (!model) {
      // The open-loop fixed point visits fractional batches; keep the map bounded.
      if (this.#byBatch.size >= 4096) this.#byBatch.clear();
      model = buildStepModel(this.model, this.gpu, this.gpuCount, {
        hint: { batch, contextPerSeq: this.contextPerSeq, promptTokens: this.promptTokens },
        topology: this.topology,
        calibration: this.calibration,
        capTimeExponent: this.capTimeExponent,
        prior: this.mode.prior,
        expertParallel: this.mode.expertParallel,
        attentionDataParallel: this.mode.attentionDataParallel,
        eager: this.mode.eager,
      });
      this.#byBatch.set(batch, model);
    }
    return model;
  }
}

/** Fit reports by their inputs: a sweep asks the same few again and again. */
const fits = new WeakMap<ModelShape, Map<string, FitReport>>();
function fitFor(model: ModelShape, gpu: GpuSpec, gpuCount: number, tokens: number): FitReport {
  let byKey = fits.get(model);
  if (!byKey) fits.set(model, (byKey = new Map()));
  const key = `${gpu.id}|${gpuCount}|${tokens}`;
  let fit = byKey.get(key);
  if (!fit) {
    if (byKey.size >= 4096) byKey.clear();
    byKey.set(key, (fit = checkFit(model, gpu, gpuCount, tokens)));
  }
  return fit;
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
  /** The prior's free numbers instead of PRIOR (what fit-prior.ts varies). */
  prior?: PriorParams;
}

/** predictPoint with the knobs the fits turn. */
export function predictPointUsing(req: PointRequest, opts: PredictOptions): Prediction {
  validate(req);
  const { model, gpu } = req;
  const n = req.gpuCount;
  const p = req.inputTokens;
  const o = req.outputTokens;
  const fit = fitFor(model, gpu, n, p + o);
  if (!fit.fits) throw new EstimateError('model-does-not-fit', fit.message!, fit);

  const entry = opts.calibration ? undefined : findCalibration(opts.profile, gpu.id, model.id, req.engine);
  const contextPerSeq = req.contextPerSeq ?? p + o / 2;
  // Room is taken by what sequences hold over their lives, p + o/2 on average: at the limit a paged engine
  // preempts the longest and packs by actual use, so the length-biased running context does not bound it.
  const kvCapacity = Math.max(1, kvCapacitySequences(model, gpu, n, p + o / 2));
  const slots: BatchSlots = { kv: kvCapacity, engine: req.maxBatch === undefined ? Infinity : Math.floor(req.maxBatch) };
  const topology: Topology = { gpusPerNode: req.gpusPerNode, interNodeGBs: req.interNodeGBs };
  const calibration = opts.calibration ?? entry?.params;
  const mode: EngineMode = { prior: opts.prior, expertParallel: req.expertParallel === true, attentionDataParallel: req.attentionDataParallel === true, eager: isEagerEngine(req.engine) };
  const steps = new StepModels(model, gpu, n, contextPerSeq, p, topology, calibration, opts.capTimeExponent, mode);
  const run =
    req.requestRate !== undefined ? openLoop(req, req.requestRate, slots, steps) : closedLoop(req, req.concurrency ?? 1, slots, steps);

  return new RooflinePrediction(req, run, entry, kvCapacity, contextPerSeq);
}

function bad(msg: string): never {
  throw new EstimateError('invalid-request', msg);
}

function validate(req: PointRequest): void {
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
function closedLoop(req: PointRequest, concurrency: number, slots: BatchSlots, steps: StepModels): RunTotals {
  const { numPrompts: n, inputTokens: p, outputTokens: o } = req;
  const clients = Math.floor(concurrency);
  const limit = slotLimit(slots, n);
  const batch = Math.min(clients, limit.max);
  const limitedBy: BatchLimit = batch === clients ? 'concurrency' : limit.by;
  const model = steps.at(batch);
  const powerLimit = effectiveLimit(model.sim, req.powerCapW);
  const contextPerSeq = req.contextPerSeq ?? p + o / 2;

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
function openLoop(req: PointRequest, rate: number, slots: BatchSlots, steps: StepModels): RunTotals {
  const { numPrompts: n, inputTokens: p, outputTokens: o } = req;
  const contextPerSeq = req.contextPerSeq ?? p + o / 2;
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
    const model = steps.at(b);
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

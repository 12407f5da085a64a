/**
 * Idealized and denoised runtime in the form of Stanford HELM's efficiency metrics (Narayanan et
 * al., NeurIPS 2023; helm/benchmark/metrics/efficiency_metrics.py):
 *   T(p, o) = α(p) + β·(o − 1) [+ overhead],  α(p) = α(k*)·p/k*,
 * k* the smallest profiled prompt size ≥ p, or the largest one when p is beyond them all.
 */
import type { GpuSpec, ModelShape } from './catalog';
import { leastSquares } from './optimize';
import { buildStepModel, isEagerEngine, type PriorParams } from './roofline';
import { decodeStep, prefillStep } from './steprule';

export interface IdealizedTable {
  /** β: seconds per output token after the first. */
  runtimePerOutputToken: number;
  /** α(k): seconds to encode a k-token prompt and produce the first output token, by k ascending. */
  runtimeForPromptTokens: [promptTokens: number, seconds: number][];
  /** Fixed per-request cost of denoised runtimes (HELM's `overhead`). */
  overhead?: number;
  /** Accelerators the profile ran on (for the cost-aware variant). */
  gpus?: number;
  source?: string;
  /** Power per GPU while serving one request at a time (from the prior): what an idealized request draws. */
  powerPerGpuW?: number;
}

/** HELM's prompt sizes in inference_idealized_runtimes.json. */
export const HELM_PROMPT_SIZES = [
  1, 16, 32, 64, 128, 192, 256, 320, 384, 428, 472, 512, 576, 640, 704, 768, 832, 896, 960, 1024, 1152, 1280, 1408,
  1536, 1664, 1792, 1920,
];

export function makeTable(
  beta: number,
  alphas: Record<string, number> | [number, number][],
  extra: Pick<IdealizedTable, 'overhead' | 'gpus' | 'source'> = {},
): IdealizedTable {
  const pairs: [number, number][] = Array.isArray(alphas)
    ? alphas.map(([k, v]): [number, number] => [k, v])
    : Object.entries(alphas).map(([k, v]): [number, number] => [Number(k), v]);
  if (!pairs.length) throw new Error('an idealized runtime table needs at least one prompt size');
  for (const [k, v] of pairs) {
    if (!(Number.isInteger(k) && k > 0) || !Number.isFinite(v)) throw new Error(`bad prompt-size entry ${k}: ${v}`);
  }
  const table: IdealizedTable = { runtimePerOutputToken: beta, runtimeForPromptTokens: pairs.sort((a, b) => a[0] - b[0]) };
  if (extra.overhead !== undefined) table.overhead = extra.overhead;
  if (extra.gpus !== undefined) table.gpus = extra.gpus;
  if (extra.source !== undefined) table.source = extra.source;
  return table;
}

/** α(p), HELM's way: scale the runtime of the smallest profiled size ≥ p linearly to p. */
export function promptRuntime(table: IdealizedTable, promptTokens: number): number {
  const sizes = table.runtimeForPromptTokens;
  const k = sizes.find(([size]) => promptTokens <= size) ?? sizes[sizes.length - 1]!;
  return k[1] * (promptTokens / k[0]);
}

/**
 * HELM's estimated runtime: α(p), plus β·(o − 1) when there is any output, plus the overhead when
 * the table has one (denoised runtimes).
 */
export function idealizedRuntime(table: IdealizedTable, promptTokens: number, outputTokens: number): number {
  let t = promptRuntime(table, promptTokens);
  if (outputTokens > 0) t += table.runtimePerOutputToken * (outputTokens - 1);
  if (table.overhead !== undefined) t += table.overhead;
  return t;
}

/** Cost-aware variant: runtime × price per GPU-hour × accelerators. */
export function idealizedCost(runtimeS: number, usdPerGpuHour: number, gpus: number): number {
  return (runtimeS * usdPerGpuHour * gpus) / 3600;
}

/** E ≈ T × N_GPU × P. */
export function idealizedEnergy(runtimeS: number, gpus: number, powerPerGpuW: number): number {
  return runtimeS * gpus * powerPerGpuW;
}

/**
 * The one least-squares fit of HELM's form, runtime ≈ α + β·(o − 1), in running sums: a day-long run's
 * requests cost five numbers. The summary fits it per point; `fitIdealized` pools it within prompt sizes.
 */
export class RuntimeFit {
  n = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;

  add(outputTokens: number, runtime_s: number): void {
    const x = outputTokens - 1;
    this.n++;
    this.sx += x;
    this.sy += runtime_s;
    this.sxx += x * x;
    this.sxy += x * runtime_s;
  }

  /** Sums of squares about the means, the pieces a pooled slope adds up. */
  get centered(): { sxx: number; sxy: number; meanX: number; meanY: number } {
    const n = Math.max(1, this.n);
    return { sxx: this.sxx - (this.sx * this.sx) / n, sxy: this.sxy - (this.sx * this.sy) / n, meanX: this.sx / n, meanY: this.sy / n };
  }

  /** α and β, or null while fewer than two output lengths were seen. */
  result(): { alpha_s: number; beta_s: number; n: number } | null {
    const { sxx, sxy, meanX, meanY } = this.centered;
    if (this.n < 2 || !(sxx > 1e-12 * Math.max(1, this.sxx))) return null;
    const beta = sxy / sxx;
    return { alpha_s: meanY - beta * meanX, beta_s: beta, n: this.n };
  }
}

export interface RuntimeSample {
  promptTokens: number;
  outputTokens: number;
  runtime_s: number;
}

/**
 * Idealized α/β from profiling runs: β is the least-squares slope of runtime against o − 1 pooled
 * within prompt sizes (each size keeps its own intercept), α(p) the fitted runtime at o = 1 — the
 * mean runtime at o = 1 when that is all a size has.
 */
export function fitIdealized(samples: RuntimeSample[]): IdealizedTable {
  const groups = new Map<number, RuntimeFit>();
  for (const r of samples) {
    const fit = groups.get(r.promptTokens) ?? new RuntimeFit();
    fit.add(r.outputTokens, r.runtime_s);
    groups.set(r.promptTokens, fit);
  }
  const sorted = [...groups].sort((a, b) => a[0] - b[0]);
  let sxy = 0;
  let sxx = 0;
  for (const [, fit] of sorted) {
    const c = fit.centered;
    sxy += c.sxy;
    sxx += c.sxx;
  }
  if (!(sxx > 0)) throw new Error('fitIdealized: every prompt size was profiled at a single output length, so β is undetermined');
  const beta = sxy / sxx;
  const alphas = sorted.map(([p, fit]): [number, number] => {
    const c = fit.centered;
    return [p, c.meanY - beta * c.meanX];
  });
  return makeTable(beta, alphas);
}

/**
 * Denoised runtime: the same form fitted to the minimum of repeated black-box measurements of each
 * (p, o), plus a fixed `overhead`. Overhead and α are only separable with an anchor; as in HELM's
 * inference_denoised_runtimes.json, where α(1) = β, the smallest profiled prompt costs one
 * decoding step per token: α(p_min) = β·p_min.
 */
export function fitDenoised(samples: RuntimeSample[]): IdealizedTable {
  const fastest = new Map<string, RuntimeSample>();
  for (const s of samples) {
    const key = `${s.promptTokens}/${s.outputTokens}`;
    const seen = fastest.get(key);
    if (!seen || s.runtime_s < seen.runtime_s) fastest.set(key, s);
  }
  const points = [...fastest.values()];
  const sizes = [...new Set(points.map((s) => s.promptTokens))].sort((a, b) => a - b);
  const pMin = sizes[0]!;
  const free = sizes.slice(1);
  // Unknowns: [overhead, β, α(p) for every size but the smallest].
  const rows = points.map((s) => {
    const row = new Array<number>(2 + free.length).fill(0);
    row[0] = 1;
    row[1] = s.outputTokens > 0 ? s.outputTokens - 1 : 0;
    if (s.promptTokens === pMin) row[1] += pMin;
    else row[2 + free.indexOf(s.promptTokens)] = 1;
    return row;
  });
  const x = leastSquares(rows, points.map((s) => s.runtime_s));
  const beta = x[1]!;
  const alphas: [number, number][] = [[pMin, beta * pMin], ...free.map((p, i): [number, number] => [p, x[2 + i]!])];
  return makeTable(beta, alphas, { overhead: x[0]! });
}

/** One model in HELM's inference_*_runtimes.json. */
export interface HelmModelEntry {
  runtime_per_output_token: number;
  runtime_for_prompt_tokens: Record<string, number>;
  overhead?: number;
  gpus?: number;
}

function isHelmEntry(x: unknown): x is HelmModelEntry {
  const e = x as HelmModelEntry;
  return !!e && typeof e === 'object' && typeof e.runtime_per_output_token === 'number' && !!e.runtime_for_prompt_tokens;
}

/**
 * Tables from HELM's JSON, in either shape: HELM's own inference_*_runtimes.json
 * ({model: {runtime_per_output_token, runtime_for_prompt_tokens, overhead?}}) or the reference
 * sample's ({source, hardware, models: {model: {..., gpus}}}).
 */
export function importHelmJson(json: unknown): Map<string, IdealizedTable> {
  if (!json || typeof json !== 'object') throw new Error('HELM runtimes: expected a JSON object');
  const root = json as Record<string, unknown>;
  const wrapped = root.models && typeof root.models === 'object' && !isHelmEntry(root.models);
  const models = (wrapped ? root.models : root) as Record<string, unknown>;
  const source = typeof root.source === 'string' ? root.source : undefined;
  const out = new Map<string, IdealizedTable>();
  for (const [name, entry] of Object.entries(models)) {
    if (!isHelmEntry(entry)) continue;
    out.set(
      name,
      makeTable(entry.runtime_per_output_token, entry.runtime_for_prompt_tokens, {
        overhead: entry.overhead,
        gpus: entry.gpus,
        source,
      }),
    );
  }
  if (!out.size) throw new Error('HELM runtimes: no model entries with runtime_per_output_token and runtime_for_prompt_tokens');
  return out;
}

/** Back to HELM's own JSON shape. */
export function exportHelmJson(tables: Map<string, IdealizedTable>): Record<string, HelmModelEntry> {
  const out: Record<string, HelmModelEntry> = {};
  for (const [name, t] of tables) {
    const entry: HelmModelEntry = {
      runtime_per_output_token: t.runtimePerOutputToken,
      runtime_for_prompt_tokens: Object.fromEntries(t.runtimeForPromptTokens.map(([k, v]) => [String(k), v])),
    };
    if (t.overhead !== undefined) entry.overhead = t.overhead;
    out[name] = entry;
  }
  return out;
}

/**
 * α/β the roofline prior implies for one request at a time (batch 1), HELM's setting: α(p) is a
 * prefill step over p tokens, which yields the first output token; β a decode step of one sequence
 * with `contextTokens` of context.
 */
export function idealizedFromPrior(
  model: ModelShape,
  gpu: GpuSpec,
  gpuCount: number,
  opts: { promptSizes?: number[]; contextTokens?: number; engine?: string; prior?: PriorParams } = {},
): IdealizedTable {
  const sizes = opts.promptSizes ?? HELM_PROMPT_SIZES;
  const context = opts.contextTokens ?? 512;
  const eager = isEagerEngine(opts.engine);
  const at = (promptTokens: number) =>
    buildStepModel(model, gpu, gpuCount, { hint: { batch: 1, contextPerSeq: context, promptTokens }, eager, prior: opts.prior }).sim;
  const decode = decodeStep(at(context), 1, context);
  const alphas = sizes.map((p): [number, number] => [p, prefillStep(at(p), p).seconds]);
  const engine = opts.engine ? `, engine ${opts.engine}${eager ? ' (eager, no CUDA graphs)' : ''}` : '';
  const table = makeTable(decode.seconds, alphas, { gpus: gpuCount, source: `roofline prior, ${gpuCount}×${gpu.id}, batch 1${engine}` });
  table.powerPerGpuW = decode.drawW;
  return table;
}

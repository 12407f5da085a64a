/**
 * Before any run: the estimator's prediction of every point of the search space (load, power cap,
 * GPU count, GPU type), its latencies against the SLO, and the cheapest that meets it.
 */
import type { ResolvedConfig, ResolvedPoint, SloObjectives } from '../config/model';
import { listGpus, type GpuSpec } from '../estimate/catalog';
import { modelFromSpec, pointRequest } from '../estimate/config-estimate';
import { predictPoint } from '../estimate/predict';
import type { PointRequest } from '../estimate/prediction';
import type { CalibrationProfile } from '../estimate/profile';
import { checksAgainst, choose, usdPerMtoken, worstOf, type Candidate, type Objective, type Recommendation } from './types';

export interface SearchOptions {
  objective?: Objective;
  profile?: CalibrationProfile;
  /** GPU types to try (default: the whole catalog). */
  gpus?: GpuSpec[];
  /** GPU counts to try (default: the config's, and 1, 2, 4, 8). */
  gpuCounts?: number[];
  /** Exactly these loads and caps instead of the ladders around the config's (tests, a narrowed search). */
  loads?: { concurrency?: number; requestRate?: number }[];
  caps?: (number | undefined)[];
}

const CONCURRENCY_LADDER = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const GPU_COUNTS = [1, 2, 4, 8];
/** Power caps tried as shares of the GPU's TDP, besides none and the config's own. */
const CAP_SHARES = [0.5, 0.6, 0.7, 0.8, 0.9];

const unique = <T>(values: T[]) => [...new Set(values)];

/** The SLO a config is judged by: its own, else its first point's. */
export function sloOfConfig(config: ResolvedConfig, points: ResolvedPoint[]): SloObjectives | undefined {
  return config.slo ?? points.find((p) => p.slo)?.slo;
}

/** Loads to try: the config's concurrencies with a doubling ladder, or its rates ×/÷ 2, 4, 8. */
function loads(points: ResolvedPoint[]): { concurrency?: number; requestRate?: number }[] {
  const rates = unique(points.map((p) => p.workload.requestRate).filter((r): r is number => r !== undefined));
  if (rates.length) {
    const ladder = rates.flatMap((r) => [-3, -2, -1, 0, 1, 2, 3].map((k) => Number((r * 2 ** k).toPrecision(3))));
    return unique([...rates, ...ladder]).sort((a, b) => a - b).map((requestRate) => ({ requestRate }));
  }
  const given = points.map((p) => p.workload.concurrency ?? 1);
  return unique([...given, ...CONCURRENCY_LADDER]).sort((a, b) => a - b).map((concurrency) => ({ concurrency }));
}

function caps(gpu: GpuSpec, given: (number | undefined)[]): (number | undefined)[] {
  const shares = CAP_SHARES.map((s) => Math.round((s * gpu.tdpW) / 5) * 5);
  const inRange = [...given, ...shares].filter((w): w is number => w !== undefined && w >= gpu.minLimitW && w <= gpu.maxLimitW && w > gpu.idleW);
  return [undefined, ...unique(inRange).sort((a, b) => a - b)];
}

function describe(c: Pick<Candidate, 'gpu' | 'gpuCount' | 'powerCapW' | 'concurrency' | 'requestRate'>): string {
  const load = c.requestRate !== undefined ? `${c.requestRate} req/s` : `concurrency ${c.concurrency ?? 1}`;
  return `${c.gpuCount}× ${c.gpu} · ${load}${c.powerCapW !== undefined ? ` · cap ${c.powerCapW} W` : ''}`;
}

export function recommendFromPrediction(config: ResolvedConfig, points: ResolvedPoint[], options: SearchOptions = {}): Recommendation {
  const objective = options.objective ?? 'j_per_token';
  const slo = sloOfConfig(config, points);
  const notes: string[] = [];
  if (!slo) throw new Error('the config has no `slo`: add e.g. `slo: { ttft: 500ms, itl: 50ms }` to say what a good request is');
  if (points.length === 0) throw new Error('the config has no points');
  if (unique(points.map((p) => JSON.stringify(p.slo ?? null))).length > 1) notes.push("points have SLOs of their own: the search uses the config's (or the first point's)");
  const model = modelFromSpec(config.model);
  if (!model.ok) throw new Error(model.message);
  const base = points[0];
  if (points.some((p) => p.workload.inputTokens.mean !== base.workload.inputTokens.mean || p.workload.outputTokens.mean !== base.workload.outputTokens.mean))
    notes.push(`the search keeps the first point's request shape (${base.workload.inputTokens.mean} input, ${base.workload.outputTokens.mean} output tokens)`);
  notes.push(`predicted latencies are means; a run's p${slo.percentile} lies above them, so a point near its limits may miss the SLO when measured`);

  const gpus = options.gpus ?? listGpus();
  const counts = options.gpuCounts ?? unique([...points.map((p) => p.gpuCount), ...GPU_COUNTS]).sort((a, b) => a - b);
  const givenCaps = points.map((p) => p.powerCapW);
  const candidates: Candidate[] = [];
  let searched = 0;
  for (const gpu of gpus)
    for (const gpuCount of counts)
      for (const powerCapW of options.caps ?? caps(gpu, givenCaps))
        for (const load of options.loads ?? loads(points)) {
          searched++;
          const req: PointRequest = { ...pointRequest(config, base, model.value, gpu), gpuCount, powerCapW, concurrency: load.concurrency, requestRate: load.requestRate };
          let prediction;
          try {
            prediction = predictPoint(req, options.profile);
          } catch {
            continue; // does not fit on these GPUs, or a cap outside the GPU's range
          }
          const step = prediction.breakdown.step_s;
          const outputTokens = req.outputTokens;
          const values = { ttft: prediction.ttft_s, itl: step, tpot: step, e2e: prediction.ttft_s + (outputTokens - 1) * step };
          const checks = checksAgainst(slo, values);
          const worst = worstOf(checks);
          const bandTop = Math.exp(2 * prediction.sigma);
          const meets = worst <= 1;
          const tokens = req.numPrompts * outputTokens;
          candidates.push({
            label: describe({ gpu: gpu.id, gpuCount, powerCapW, ...load }),
            gpu: gpu.id,
            gpuCount,
            ...(powerCapW !== undefined && { powerCapW }),
            ...load,
            j_per_output_token: prediction.j_per_output_token,
            usd_per_mtoken: usdPerMtoken(prediction.energy_j, prediction.runtime_s, gpuCount, tokens, config.cost),
            goodput_requests_per_s: meets ? req.numPrompts / prediction.runtime_s : 0,
            goodput_output_tokens_per_s: meets ? prediction.output_tokens_per_s : 0,
            checks,
            meets,
            worst,
            prediction: {
              basis: prediction.basis,
              sigma: prediction.sigma,
              j_per_output_token_low: prediction.low.j_per_output_token,
              j_per_output_token_high: prediction.high.j_per_output_token,
              meets_at_band_top: worst * bandTop <= 1,
            },
          });
        }
  const chosen = choose(candidates, objective);
  if (chosen.best && !chosen.best.prediction!.meets_at_band_top)
    notes.push(`the best point meets the SLO only below the top of its band (latency × ${Math.exp(2 * chosen.best.prediction!.sigma).toFixed(2)}): measure it`);
  return { source: 'prediction', objective, slo, ...chosen, searched, notes };
}

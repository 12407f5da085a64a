/**
 * A point's requests against its service-level objectives: attainment, goodput and energy per
 * SLO-meeting token, in memory bounded by the point (counters and four fixed-memory histograms).
 *
 * A request is good when it meets every objective given, as `vllm bench serve --goodput ttft:…,tpot:…,e2el:…`
 * decides it (vllm-project/vllm, vllm/benchmarks/serve.py `calculate_metrics`, commit def9ce85: a
 * completed request is good when `all(slo >= metric)`; goodput = good requests / benchmark duration;
 * TPOT = (latency − TTFT) / (output tokens − 1), 0 for one token). GenAI-Perf and AIPerf's `--goodput`
 * (docs: "Benchmark Goodput") use the same rule with the request's mean inter-token latency, our `itl`.
 * Where vLLM leaves failed requests out of the count, we keep them in the denominator as misses: an
 * errored request did not meet its objective. `percentile` reads an SLO as GuideLLM's guide writes them,
 * "TTFT ≤ 200ms for 99% of requests" (vllm-project/guidellm, docs/guides/service_level_objectives.md,
 * commit ee7a7745): an objective is met when that share of requests meets it. GuideLLM itself computes no
 * goodput (nor has a goodput profile) in that snapshot.
 */
import type { SloObjectives } from '../config/model';
import type { RequestEvent } from '../protocol/events';
import type { SloMetric, SloObjectiveResult, SloObjectivesOnDisk, SloSummary } from '../protocol/summary';
import { Histogram } from './histogram';

export const SLO_METRICS: readonly SloMetric[] = ['ttft', 'itl', 'tpot', 'e2e'];

/** The objective of each metric, in seconds (undefined where none is set). */
export function limitOf(objectives: SloObjectives, metric: SloMetric): number | undefined {
  return { ttft: objectives.ttftS, itl: objectives.itlS, tpot: objectives.tpotS, e2e: objectives.e2eS }[metric];
}

export function objectivesOnDisk(o: SloObjectives): SloObjectivesOnDisk {
  return {
    ...(o.ttftS !== undefined && { ttft_s: o.ttftS }),
    ...(o.itlS !== undefined && { itl_s: o.itlS }),
    ...(o.tpotS !== undefined && { tpot_s: o.tpotS }),
    ...(o.e2eS !== undefined && { e2e_s: o.e2eS }),
    percentile: o.percentile,
  };
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * One successful request's figures for each metric; undefined where the request does not carry it
 * (a command workload that reports no TTFT): such a request misses that objective.
 */
export function requestMetrics(r: RequestEvent): Record<SloMetric, number | undefined> {
  const ttft = finite(r.ttft_s) ? r.ttft_s : undefined;
  const oneToken = (r.output_tokens ?? 0) <= 1;
  const itls = (r.itl_s ?? []).filter(finite);
  return {
    ttft,
    itl: itls.length ? itls.reduce((a, b) => a + b, 0) / itls.length : oneToken ? 0 : undefined,
    tpot: oneToken ? 0 : ttft !== undefined && finite(r.latency_s) ? (r.latency_s - ttft) / (r.output_tokens - 1) : undefined,
    e2e: finite(r.latency_s) ? r.latency_s : undefined,
  };
}

/** Which objectives apply to each point: its own, else the config's. */
export interface SloPlan {
  byPoint?: Record<string, SloObjectives>;
  fallback?: SloObjectives;
}

export function sloPlan(configSlo: SloObjectives | undefined, points: { id: string; slo?: SloObjectives }[]): SloPlan | undefined {
  const byPoint = Object.fromEntries(points.filter((p) => p.slo).map((p) => [p.id, p.slo!]));
  if (!configSlo && !Object.keys(byPoint).length) return undefined;
  return { byPoint, fallback: configSlo };
}

export function objectivesFor(plan: SloPlan | undefined, point: string): SloObjectives | undefined {
  return plan?.byPoint?.[point] ?? plan?.fallback;
}

export class SloAccumulator {
  private requests = 0;
  private good = 0;
  private goodTokens = 0;
  private readonly meeting: Record<SloMetric, number> = { ttft: 0, itl: 0, tpot: 0, e2e: 0 };
  private readonly values: Record<SloMetric, Histogram> = { ttft: new Histogram(), itl: new Histogram(), tpot: new Histogram(), e2e: new Histogram() };
  private readonly metrics: SloMetric[];

  constructor(readonly objectives: SloObjectives) {
    this.metrics = SLO_METRICS.filter((m) => limitOf(objectives, m) !== undefined);
  }

  /** A measured (not warm-up) request, successful or not. */
  add(r: RequestEvent): void {
    this.requests++;
    if (!r.ok) return;
    const figures = requestMetrics(r);
    let good = true;
    for (const metric of this.metrics) {
      const value = figures[metric];
      if (value !== undefined) this.values[metric].add(value);
      if (value !== undefined && value <= limitOf(this.objectives, metric)!) this.meeting[metric]++;
      else good = false;
    }
    if (good) {
      this.good++;
      this.goodTokens += r.output_tokens ?? 0;
    }
  }

  /** `energyJ`: the point's energy, or NaN when unknown; `durationS`: its measured time. */
  result(durationS: number, energyJ: number): SloSummary {
    const share = (n: number) => (this.requests > 0 ? n / this.requests : 0);
    const needed = this.objectives.percentile / 100;
    const perObjective: SloSummary['per_objective'] = {};
    for (const metric of this.metrics) {
      const value = this.values[metric].quantile(needed);
      const result: SloObjectiveResult = {
        limit_s: limitOf(this.objectives, metric)!,
        attainment: share(this.meeting[metric]),
        value_s: Number.isFinite(value) ? value : null,
        // Tiny tolerance: 99 of 100 requests is 0.99 exactly, not 0.9899999.
        met: this.requests > 0 && share(this.meeting[metric]) >= needed - 1e-12,
      };
      perObjective[metric] = result;
    }
    return {
      objectives: objectivesOnDisk(this.objectives),
      requests: this.requests,
      good_requests: this.good,
      good_output_tokens: this.goodTokens,
      attainment: share(this.good),
      goodput_requests_per_s: durationS > 0 ? this.good / durationS : 0,
      goodput_output_tokens_per_s: durationS > 0 ? this.goodTokens / durationS : 0,
      j_per_slo_token: this.goodTokens > 0 ? energyJ / this.goodTokens : NaN,
      j_per_slo_request: this.good > 0 ? energyJ / this.good : NaN,
      met: this.requests > 0 && this.metrics.every((m) => perObjective[m]!.met),
      per_objective: perObjective,
    };
  }
}

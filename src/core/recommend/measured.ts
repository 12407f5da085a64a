/**
 * After runs: the measured points of a config's stored runs against its SLO. A point summarised with
 * the same objectives is judged request by request (its `slo`: attainment, goodput, J per SLO token);
 * one summarised without them, by its latency percentiles, which is coarser.
 */
import type { CostSettings, SloObjectives } from '../config/model';
import type { PointSummary, Percentiles, RunSummary, SloMetric } from '../protocol/summary';
import { checksAgainst, choose, usdPerMtoken, worstOf, type Candidate, type Objective, type Recommendation } from './types';

export interface MeasuredPointInfo {
  id: string;
  label: string;
  gpuCount: number;
  powerCapW?: number;
  concurrency?: number;
  requestRate?: number;
}

/** A stored run of the config: its summary, what each point was, the GPU type, and the prices it ran at. */
export interface MeasuredRun {
  run_id: string;
  gpu: string;
  cost: CostSettings;
  points: MeasuredPointInfo[];
  summary: RunSummary;
}

function sameObjectives(p: PointSummary, slo: SloObjectives): boolean {
  const o = p.slo?.objectives;
  return !!o && o.ttft_s === slo.ttftS && o.itl_s === slo.itlS && o.tpot_s === slo.tpotS && o.e2e_s === slo.e2eS && o.percentile === slo.percentile;
}

/** The stored percentile nearest at or above the SLO's (p50, p90, p99 are kept). */
function percentileOf(p: Percentiles | undefined, percentile: number): number | null {
  if (!p) return null;
  return percentile <= 50 ? p.p50 : percentile <= 90 ? p.p90 : percentile <= 99 ? p.p99 : p.max;
}

function candidateOf(run: MeasuredRun, info: MeasuredPointInfo, p: PointSummary, slo: SloObjectives): Candidate {
  const byRequests = sameObjectives(p, slo) ? p.slo! : undefined;
  const values: Partial<Record<SloMetric, number | null>> = byRequests
    ? Object.fromEntries(Object.entries(byRequests.per_objective).map(([m, r]) => [m, r!.value_s]))
    : {
        ttft: percentileOf(p.latency.ttft_s, slo.percentile),
        // Token gaps, not each request's mean gap: the percentiles kept are of every gap.
        itl: percentileOf(p.latency.itl_s, slo.percentile),
        e2e: percentileOf(p.latency.e2e_s, slo.percentile),
      };
  const checks = checksAgainst(slo, values);
  const meets = byRequests ? byRequests.met : worstOf(checks) <= 1 && p.requests.errors === 0;
  const goodTokens = byRequests ? byRequests.good_output_tokens : meets ? p.tokens.output : 0;
  const energy = p.energy.method === 'none' ? NaN : p.energy.total_j;
  return {
    label: `${info.label} (run ${run.run_id})`,
    gpu: run.gpu,
    gpuCount: info.gpuCount,
    ...(p.power_cap_w !== undefined && { powerCapW: p.power_cap_w }),
    ...(info.concurrency !== undefined && { concurrency: info.concurrency }),
    ...(info.requestRate !== undefined && { requestRate: info.requestRate }),
    // Energy per token that met the SLO: the energy of the misses is charged to the good ones.
    j_per_output_token: goodTokens > 0 ? energy / goodTokens : NaN,
    usd_per_mtoken: usdPerMtoken(energy, p.window.duration_s, info.gpuCount, goodTokens, run.cost),
    goodput_requests_per_s: byRequests ? byRequests.goodput_requests_per_s : meets ? p.throughput.requests_per_s : 0,
    goodput_output_tokens_per_s: byRequests ? byRequests.goodput_output_tokens_per_s : meets ? p.throughput.output_tokens_per_s : 0,
    checks,
    meets,
    worst: worstOf(checks),
    measured: { run_id: run.run_id, point: info.id, attainment: byRequests ? byRequests.attainment : null, judged_by: byRequests ? 'requests' : 'percentiles' },
  };
}

export function recommendFromMeasurements(runs: MeasuredRun[], slo: SloObjectives, objective: Objective = 'j_per_token'): Recommendation {
  const candidates: Candidate[] = [];
  const notes: string[] = [];
  for (const run of runs)
    for (const p of run.summary.points) {
      const info = run.points.find((i) => i.id === p.point);
      if (!info || p.status !== 'ok' || !(p.requests.ok > 0)) continue;
      candidates.push(candidateOf(run, info, p, slo));
    }
  const byPercentiles = candidates.filter((c) => c.measured!.judged_by === 'percentiles').length;
  if (byPercentiles)
    notes.push(`${byPercentiles} point(s) were summarised without this SLO: judged by their latency percentiles (p${slo.percentile} or the next kept above it; ITL over every token gap), goodput counted as all or nothing`);
  return { source: 'measurement', objective, slo, ...choose(candidates, objective), searched: candidates.length, notes };
}

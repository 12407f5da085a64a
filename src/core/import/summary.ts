/**
 * An imported run's figures as `summary.json` (src/core/protocol/summary.ts), so the Runs tree, the result
 * view, Compare and Pareto read it like any run. What the file does not have stays NaN (null on disk, "–" in
 * the views): energy is `method: 'none'` without a measurement, never estimated.
 */
import type { EnergySummary, Percentiles, PointSummary, RunSummary } from '../protocol/summary';
import { TOOL_NAMES, type ImportedPoint, type ImportedRun, type Stat } from './types';

export function importedSummary(run: ImportedRun, runId: string): RunSummary {
  const points = run.points.map(pointSummary);
  const energies = points.map((p) => p.energy);
  const measured = energies.every((e) => e.method !== 'none');
  const totalJ = measured ? energies.reduce((s, e) => s + e.total_j, 0) : NaN;
  const duration = points.reduce((s, p) => s + p.window.duration_s, 0);
  const output = points.reduce((s, p) => s + p.tokens.output, 0);
  const requests = points.reduce((s, p) => s + p.requests.ok, 0);
  return {
    run_id: runId,
    status: points.some((p) => p.status === 'ok') ? 'ok' : 'error',
    simulated: false,
    hosts: run.host ? [run.host] : [],
    gpus: run.gpus ?? [],
    telemetry: { source: `imported (${TOOL_NAMES[run.tool]})`, interval_s: NaN, achieved_interval_s: null, samples: 0 },
    idle_baseline: null,
    points,
    total: {
      duration_s: duration,
      requests,
      output_tokens: output,
      energy: measured ? { ...energy(totalJ, duration, energies.flatMap((e) => e.per_gpu), points[0].energy.method) } : noEnergy(),
      j_per_output_token: measured && output > 0 ? totalJ / output : NaN,
      j_per_response: measured && requests > 0 ? totalJ / requests : NaN,
      cost: { usd: NaN, gco2: NaN },
    },
    errors: [],
    caps_restored: null,
    problems: [],
    // The file's own power readings: the result view draws them, labelled as the file's (docs/protocol.md).
    ...(run.power?.length && { power_timeline: run.power }),
  };
}

function pointSummary(p: ImportedPoint): PointSummary {
  const start = p.start ?? 0;
  const e = p.energy ? energy(p.energy.totalJ, p.energy.durationS || p.durationS, p.energy.perGpu.map((g) => ({ gpu: g.gpu, energy_j: g.energyJ, avg_power_w: g.energyJ / (p.energy!.durationS || p.durationS), peak_power_w: NaN })), p.energy.method) : noEnergy();
  const measured = e.method !== 'none';
  return {
    point: p.id,
    status: p.status,
    window: { start, end: start + p.durationS, duration_s: p.durationS },
    steady: p.steady
      ? {
          start: p.steady.start,
          end: p.steady.end,
          duration_s: p.steady.durationS,
          output_tokens_per_s: p.steady.outputTokens / p.steady.durationS,
          avg_power_w: p.steady.energyJ / p.steady.durationS,
          j_per_output_token: p.steady.energyJ / p.steady.outputTokens,
        }
      : null,
    requests: { ok: p.requests.ok, errors: p.requests.errors, warmup: 0 },
    ...(p.tokensFrom && { tokens_from: p.tokensFrom }),
    tokens: { input: p.tokens.input, output: p.tokens.output },
    throughput: { output_tokens_per_s: p.throughput.outputTokensPerS, total_tokens_per_s: p.throughput.totalTokensPerS, requests_per_s: p.throughput.requestsPerS },
    latency: {
      ...(p.latency.ttft && { ttft_s: percentiles(p.latency.ttft, p.requests.ok) }),
      ...(p.latency.itl && { itl_s: percentiles(p.latency.itl, undefined) }),
      ...(p.latency.e2e && { e2e_s: percentiles(p.latency.e2e, p.requests.ok) }),
    },
    energy: e,
    j_per_output_token: measured && p.tokens.output > 0 ? e.total_j / p.tokens.output : NaN,
    j_per_response: measured && p.requests.ok > 0 ? e.total_j / p.requests.ok : NaN,
    cost: { usd: NaN, gco2: NaN },
    idealized: null,
  };
}

function energy(totalJ: number, durationS: number, perGpu: EnergySummary['per_gpu'], method: EnergySummary['method']): EnergySummary {
  // Without an idle baseline there is no idle or dynamic share.
  return { method, total_j: totalJ, idle_j: NaN, dynamic_j: NaN, avg_power_w: totalJ / durationS, peak_power_w: NaN, per_gpu: perGpu };
}

function noEnergy(): EnergySummary {
  return { method: 'none', total_j: NaN, idle_j: NaN, dynamic_j: NaN, avg_power_w: NaN, peak_power_w: NaN, per_gpu: [] };
}

/** A Stat as the summary's Percentiles; a figure the file lacks stays NaN. */
function percentiles(s: Stat, n: number | undefined): Percentiles {
  const v = (x: number | undefined) => x ?? NaN;
  return { n: s.n ?? n ?? NaN, mean: v(s.mean), min: v(s.min), max: v(s.max), p50: v(s.p50), p90: v(s.p90), p99: v(s.p99) };
}

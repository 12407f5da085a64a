import type { RunSummary } from '../protocol/summary';
import type { RunMeta } from './store';

const COLUMNS = [
  'run_id', 'point', 'label', 'status', 'duration_s', 'requests_ok', 'requests_error', 'input_tokens', 'output_tokens',
  'output_tokens_per_s', 'requests_per_s', 'ttft_p50_s', 'ttft_p99_s', 'itl_p50_s', 'e2e_p50_s', 'e2e_p99_s',
  'avg_power_w', 'peak_power_w', 'energy_j', 'energy_method', 'idle_energy_j', 'dynamic_energy_j', 'j_per_output_token',
  'j_per_response', 'steady_j_per_output_token', 'usd', 'gco2', 'power_cap_w', 'idealized_alpha_s', 'idealized_beta_s',
  'tokens_from', 'requests_throttled', 'slo_attainment', 'slo_met', 'goodput_requests_per_s', 'goodput_output_tokens_per_s',
  'j_per_slo_token', 'inflight_max', 'inflight_mean', 'request_rate_achieved', 'client_lag_p99_ms', 'client_behind',
  'arrival_stamps', 'load_processes', 'arrivals_shared_read', 'first_tokens_shared_read',
] as const;

function cell(value: unknown): string {
  if (value === undefined || value === null || (typeof value === 'number' && !Number.isFinite(value))) return '';
  const text = String(value);
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One row per point, every metric of the store, for spreadsheets. */
export function summaryCsv(summary: RunSummary, meta?: RunMeta): string {
  const labels = new Map(meta?.points.map((p) => [p.id, p.label]));
  const rows = summary.points.map((p) => [
    summary.run_id || meta?.run_id, p.point, labels.get(p.point), p.status, p.window.duration_s, p.requests.ok, p.requests.errors,
    p.tokens.input, p.tokens.output, p.throughput.output_tokens_per_s, p.throughput.requests_per_s, p.latency.ttft_s?.p50,
    p.latency.ttft_s?.p99, p.latency.itl_s?.p50, p.latency.e2e_s?.p50, p.latency.e2e_s?.p99, p.energy.avg_power_w,
    p.energy.peak_power_w, p.energy.total_j, p.energy.method, p.energy.idle_j, p.energy.dynamic_j, p.j_per_output_token,
    p.j_per_response, p.steady?.j_per_output_token, p.cost.usd, p.cost.gco2, p.power_cap_w, p.idealized?.alpha_s, p.idealized?.beta_s,
    p.tokens_from, p.requests.throttled ?? 0, p.slo?.attainment, p.slo?.met, p.slo?.goodput_requests_per_s,
    p.slo?.goodput_output_tokens_per_s, p.slo?.j_per_slo_token, p.client?.inflight_max, p.client?.inflight_mean,
    p.client?.request_rate_achieved, p.client?.lag_ms?.p99, p.client?.behind, p.client?.arrival_stamps, p.client?.processes,
    p.client?.shared_reads, p.client?.first_shared_reads,
  ]);
  return [COLUMNS.join(','), ...rows.map((r) => r.map(cell).join(','))].join('\n') + '\n';
}

import type { RunSummary, SloSummary } from '../core/protocol/summary';
import { formatDuration, formatEnergy } from '../core/config/units';
import { summaryNotes } from '../core/run/summary-notes';

/** A plain-text table; columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

const num = (v: number | undefined, digits = 2) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));

export function summaryTable(summary: RunSummary): string {
  const rows = summary.points.map((p) => [
    p.point,
    p.status,
    formatDuration(p.window.duration_s),
    `${p.requests.ok}${p.requests.errors ? ` (+${p.requests.errors} err)` : ''}`,
    num(p.throughput.output_tokens_per_s, 1),
    num(p.latency.ttft_s?.p50 !== undefined ? p.latency.ttft_s.p50 * 1000 : undefined, 0),
    num(p.latency.e2e_s?.p99, 2),
    num(p.energy.avg_power_w, 0),
    formatEnergy(p.energy.total_j),
    num(p.j_per_output_token, 3),
    num(p.j_per_response, 1),
  ]);
  const t = summary.total;
  const lines = [
    table(['point', 'status', 'time', 'requests', 'tok/s', 'TTFT p50 ms', 'e2e p99 s', 'W', 'energy', 'J/token', 'J/resp'], rows),
    '',
    `energy: ${summary.points[0]?.energy.method ?? 'none'} · sampling ${num(summary.telemetry.achieved_interval_s ?? undefined, 3)} s (asked ${summary.telemetry.interval_s} s) · idle baseline ${num(summary.idle_baseline?.total_w, 0)} W` +
      `${summary.simulated ? ' · SIMULATED GPUs' : ''}`,
    `total: ${formatDuration(t.duration_s)}, ${t.requests} responses, ${t.output_tokens} output tokens, ${formatEnergy(t.energy.total_j)} (${num(t.j_per_output_token, 3)} J/token measured), $${num(t.cost.usd, 4)}, ${num(t.cost.gco2, 1)} gCO2`,
  ];
  for (const p of summary.points) if (p.slo) lines.push(sloLine(p.point, p.slo));
  if (summary.caps_restored === false) lines.push('WARNING: the agent could not confirm that power limits were restored');
  lines.push(...summaryNotes(summary));
  for (const e of summary.errors) lines.push(`error (${e.where}${e.point ? `, ${e.point}` : ''}): ${e.message}`);
  for (const p of summary.problems) lines.push(`stream: ${p}`);
  return lines.join('\n');
}

/** A point against its SLO: met or not, the share of good requests, goodput and J per SLO-meeting token. */
export function sloLine(point: string, slo: SloSummary): string {
  const ms = (s: number | null) => (s === null ? '?' : `${Math.round(s * 1000)} ms`);
  const objectives = Object.entries(slo.per_objective)
    .map(([metric, r]) => `${metric} p${slo.objectives.percentile} ${ms(r!.value_s)}/${ms(r!.limit_s)} ${(r!.attainment * 100).toFixed(1)}%${r!.met ? '' : ' ✗'}`)
    .join(', ');
  return (
    `slo ${point}: ${slo.met ? 'met' : 'MISSED'} · ${(slo.attainment * 100).toFixed(1)}% of ${slo.requests} requests good · goodput ` +
    `${num(slo.goodput_requests_per_s, 2)} req/s, ${num(slo.goodput_output_tokens_per_s, 1)} tok/s · ${num(slo.j_per_slo_token, 3)} J/SLO-token (${objectives})`
  );
}

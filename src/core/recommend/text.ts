/** A recommendation as lines of text: the CLI's output, and the editor's. */
import type { Candidate, Objective, Recommendation } from './types';

const ms = (s: number | null) => (s === null ? '?' : s < 1 ? `${Math.round(s * 1000)} ms` : `${Number(s.toPrecision(3))} s`);
const sig = (v: number, digits = 3) => (Number.isFinite(v) ? String(Number(v.toPrecision(digits))) : '–');

function score(c: Candidate, objective: Objective): string {
  return objective === 'j_per_token' ? `${sig(c.j_per_output_token)} J/token` : `$${sig(c.usd_per_mtoken)}/Mtoken`;
}

/** One candidate in a line: where, what it costs, its goodput and its latencies against the limits. */
export function candidateLine(c: Candidate, objective: Objective): string {
  const checks = c.checks.map((k) => `${k.metric} ${ms(k.value_s)}/${ms(k.limit_s)}`).join(', ');
  const band = c.prediction ? ` (band ${sig(c.prediction.j_per_output_token_low, 2)}–${sig(c.prediction.j_per_output_token_high, 2)} J/token, ${c.prediction.basis}, σ ${sig(c.prediction.sigma, 2)})` : '';
  const attained = c.measured?.attainment != null ? `, ${Math.round(c.measured.attainment * 1000) / 10}% of requests good` : '';
  return `${c.label}: ${score(c, objective)}${band}; goodput ${sig(c.goodput_requests_per_s)} req/s, ${sig(c.goodput_output_tokens_per_s)} tok/s${attained}; ${checks}`;
}

/** A recommendation as lines of text. */
export function recommendationText(r: Recommendation): string[] {
  const from = r.source === 'prediction' ? 'predicted (no run needed)' : 'measured (stored runs of this config)';
  const lines = [`${from}, by ${r.objective}, over ${r.searched} point(s), SLO at p${r.slo.percentile}:`];
  if (r.best) {
    lines.push(`  best:      ${candidateLine(r.best, r.objective)}`);
    lines.push(r.runnerUp ? `  runner-up: ${candidateLine(r.runnerUp, r.objective)}` : '  runner-up: none other meets the SLO');
  } else if (r.closest) {
    const worst = r.closest.checks.reduce((a, b) => (b.ratio > a.ratio ? b : a));
    const by = Number.isFinite(worst.ratio) ? `${worst.metric} ${Math.round((worst.ratio - 1) * 100)}% over its limit` : `no ${worst.metric} figure`;
    lines.push(`  nothing meets the SLO; closest: ${candidateLine(r.closest, r.objective)} (${by})`);
  } else lines.push('  nothing to choose from');
  for (const n of r.notes) lines.push(`  note: ${n}`);
  return lines;
}

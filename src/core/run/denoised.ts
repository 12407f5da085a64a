/**
 * HELM's denoised runtime for a stored run: per point, T(p, o) = α(p) + β·(o − 1) + overhead fitted to
 * the fastest of the repeated measurements of each request. Needs repeats (the `repeat` field of the
 * agent's request events) and more than one prompt or output length; otherwise there is nothing to
 * denoise and the point gets none. Reads every request, so it runs on stored runs, not live.
 */
import { fitDenoised, promptRuntime, type RuntimeSample } from '../estimate/idealized';
import type { AgentEvent } from '../protocol/events';
import type { DenoisedFit } from '../protocol/summary';

export function denoisedFits(events: Iterable<AgentEvent>): Record<string, DenoisedFit> {
  const byPoint = new Map<string, { samples: RuntimeSample[]; repeats: Set<number> }>();
  for (const e of events) {
    if (e.type !== 'request' || !e.ok || e.warmup) continue;
    const entry = byPoint.get(e.point) ?? { samples: [], repeats: new Set<number>() };
    byPoint.set(e.point, entry);
    entry.samples.push({ promptTokens: e.prompt_tokens, outputTokens: e.output_tokens, runtime_s: e.latency_s });
    entry.repeats.add((e as { repeat?: number }).repeat ?? 0);
  }
  const fits: Record<string, DenoisedFit> = {};
  for (const [point, { samples, repeats }] of byPoint) {
    if (repeats.size < 2) continue;
    try {
      const table = fitDenoised(samples);
      if (![table.runtimePerOutputToken, table.overhead ?? 0].every(Number.isFinite)) continue;
      const meanPrompt = samples.reduce((s, r) => s + r.promptTokens, 0) / samples.length;
      fits[point] = { beta_s: table.runtimePerOutputToken, overhead_s: table.overhead ?? 0, alpha_s: promptRuntime(table, meanPrompt), repeats: repeats.size, requests: samples.length };
    } catch {
      // Too few distinct lengths to separate α, β and the overhead: no denoised figure for this point.
    }
  }
  return fits;
}

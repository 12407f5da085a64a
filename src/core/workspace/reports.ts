/**
 * A stored run, read back for a reader: re-summarised from its events (priced as it ran), with HELM's
 * denoised runtime and a thinned power timeline. The result view and `wattbench report` both read runs
 * through this, so they show the same figures.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentEvent } from '../protocol/events';
import type { DenoisedFit, RunSummary } from '../protocol/summary';
import { denoisedFits } from '../run/denoised';
import { openStoredRun, summarizerForStoredRun, type StoredRun } from '../run/stored';
import { readEvents, readMeta, readSummary } from '../store/store';

export interface RunReport {
  run: StoredRun;
  summary: RunSummary;
  denoised: Record<string, DenoisedFit>;
  /** Total power over time (seconds since the first sample), at most `maxPowerPoints` of them. */
  power: { t: number; w: number }[];
}

export class NotARunError extends Error {}

export async function loadRunReport(dir: string, maxPowerPoints = 3000): Promise<RunReport> {
  if (!existsSync(join(dir, 'meta.json'))) throw new NotARunError(`${dir}: not a Wattbench run directory (no meta.json)`);
  const run = openStoredRun(dir, readMeta(dir));
  const summarizer = summarizerForStoredRun(run);
  const power: { t: number; w: number }[] = [];
  const requests: AgentEvent[] = [];
  let t0: number | undefined;
  let events = 0;
  for await (const event of readEvents(dir)) {
    events++;
    summarizer.add(event);
    if (event.type === 'request') requests.push(event);
    if (event.type === 'sample') {
      t0 ??= event.t;
      power.push({ t: event.t - t0, w: event.gpus.reduce((s, g) => s + g.p_w, 0) });
    }
  }
  const stride = Math.max(1, Math.ceil(power.length / maxPowerPoints));
  // A run with no events of its own (one written by another tool) has only its stored summary.
  const summary = events === 0 ? (readSummary(dir) ?? summarizer.result()) : summarizer.result();
  return { run, summary, denoised: denoisedFits(requests), power: power.filter((_, i) => i % stride === 0) };
}

/**
 * A config's recommendation as the tools show it: predicted over the search space, and measured from
 * the stored runs of that config. The CLI (`wattbench recommend`) and the editor's CodeLens share it.
 */
import type { ResolvedConfig, ResolvedPoint } from '../config/model';
import type { CalibrationProfile } from '../estimate/profile';
import { recommendFromMeasurements, recommendFromPrediction, sloOfConfig, type MeasuredRun, type Objective, type Recommendation, type SearchOptions } from '../recommend';
import { openStoredRun } from '../run/stored';
import { readSummary, type RunRecord } from '../store/store';

/** Completed runs of the config named `name` (or stored from `configFile`, workspace-relative), with what they measured. */
export function measuredRunsOf(records: RunRecord[], config: ResolvedConfig, configFile?: string): MeasuredRun[] {
  const runs: MeasuredRun[] = [];
  for (const record of records) {
    const meta = record.meta;
    if (meta.status !== 'ok' || !(meta.config_name === config.name || (configFile !== undefined && meta.config_file === configFile))) continue;
    const summary = readSummary(record.dir);
    if (!summary) continue;
    const stored = openStoredRun(record.dir, meta);
    const points = stored.points.length
      ? stored.points.map((p) => ({ id: p.id, label: p.label, gpuCount: p.gpuCount, powerCapW: p.powerCapW, concurrency: p.workload.concurrency, requestRate: p.workload.requestRate }))
      : meta.points.map((p) => ({ id: p.id, label: p.label, gpuCount: stored.config?.gpus.count ?? 1, powerCapW: p.power_cap_w }));
    runs.push({ run_id: record.id, gpu: stored.config?.gpus.type ?? summary.gpus[0]?.name ?? 'unknown GPU', cost: stored.cost, points, summary });
  }
  return runs;
}

export interface ConfigRecommendation {
  prediction?: Recommendation;
  /** Why there is no prediction (e.g. a model the catalog does not know). */
  predictionError?: string;
  /** From stored runs of this config; absent when there are none. */
  measured?: Recommendation;
}

export function recommendForConfig(
  config: ResolvedConfig,
  points: ResolvedPoint[],
  runs: MeasuredRun[],
  options: SearchOptions & { objective?: Objective; profile?: CalibrationProfile } = {},
): ConfigRecommendation {
  const slo = sloOfConfig(config, points);
  if (!slo) return { predictionError: 'the config has no `slo`: add e.g. `slo: { ttft: 500ms, itl: 50ms }`' };
  const out: ConfigRecommendation = {};
  try {
    out.prediction = recommendFromPrediction(config, points, options);
  } catch (error) {
    out.predictionError = (error as Error).message;
  }
  if (runs.length) out.measured = recommendFromMeasurements(runs, slo, options.objective);
  return out;
}

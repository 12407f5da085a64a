/** Stored runs as calibration measurements: each measured point with the config that produced it. */
import { gpuFromConfig, modelFromSpec } from '../estimate/config-estimate';
import type { Measurement } from '../estimate/calibrate';
import { openStoredRun } from '../run/stored';
import { readSummary, type RunRecord } from '../store/store';

/**
 * Simulated runs measure the simulator, not a GPU: they are left out unless `includeSimulated` says the
 * user asked for them (the demo, the tests), and `simulated` counts how many were left out for that.
 */
export function measurementsFromRuns(records: RunRecord[], options: { includeSimulated?: boolean } = {}): { measurements: Measurement[]; skipped: string[]; simulated: number } {
  const measurements: Measurement[] = [];
  const skipped: string[] = [];
  let simulated = 0;
  for (const record of records) {
    const summary = readSummary(record.dir);
    if (!summary || record.meta.status !== 'ok') {
      skipped.push(`${record.id}: not a completed run`);
      continue;
    }
    if ((summary.simulated || record.meta.simulated) && !options.includeSimulated) {
      simulated++;
      skipped.push(`${record.id}: simulated GPUs (calibrate on simulated runs only when asked to)`);
      continue;
    }
    const { config, points } = openStoredRun(record.dir, record.meta);
    if (!config) {
      skipped.push(`${record.id}: its stored config no longer validates`);
      continue;
    }
    const model = modelFromSpec(config.model);
    const gpu = gpuFromConfig(config);
    if (!model.ok || !gpu.ok) {
      skipped.push(`${record.id}: ${!model.ok ? model.message : !gpu.ok ? gpu.message : ''}`);
      continue;
    }
    for (const point of points) {
      const measured = summary.points.find((p) => p.point === point.id);
      if (!measured || measured.status !== 'ok' || !(measured.tokens.output > 0)) continue;
      const gpus = Math.max(1, measured.energy.per_gpu.length || point.gpuCount);
      measurements.push({
        model: model.value,
        gpu: gpu.value,
        gpuCount: point.gpuCount,
        concurrency: point.workload.concurrency,
        requestRate: point.workload.requestRate,
        numPrompts: measured.requests.ok,
        inputTokens: measured.tokens.input / Math.max(1, measured.requests.ok),
        outputTokens: measured.tokens.output / Math.max(1, measured.requests.ok),
        powerCapW: point.powerCapW,
        engine: config.server.engine,
        j_per_output_token: measured.j_per_output_token,
        output_tokens_per_s: measured.throughput.output_tokens_per_s,
        avg_power_w: measured.energy.avg_power_w / gpus,
        runtime_s: measured.window.duration_s,
        energy_j: measured.energy.total_j,
        source: `run ${record.id} point ${point.id}`,
      });
    }
  }
  return { measurements, skipped, simulated };
}

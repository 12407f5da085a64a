/**
 * The result view's tables in a comparison (webview/tables.ts): one heading row for all runs, every row naming
 * its run, a run without SLO figures saying so, and every run's GPUs in the per-GPU card. The imported run is the
 * ML.ENERGY fixture through the real importer; the expected figures are read off the fixture by hand.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { importedSummary } from '../../src/core/import/summary';
import { readMlEnergy } from '../../src/core/import/mlenergy';
import type { PointSummary, RunSummary } from '../../src/core/protocol/summary';
import type { ResultRun } from '../../src/core/protocol/webview';
import { runNames } from '../../webview/compare';
import { perGpuRows, sloRows, summaryRows } from '../../webview/tables';

const FIXTURE = join(__dirname, '..', 'fixtures', 'import', 'mlenergy', 'results.json');

/** A table's rows as cell texts (entities undone), the heading row first; `colspan` cells as one. */
function cells(html: string): string[][] {
  const text = (s: string) => s.replace(/<[^>]+>/g, '').replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c)));
  return [...html.matchAll(/<tr>(.*?)<\/tr>/g)].map(([, row]) => [...row.matchAll(/<t[hd][^>]*>(.*?)<\/t[hd]>/g)].map(([, c]) => text(c)));
}

/** A point of a one-GPU Wattbench run, with only what the tables read. */
function point(id: string, gpuJ: number, slo?: PointSummary['slo']): PointSummary {
  const latency = { n: 1, mean: 0.1, min: 0.1, max: 0.1, p50: 0.1, p90: 0.1, p99: 0.1 };
  return {
    point: id,
    status: 'ok',
    window: { start: 0, end: 10, duration_s: 10 },
    steady: null,
    requests: { ok: 4, errors: 0, warmup: 0 },
    tokens: { input: 100, output: 200 },
    throughput: { output_tokens_per_s: 20, total_tokens_per_s: 30, requests_per_s: 0.4 },
    latency: { ttft_s: latency, e2e_s: latency },
    energy: { method: 'counter', total_j: gpuJ, idle_j: 0, dynamic_j: gpuJ, avg_power_w: gpuJ / 10, peak_power_w: 0, per_gpu: [{ gpu: '0', energy_j: gpuJ, avg_power_w: gpuJ / 10, peak_power_w: 0 }] },
    j_per_output_token: gpuJ / 200,
    j_per_response: gpuJ / 4,
    cost: { usd: 0, gco2: 0 },
    idealized: null,
    ...(slo && { slo }),
  };
}

const SLO: PointSummary['slo'] = {
  objectives: { percentile: 99, ttft_s: 10 } as never,
  requests: 4,
  good_requests: 3,
  good_output_tokens: 150,
  attainment: 0.75,
  goodput_requests_per_s: 0.3,
  goodput_output_tokens_per_s: 15,
  j_per_slo_token: 1,
  j_per_slo_request: 1,
  met: false,
  per_objective: {},
};

function resultRun(runId: string, title: string, started: string, summary: RunSummary, labels: Record<string, string> = {}): ResultRun {
  return { runId, title, target: 'local', status: 'ok', started, simulated: false, summary, labels, predictions: {}, power: [], notes: [], denoised: {} };
}

const importedRun = importedSummary(readMlEnergy(readFileSync(FIXTURE, 'utf8'), 'results.json'), 'ml-run');
const imported = resultRun('ml-run', 'ML.ENERGY · Llama', '2025-11-04T09:00:00Z', importedRun);
// A one-GPU Wattbench run with an idle baseline and an SLO; the run-level fields the tables do not read are the other's.
const sim = resultRun(
  'sim-run',
  'e2e-sim',
  '2025-11-04T10:00:00Z',
  { ...importedRun, run_id: 'sim-run', points: [point('c1', 50, SLO), point('c4', 70, SLO)], idle_baseline: { duration_s: 5, per_gpu_w: { '0': 60 }, total_w: 60 } },
  { c1: 'concurrency 1', c4: 'concurrency 4' },
);
const raw = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { entire_benchmark_measurement: { gpu_energy: Record<string, number> } };

describe('the result tables comparing a Wattbench run with an imported one', () => {
  const { row } = runNames([sim, imported]);
  const simName = 'e2e-sim · 2025-11-04 10:00';
  const mlName = 'ML.ENERGY · Llama · 2025-11-04 09:00';

  it('the summary has one heading row, then every point of every run, each naming its run', () => {
    const [head, ...rows] = cells(summaryRows([sim, imported], row));
    assert.deepEqual(head.slice(0, 3), ['run', 'point', 'status']);
    assert.equal(rows.filter((r) => r[1] === 'point').length, 0, 'no second heading row');
    assert.deepEqual(rows.map((r) => [r[0], r[1]]), [[simName, 'concurrency 1'], [simName, 'concurrency 4'], [mlName, 'benchmark']]);
  });

  it('the SLO table has one heading row; the run with no SLO figures says "no SLO" in one row', () => {
    const [head, ...rows] = cells(sloRows([sim, imported], row));
    assert.deepEqual(head.slice(0, 3), ['run', 'point', 'SLO']);
    assert.deepEqual(rows.map((r) => r.slice(0, 3)), [[simName, 'concurrency 1', 'missed'], [simName, 'concurrency 4', 'missed'], [mlName, 'no SLO']]);
  });

  it('the per-GPU card lists both runs: the single GPU of one, both GPUs of the imported one', () => {
    const [head, ...rows] = cells(perGpuRows([sim, imported], row));
    assert.deepEqual(head, ['run', 'GPU', 'energy J', 'idle W']);
    const gpu = raw.entire_benchmark_measurement.gpu_energy;
    const four = (v: number) => Number(v.toPrecision(4)).toLocaleString();
    assert.deepEqual(rows, [
      [simName, '0', four(50 + 70), '60'],
      [mlName, '0', four(gpu['0']), '–'],
      [mlName, '1', four(gpu['1']), '–'],
    ]);
  });

  it('one run alone: no run column; a one-GPU run alone has no per-GPU card', () => {
    const one = runNames([sim]);
    const [head, first] = cells(summaryRows([sim], one.row));
    assert.equal(head[0], 'point');
    assert.equal(first[0], 'concurrency 1');
    assert.equal(perGpuRows([sim], one.row), '');
    assert.equal(cells(perGpuRows([imported], runNames([imported]).row))[0][0], 'GPU');
  });
});

/**
 * The importers on real output files of each tool, committed verbatim (test/fixtures/import/<tool>/real*, each
 * folder's SOURCE.md names the repository, path, commit and the tool version the file states). Every expected
 * figure is read from the file here, never from the reader; and each file, once imported, reopens as a stored run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ImportError, importFiles, readResults, type ImportedRun } from '../../src/core/import';
import { openStoredRun } from '../../src/core/run/stored';
import { RunStore } from '../../src/core/store/store';
import { loadRunReport } from '../../src/core/workspace/reports';

const FIX = join(__dirname, '..', 'fixtures', 'import');
const text = (path: string) => readFileSync(join(FIX, path), 'utf8');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (path: string): any => JSON.parse(text(path));
const close = (actual: number | undefined, expected: number, what: string) =>
  assert.ok(actual !== undefined && Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${what}: ${actual} ≠ ${expected}`);
const read = (path: string): ImportedRun => {
  const runs = readResults([{ name: path, text: text(path) }]);
  assert.equal(runs.length, 1);
  return runs[0];
};

const root = mkdtempSync(join(tmpdir(), 'wb-import-real-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Imports one fixture into a fresh store and reopens it as the views do; the report's points, in order. */
async function stored(path: string, name: string) {
  const store = RunStore.forWorkspace(join(root, name));
  const [imported] = importFiles(store.root, [join(FIX, path)]);
  const run = openStoredRun(imported.dir);
  const { summary } = await loadRunReport(imported.dir);
  assert.deepEqual(summary.points.map((p) => p.point), run.meta.points.map((p) => p.id));
  return summary.points;
}

const VLLM = 'vllm/real/results-append.json';
const AIPERF_08 = 'aiperf/real-0.8.0/profile_export_aiperf.json';
const AIPERF_010 = 'aiperf/real-0.10.0/profile_export_aiperf.json';
const GUIDELLM = 'guidellm/real-0.5.0.dev0/Qwen_Qwen3-4B-Thinking-2507_tp4_quant-fp8_benchmarks.json';

describe('vLLM benchmark_serving, May 2025: nine --append-result lines with --metadata keys', () => {
  const lines = text(VLLM).trim().split('\n').map((l) => JSON.parse(l));

  it('one point per line: requests, TTFT in s, output throughput and the rate as each line says them', () => {
    const run = read(VLLM);
    assert.equal(run.tool, 'vllm');
    assert.equal(run.model, lines[0].model_id);
    assert.equal(run.version, undefined, 'the file states no version');
    assert.equal(run.points.length, lines.length);
    run.points.forEach((p, i) => {
      const raw = lines[i];
      assert.equal(p.requests.ok, raw.completed, `line ${i + 1} completed`);
      assert.equal(p.requests.errors, 0, 'no `failed` key in this writer: none counted, none invented');
      close(p.latency.ttft?.mean, raw.mean_ttft_ms / 1000, `line ${i + 1} TTFT mean`);
      close(p.latency.ttft?.p99, raw.p99_ttft_ms / 1000, `line ${i + 1} TTFT p99`);
      close(p.throughput.outputTokensPerS, raw.output_throughput, `line ${i + 1} output tok/s`);
      assert.equal(p.tokens.output, raw.total_output_tokens);
      assert.equal(p.params.request_rate, raw.request_rate, 'a number, or the text "inf"');
      assert.equal(p.params.concurrency, undefined, 'max_concurrency is null');
      assert.equal(p.energy, undefined);
    });
  });

  it('reopens as a stored run with the same figures', async () => {
    const points = await stored(VLLM, 'vllm');
    assert.equal(points.length, lines.length);
    points.forEach((p, i) => {
      assert.equal(p.requests.ok, lines[i].completed);
      close(p.throughput.output_tokens_per_s, lines[i].output_throughput, `stored line ${i + 1} tok/s`);
      close(p.latency.ttft_s?.p50, lines[i].median_ttft_ms / 1000, `stored line ${i + 1} TTFT p50`);
      assert.equal(p.energy.total_j, null);
    });
  });
});

describe('AIPerf 0.8.0 (schema 1.0): half the requests timed out', () => {
  const raw = json(AIPERF_08);

  it('counts, TTFT (ms → s) and throughput from the file, errors counted', () => {
    const run = read(AIPERF_08);
    assert.equal(run.version, raw.aiperf_version);
    assert.equal(run.model, raw.input_config.endpoint.model_names[0]);
    const [p] = run.points;
    assert.equal(p.requests.ok, raw.request_count.avg);
    assert.equal(p.requests.errors, raw.error_request_count.avg);
    assert.equal(raw.time_to_first_token.unit, 'ms');
    close(p.latency.ttft?.mean, raw.time_to_first_token.avg / 1000, 'TTFT mean');
    close(p.latency.ttft?.p99, raw.time_to_first_token.p99 / 1000, 'TTFT p99');
    close(p.throughput.outputTokensPerS, raw.output_token_throughput.avg, 'output tok/s');
    assert.equal(raw.benchmark_duration.unit, 'sec');
    close(p.durationS, raw.benchmark_duration.avg, 'duration');
    assert.equal(p.params.concurrency, raw.input_config.loadgen.concurrency);
    assert.equal(p.energy, undefined, 'telemetry_data has no endpoint: no energy');
  });

  it('reopens as a stored run', async () => {
    const [p] = await stored(AIPERF_08, 'aiperf-08');
    assert.equal(p.requests.ok, raw.request_count.avg);
    close(p.throughput.output_tokens_per_s, raw.output_token_throughput.avg, 'stored tok/s');
    close(p.latency.ttft_s?.p50, raw.time_to_first_token.p50 / 1000, 'stored TTFT p50');
  });
});

describe('AIPerf 0.10.0 (schema 1.3): the input_config of models.items and phases', () => {
  const raw = json(AIPERF_010);
  const profiling = raw.input_config.phases.find((ph: { name: string }) => ph.name === 'profiling');

  it('model and load from the new layout; counts, TTFT and throughput from the file', () => {
    const run = read(AIPERF_010);
    assert.equal(run.version, raw.aiperf_version);
    assert.equal(run.model, raw.input_config.models.items[0].name);
    const [p] = run.points;
    assert.equal(p.params.concurrency, profiling.concurrency, 'the profiling phase, not the warm-up');
    assert.equal(p.params.num_prompts, profiling.requests);
    assert.equal(p.requests.ok, raw.request_count.avg);
    assert.equal(p.requests.errors, 0, 'no error_request_count in the file');
    close(p.latency.ttft?.mean, raw.time_to_first_token.avg / 1000, 'TTFT mean');
    assert.equal(p.latency.ttft?.n, raw.time_to_first_token.count);
    close(p.throughput.outputTokensPerS, raw.output_token_throughput.avg, 'output tok/s');
    assert.equal(p.tokens.output, raw.total_osl.avg);
  });

  it('reopens as a stored run', async () => {
    const [p] = await stored(AIPERF_010, 'aiperf-010');
    assert.equal(p.requests.ok, raw.request_count.avg);
    close(p.throughput.output_tokens_per_s, raw.output_token_throughput.avg, 'stored tok/s');
  });
});

describe('GuideLLM 0.5.0.dev0 (report version 1, with args)', () => {
  const raw = json(GUIDELLM);
  const [b] = raw.benchmarks;

  it('one concurrent benchmark: requests, TTFT (ms → s) and output tokens over the duration', () => {
    const run = read(GUIDELLM);
    assert.equal(run.version, raw.metadata.guidellm_version);
    assert.equal(run.model, b.config.backend.model);
    assert.equal(run.points.length, raw.benchmarks.length);
    const [p] = run.points;
    assert.equal(p.requests.ok, b.metrics.request_totals.successful);
    assert.equal(p.requests.errors, b.metrics.request_totals.errored + b.metrics.request_totals.incomplete);
    close(p.latency.ttft?.mean, b.metrics.time_to_first_token_ms.successful.mean / 1000, 'TTFT mean');
    close(p.latency.ttft?.p90, b.metrics.time_to_first_token_ms.successful.percentiles.p90 / 1000, 'TTFT p90');
    close(p.latency.e2e?.mean, b.metrics.request_latency.successful.mean, 'request latency, already in s');
    const output = b.metrics.output_token_count.successful.total_sum;
    assert.equal(p.tokens.output, output);
    close(p.durationS, b.duration, 'duration');
    close(p.throughput.outputTokensPerS, output / b.duration, 'output tok/s');
    assert.equal(p.params.concurrency, b.config.strategy.streams);
  });

  it('reopens as a stored run', async () => {
    const [p] = await stored(GUIDELLM, 'guidellm');
    assert.equal(p.requests.ok, b.metrics.request_totals.successful);
    assert.equal(p.tokens.output, b.metrics.output_token_count.successful.total_sum);
    close(p.latency.ttft_s?.p50, b.metrics.time_to_first_token_ms.successful.percentiles.p50 / 1000, 'stored TTFT p50');
  });
});

describe('each real file cut short anywhere', () => {
  it('reads or gives an ImportError naming the file, never another exception', () => {
    for (const path of [VLLM, AIPERF_08, AIPERF_010, GUIDELLM]) {
      const whole = text(path);
      const name = path.split('/').pop()!;
      for (let k = 1; k <= 20; k++) {
        const cut = whole.slice(0, Math.floor((whole.length * k) / 21));
        try {
          readResults([{ name, text: cut }]);
        } catch (error) {
          assert.ok(error instanceof ImportError, `${path} cut at ${cut.length}: ${(error as Error).stack}`);
          assert.ok(error.message.startsWith(`${name}: `), error.message);
        }
      }
    }
  });
});

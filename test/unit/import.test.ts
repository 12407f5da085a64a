/**
 * Each reader of another tool's results on that tool's files (test/fixtures/import/<tool>/, SOURCE.md says
 * where each came from). Every expected figure is read from the fixture by hand here, or computed from its
 * per-request values, never taken from the reader.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  detectFormat,
  ImportError,
  readAiperfCsv,
  readAiperfJson,
  readAiperfJsonl,
  readGuidellm,
  readInferencePerf,
  readMlEnergy,
  readResults,
  readVllmJson,
  readVllmSweepCsv,
} from '../../src/core/import';

const DIR = join(__dirname, '..', 'fixtures', 'import');
const text = (path: string) => readFileSync(join(DIR, path), 'utf8');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (path: string): any => JSON.parse(text(path));
const close = (actual: number | undefined, expected: number, what: string, rel = 1e-9) =>
  assert.ok(actual !== undefined && Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${what}: ${actual} ≠ ${expected}`);
const meanOf = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
/** numpy's linear percentile, written out again here so the test does not lean on the reader's. */
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const k = ((s.length - 1) * p) / 100;
  const f = Math.floor(k);
  return s[f] + (s[Math.min(f + 1, s.length - 1)] - s[f]) * (k - f);
}

const VLLM_PLAIN = 'vllm/openai-infqps-concurrency4-Llama-3.1-8B-Instruct-20251104-101500.json';

describe('vLLM bench serve', () => {
  it('--save-result: counts, ms → s, throughput and the load as the file says them', () => {
    const raw = json(VLLM_PLAIN);
    const run = readVllmJson(text(VLLM_PLAIN), 'r.json');
    assert.equal(run.tool, 'vllm');
    assert.equal(run.model, raw.model_id);
    const [p] = run.points;
    assert.equal(p.requests.ok, raw.completed);
    assert.equal(p.requests.errors, raw.failed);
    close(p.latency.ttft?.mean, raw.mean_ttft_ms / 1000, 'TTFT mean');
    close(p.latency.ttft?.p50, raw.median_ttft_ms / 1000, 'TTFT median');
    close(p.latency.ttft?.p99, raw.p99_ttft_ms / 1000, 'TTFT p99');
    close(p.latency.itl?.mean, raw.mean_itl_ms / 1000, 'ITL mean');
    assert.equal(p.latency.e2e, undefined, 'e2el was not among --percentile-metrics');
    close(p.throughput.outputTokensPerS, raw.output_throughput, 'output tok/s');
    assert.equal(p.tokens.output, raw.total_output_tokens);
    assert.equal(p.params.concurrency, raw.max_concurrency);
    assert.equal(p.params.request_rate, 'inf');
    assert.equal(p.energy, undefined, 'no energy in the file: none invented');
    assert.ok(run.notes.some((n) => /TPOT/.test(n)) && run.notes.some((n) => /copied from the file/.test(n)));
  });

  it('--save-detailed: percentiles recomputed from the successful requests, ITL over every gap', () => {
    const raw = json('vllm/detailed-concurrency2.json');
    const ok = raw.errors.map((e: string) => e === '');
    const ttfts = raw.ttfts.filter((_: number, i: number) => ok[i]);
    const gaps = raw.itls.filter((_: number[], i: number) => ok[i]).flat();
    const [p] = readVllmJson(text('vllm/detailed-concurrency2.json'), 'd.json').points;
    assert.equal(p.requests.errors, ok.filter((x: boolean) => !x).length);
    assert.equal(p.latency.ttft?.n, ttfts.length);
    close(p.latency.ttft?.mean, meanOf(ttfts), 'TTFT mean');
    close(p.latency.itl?.p50, pct(gaps, 50), 'ITL p50 per gap');
    close(p.latency.itl?.p90, pct(gaps, 90), 'ITL p90 per gap');
    // The file's own figures agree (vLLM computes them the same way), in ms.
    close(p.latency.itl?.p90, raw.p90_itl_ms / 1000, 'against the file', 1e-9);
    assert.equal(p.params.input_tokens, Math.round(meanOf(raw.input_lens.filter((_: number, i: number) => ok[i]))));
  });

  it('newer bench serve with its NVML energy fields: counter energy, never more than the file says', () => {
    const raw = { ...json(VLLM_PLAIN), energy_gpu_ids: [0, 1], gpu_energy_j: 1234.5, gpu_energy_duration_s: 2.5, gpu_avg_power_w: 493.8 };
    const [p] = readVllmJson(JSON.stringify(raw), 'e.json').points;
    assert.equal(p.energy?.method, 'counter');
    assert.equal(p.energy?.totalJ, raw.gpu_energy_j);
    assert.equal(p.energy?.durationS, raw.gpu_energy_duration_s);
    assert.deepEqual(p.energy?.perGpu, [], 'the file has only the sum');
  });

  it('--append-result: one point per result line', () => {
    const one = text(VLLM_PLAIN).trim();
    const two = JSON.stringify({ ...JSON.parse(one), max_concurrency: 16, completed: 3 });
    const run = readVllmJson(`${one}\n${two}`, 'a.json');
    assert.deepEqual(run.points.map((p) => p.requests.ok), [JSON.parse(one).completed, 3]);
    assert.deepEqual(run.points.map((p) => p.params.concurrency), [JSON.parse(one).max_concurrency, 16]);
    assert.throws(() => readVllmJson(`${one}\n${two.slice(0, 60)}`, 'a.json'), /^ImportError: a\.json: not valid JSON at line 2, column 61/);
  });

  it('vllm bench sweep summary.csv: every row a point, its own figures', () => {
    const csv = text('vllm/sweep/summary.csv');
    const [header, ...rows] = csv.trim().split('\n').map((l) => l.split(','));
    const col = (name: string) => header.indexOf(name);
    const run = readVllmSweepCsv(csv, 'summary.csv');
    assert.equal(run.points.length, rows.length);
    run.points.forEach((p, i) => {
      close(p.throughput.outputTokensPerS, Number(rows[i][col('output_throughput')]), `row ${i} tok/s`);
      close(p.latency.e2e?.mean, Number(rows[i][col('mean_e2el_ms')]) / 1000, `row ${i} e2e mean`);
      assert.equal(p.params.concurrency, Number(rows[i][col('max_concurrency')]));
      assert.match(p.label, new RegExp(`run ${rows[i][col('run_number')]}$`));
    });
  });
});

describe('GuideLLM', () => {
  it('benchmarks.json (v0.4+ layout): one point per benchmark, ms → s, the strategy as its load', () => {
    const raw = json('guidellm/benchmarks.json');
    const run = readGuidellm(text('guidellm/benchmarks.json'), 'benchmarks.json');
    assert.equal(run.version, raw.metadata.guidellm_version);
    assert.equal(run.points.length, raw.benchmarks.length);
    run.points.forEach((p, i) => {
      const b = raw.benchmarks[i];
      assert.equal(p.requests.ok, b.metrics.request_totals.successful);
      close(p.durationS, b.duration, 'duration');
      close(p.latency.ttft?.mean, b.metrics.time_to_first_token_ms.successful.mean / 1000, 'TTFT mean');
      close(p.latency.ttft?.p99, b.metrics.time_to_first_token_ms.successful.percentiles.p99 / 1000, 'TTFT p99');
      close(p.latency.e2e?.p50, b.metrics.request_latency.successful.percentiles.p50, 'latency p50 (s already)');
      close(p.throughput.outputTokensPerS, b.metrics.output_token_count.successful.total_sum / b.duration, 'tok/s');
      assert.equal(p.params.concurrency, b.config.strategy.streams ?? 1);
    });
    assert.equal(run.model, raw.config.spec.backend.model);
  });

  it('benchmarks.json (≤0.3 layout: args, worker, request_totals beside metrics)', () => {
    const raw = json('guidellm/benchmarks-v0.3.json');
    const b = raw.benchmarks[0];
    const run = readGuidellm(text('guidellm/benchmarks-v0.3.json'), 'old.json');
    const [p] = run.points;
    assert.equal(run.model, b.worker.backend_model);
    assert.equal(p.requests.ok, b.request_totals.successful);
    assert.equal(p.requests.errors, b.request_totals.errored + b.request_totals.incomplete);
    close(p.durationS, b.end_time - b.start_time, 'duration from start/end');
    close(p.latency.itl?.mean, b.metrics.inter_token_latency_ms.successful.mean / 1000, 'ITL (per-request mean)');
    assert.equal(p.params.concurrency, b.args.strategy.streams);
    assert.ok(run.notes.some((n) => /per-request|each request's mean/i.test(n)), 'says its ITL is per request');
  });

  it('a report schema newer than known is refused by name', () => {
    const raw = json('guidellm/benchmarks.json');
    raw.metadata.version = 3;
    assert.throws(() => readGuidellm(JSON.stringify(raw), 'benchmarks.json'), (e: ImportError) => e.field === 'metadata.version' && /newer/.test(e.message) && e.message.startsWith('benchmarks.json: '));
  });
});

describe('NVIDIA AIPerf', () => {
  it('profile_export_aiperf.json: units converted by the file\'s own, energy from the DCGM counter', () => {
    const raw = json('aiperf/profile_export_aiperf.json');
    const run = readAiperfJson(text('aiperf/profile_export_aiperf.json'), 'p.json');
    const [p] = run.points;
    assert.equal(run.version, raw.aiperf_version);
    assert.equal(run.model, raw.input_config.endpoint.model_names[0]);
    assert.equal(p.requests.ok, raw.request_count.avg);
    assert.equal(raw.time_to_first_token.unit, 'ms');
    close(p.latency.ttft?.mean, raw.time_to_first_token.avg / 1000, 'TTFT mean');
    close(p.latency.e2e?.p90, raw.request_latency.p90 / 1000, 'latency p90');
    assert.equal(raw.benchmark_duration.unit, 'sec');
    close(p.durationS, raw.benchmark_duration.avg, 'duration');
    close(p.start, raw.min_request_timestamp.avg / 1e9, 'start from the ns timestamp');
    close(p.throughput.outputTokensPerS, raw.output_token_throughput.avg, 'tok/s');
    const gpus = Object.values(raw.telemetry_data.endpoints['localhost:9401'].gpus) as { metrics: { energy_consumption: { min: number; max: number } } }[];
    const joules = gpus.map((g) => (g.metrics.energy_consumption.max - g.metrics.energy_consumption.min) * 1e6);
    close(p.energy?.totalJ, joules[0] + joules[1], 'energy J', 1e-6);
    assert.deepEqual(p.energy?.perGpu.map((g) => g.gpu), ['gpu-node-1:0', 'gpu-node-1:1']);
    assert.equal(p.params.concurrency, raw.input_config.loadgen.concurrency);
  });

  it('a schema major version newer than known is refused; a newer minor is read and noted', () => {
    const raw = json('aiperf/profile_export_aiperf.json');
    assert.throws(() => readAiperfJson(JSON.stringify({ ...raw, schema_version: '2.0' }), 'p.json'), (e: ImportError) => e.field === 'schema_version');
    const run = readAiperfJson(JSON.stringify({ ...raw, schema_version: '1.9' }), 'p.json');
    assert.ok(run.notes.some((n) => /1\.9 is newer/.test(n)));
  });

  it('profile_export_aiperf.csv: the two sections, names with units', () => {
    const csv = text('aiperf/profile_export_aiperf.csv');
    const row = (name: string) => csv.split(/\r?\n/).find((l) => l.startsWith(`${name},`))!.split(',');
    const [p] = readAiperfCsv(csv, 'p.csv').points;
    close(p.latency.ttft?.mean, Number(row('Time to First Token (ms)')[1]) / 1000, 'TTFT avg');
    close(p.latency.ttft?.p99, Number(row('Time to First Token (ms)')[12]) / 1000, 'TTFT p99');
    assert.equal(p.requests.ok, Number(row('Request Count')[1]));
    close(p.durationS, Number(row('Benchmark Duration (sec)')[1]), 'duration');
    assert.equal(p.tokens.output, Number(row('Total Output Sequence Length (tokens)')[1]));
  });

  it('profile_export.jsonl: recomputed per request, ITL over every chunk gap', () => {
    const records = text('aiperf/profile_export.jsonl').trim().split('\n').map((l) => JSON.parse(l));
    const ok = records.filter((r) => r.error === null);
    const gaps = ok.flatMap((r) => r.metrics.inter_chunk_latency.value.map((ms: number) => ms / 1000));
    const [p] = readAiperfJsonl(text('aiperf/profile_export.jsonl'), 'p.jsonl').points;
    assert.equal(p.requests.ok, ok.length);
    close(p.latency.itl?.p50, pct(gaps, 50), 'ITL p50 per gap');
    close(p.latency.ttft?.mean, meanOf(ok.map((r) => r.metrics.time_to_first_token.value / 1000)), 'TTFT mean');
    const first = Math.min(...records.map((r) => r.metadata.request_start_ns));
    const last = Math.max(...records.map((r) => r.metadata.request_end_ns));
    close(p.durationS, (last - first) / 1e9, 'duration');
  });
});

describe('AIPerf GPU telemetry (gpu_telemetry_export.jsonl, a real AIPerf test file)', () => {
  const telemetry = text('aiperf/telemetry/gpu_telemetry_export.jsonl');
  const records = text('aiperf/telemetry/profile_export.jsonl');
  const scrapes = telemetry.trim().split('\n').map((l) => JSON.parse(l));

  it('joins the records of the same folder: energy the counter\'s rise inside their window, each GPU once', () => {
    const [run] = readResults([
      { name: 'run/profile_export.jsonl', text: records },
      { name: 'run/gpu_telemetry_export.jsonl', text: telemetry },
    ]);
    const reqs = records.trim().split('\n').map((l) => JSON.parse(l));
    const start = Math.min(...reqs.map((r) => r.metadata.request_start_ns)) / 1e9;
    const end = Math.max(...reqs.map((r) => r.metadata.request_end_ns)) / 1e9;
    // By hand: the scrapes of one exporter (both scrape the same GPU) inside [start, end], last minus first, MJ → J.
    const url = scrapes[0].telemetry_source_url;
    const inside = scrapes.filter((s) => s.telemetry_source_url === url && s.timestamp_ns / 1e9 >= start && s.timestamp_ns / 1e9 <= end);
    assert.ok(inside.length >= 2);
    const joules = (inside[inside.length - 1].telemetry_data.energy_consumption - inside[0].telemetry_data.energy_consumption) * 1e6;
    const [p] = run.points;
    close(p.energy?.totalJ, joules, 'energy J', 1e-9);
    assert.equal(p.energy?.perGpu.length, 1, 'two exporters, one GPU');
    assert.deepEqual(run.gpus, [{ index: 0, name: scrapes[0].gpu_model_name }]);
    assert.equal(run.host, scrapes[0].hostname);
    assert.ok(run.notes.some((n) => /first and the last scrape inside/.test(n)));
    assert.ok(!run.notes.some((n) => /^No energy/.test(n)));
  });

  it('left out, with the reason, when its scrapes do not cover the benchmark', () => {
    const [run] = readResults([
      { name: 'a/profile_export.jsonl', text: text('aiperf/profile_export.jsonl') },
      { name: 'a/gpu_telemetry_export.jsonl', text: telemetry },
    ]);
    assert.equal(run.points[0].energy, undefined);
    assert.ok(run.notes.some((n) => /GPU telemetry not used: .*0 scrape\(s\) inside/.test(n)));
  });

  it('alone it is no run', () =>
    assert.throws(() => readResults([{ name: 'gpu_telemetry_export.jsonl', text: telemetry }]), (e: ImportError) => /telemetry alone is no run/.test(e.message)));
});

describe('inference-perf', () => {
  const names = ['stage_0_lifecycle_metrics.json', 'stage_1_lifecycle_metrics.json', 'summary_lifecycle_metrics.json'];
  const files = names.map((name) => ({ name, text: text(`inference-perf/${name}`) }));

  it('stage reports (a real run, kubecon-na-2025 demo): one point per stage, seconds as they are', () => {
    const run = readInferencePerf(files);
    assert.deepEqual(run.points.map((p) => p.id), ['stage-0', 'stage-1']);
    run.points.forEach((p, i) => {
      const raw = json(`inference-perf/${names[i]}`);
      assert.equal(p.requests.ok, raw.successes.count);
      close(p.latency.ttft?.mean, raw.successes.latency.time_to_first_token.mean, 'TTFT mean');
      close(p.latency.ttft?.p50, raw.successes.latency.time_to_first_token.median, 'TTFT median');
      close(p.latency.itl?.p99, raw.successes.latency.inter_token_latency.p99, 'ITL p99');
      close(p.throughput.outputTokensPerS, raw.successes.throughput.output_tokens_per_sec, 'tok/s');
      close(p.durationS, raw.successes.count / raw.successes.throughput.requests_per_sec, 'duration');
      assert.equal(p.params.request_rate, raw.load_summary.requested_rate);
    });
  });

  it('the summary alone: one point over all stages', () => {
    const raw = json('inference-perf/summary_lifecycle_metrics.json');
    const run = readInferencePerf([files[2]]);
    assert.equal(run.points.length, 1);
    assert.equal(run.points[0].requests.ok, raw.successes.count);
    assert.equal(run.points[0].tokens.output, Math.round(raw.successes.output_len.mean * raw.successes.count));
  });
});

describe('ML.ENERGY benchmark', () => {
  it('results.json: Zeus energy over the benchmark, its steady state, and latencies from the requests', () => {
    const raw = json('mlenergy/results.json');
    const run = readMlEnergy(text('mlenergy/results.json'), 'results.json');
    const [p] = run.points;
    const entire = Object.values(raw.entire_benchmark_measurement.gpu_energy as Record<string, number>).reduce((s, x) => s + x, 0);
    close(p.energy?.totalJ, entire, 'energy J');
    assert.equal(p.energy?.method, 'counter');
    assert.equal(p.energy?.perGpu.length, raw.num_gpus);
    close(p.steady && p.steady.energyJ / p.steady.outputTokens, raw.steady_state_energy_per_token, 'steady J/token', 1e-3);
    const ok = raw.results.filter((r: { success: boolean }) => r.success);
    close(p.latency.ttft?.mean, meanOf(ok.map((r: { ttft: number }) => r.ttft)), 'TTFT mean');
    close(p.latency.ttft?.mean, raw.mean_ttft_ms / 1000, 'TTFT mean against the file');
    assert.equal(p.requests.ok, raw.completed);
    assert.deepEqual(run.gpus?.map((g) => g.name), Array(raw.num_gpus).fill(raw.gpu_model));
  });
});

describe('detectFormat', () => {
  const cases: [string, string][] = [
    [VLLM_PLAIN, 'vllm'],
    ['vllm/detailed-concurrency2.json', 'vllm'],
    ['vllm/sweep/summary.csv', 'vllm-sweep-csv'],
    ['guidellm/benchmarks.json', 'guidellm'],
    ['guidellm/benchmarks-v0.3.json', 'guidellm'],
    ['aiperf/profile_export_aiperf.json', 'aiperf-json'],
    ['aiperf/profile_export_aiperf.csv', 'aiperf-csv'],
    ['aiperf/profile_export.jsonl', 'aiperf-jsonl'],
    ['aiperf/telemetry/gpu_telemetry_export.jsonl', 'aiperf-telemetry'],
    ['inference-perf/stage_0_lifecycle_metrics.json', 'inference-perf'],
    ['mlenergy/results.json', 'mlenergy'],
  ];
  for (const [file, format] of cases) it(`${file} → ${format}`, () => assert.equal(detectFormat(text(file), file), format));
  it('a file of none of them → undefined', () => assert.equal(detectFormat('{"hello": 1}', 'x.json'), undefined));
});

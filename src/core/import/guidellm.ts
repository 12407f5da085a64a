/**
 * GuideLLM's `benchmarks.json` (GenerativeBenchmarksReport): the current layout (v0.4+: `metadata`, `config`,
 * `benchmarks[]` each with `config`, `scheduler_metrics`, `metrics`) and the older one (≤0.3: `benchmarks[]`
 * each with `args`, `run_stats`, `worker`, `request_totals` beside `metrics`). Each benchmark is one point.
 */
import { checkVersion, Fields, isObject, parseJson } from './fields';
import { scaled } from './stats';
import type { ImportedPoint, ImportedRun, Stat } from './types';

/** `metadata.version` of the report schema this reader knows (guidellm/benchmark/schemas/report.py). */
const KNOWN_REPORT_VERSIONS = [1, 2];

export function readGuidellm(text: string, file: string): ImportedRun {
  const root = new Fields(file, parseJson(text, file));
  if (!isObject(root.root)) root.fail('', 'expected a JSON object (a GuideLLM report)');
  checkVersion(root, 'metadata.version', KNOWN_REPORT_VERSIONS, root.optNum('metadata.version'));
  const benchmarks = root.arr('benchmarks');
  if (!benchmarks.length) root.fail('benchmarks', 'an empty list: the report holds no benchmark');
  const layout = root.has('benchmarks.0.args') ? 'v0.3' : 'v0.4+';
  const points = benchmarks.map((_, i) => guidellmPoint(root.sub(`benchmarks.${i}`), i, layout));
  const model =
    root.optStr('config.model') ??
    root.optStr('config.spec.backend.model') ??
    root.optStr('benchmarks.0.config.backend.model') ??
    root.optStr('benchmarks.0.worker.backend_model');
  const version = root.optStr('metadata.guidellm_version');
  const start = points[0]?.start;
  return {
    tool: 'guidellm',
    version,
    files: [file],
    name: `GuideLLM · ${model?.split('/').pop() ?? 'unknown model'}`,
    model,
    started: start !== undefined ? new Date(start * 1000).toISOString() : undefined,
    points,
    notes: [
      `Imported from GuideLLM (${layout} report layout): its latencies are in ms (request latency in s) in the file, converted to seconds here.`,
      'GuideLLM ITL (inter_token_latency_ms) is each request\'s mean gap, (last token − first token) / (output tokens − 1), ' +
        'and its percentiles are over requests, not over gaps as in Wattbench; its TPOT includes the first token and is not shown.',
      'Output tokens as GuideLLM counted them: the server\'s usage where it reports one (prefer_response_metrics), else its own tokenizer.',
      'Percentiles copied from the file (successful requests). Throughput recomputed as tokens and requests over the benchmark\'s duration.',
      'No energy in the file: GuideLLM measures none, so energy and J/token are blank.',
    ],
  };
}

function guidellmPoint(b: Fields, index: number, layout: 'v0.3' | 'v0.4+'): ImportedPoint {
  const m = b.sub('metrics');
  const totals = layout === 'v0.3' ? b.sub('request_totals') : m.sub('request_totals');
  const ok = totals.num('successful');
  const errors = totals.num('errored') + (totals.optNum('incomplete') ?? 0);
  const start = b.optNum('start_time') ?? b.optNum('scheduler_metrics.measure_start_time') ?? b.optNum('run_stats.start_time');
  const end = b.optNum('end_time') ?? b.optNum('scheduler_metrics.measure_end_time') ?? b.optNum('run_stats.end_time');
  const durationS = b.optNum('duration') ?? (start !== undefined && end !== undefined ? end - start : b.fail('duration', 'missing, and no start_time/end_time to take it from'));
  const input = m.optNum('prompt_token_count.successful.total_sum') ?? 0;
  const output = m.num('output_token_count.successful.total_sum');
  const strategy = b.has('config.strategy') ? b.sub('config.strategy') : b.sub('args.strategy');
  const kind = strategy.optStr('type_') ?? strategy.optStr('kind') ?? 'unknown';
  const params: Record<string, unknown> = { strategy: kind };
  const streams = strategy.optNum('streams');
  const rate = strategy.optNum('rate');
  if (kind === 'synchronous') params.concurrency = 1;
  if (streams !== undefined) params.concurrency = streams;
  if (rate !== undefined) params.request_rate = rate;
  const promptMean = m.optNum('prompt_token_count.successful.mean');
  const outputMean = m.optNum('output_token_count.successful.mean');
  if (promptMean !== undefined) params.input_tokens = Math.round(promptMean);
  if (outputMean !== undefined) params.output_tokens = Math.round(outputMean);
  params.num_prompts = ok + errors;
  const label = streams !== undefined ? `${kind} ${streams} streams` : rate !== undefined ? `${kind} ${Number(rate.toPrecision(4))} req/s` : kind;
  return {
    id: `benchmark-${index}`,
    label,
    params,
    status: ok > 0 ? 'ok' : 'error',
    start,
    durationS,
    requests: { ok, errors },
    tokens: { input, output },
    throughput: { outputTokensPerS: output / durationS, totalTokensPerS: (input + output) / durationS, requestsPerS: ok / durationS },
    latency: {
      ttft: scaled(dist(m, 'time_to_first_token_ms'), 1e-3),
      itl: scaled(dist(m, 'inter_token_latency_ms'), 1e-3),
      e2e: dist(m, 'request_latency'),
    },
  };
}

/** A StatusDistributionSummary's successful requests, as a Stat in the file's unit. */
function dist(m: Fields, name: string): Stat | undefined {
  if (!m.has(`${name}.successful`)) return undefined;
  const d = m.sub(`${name}.successful`);
  const n = d.optNum('count');
  if (n === 0) return undefined;
  return { n, mean: d.optNum('mean'), min: d.optNum('min'), max: d.optNum('max'), p50: d.optNum('percentiles.p50') ?? d.optNum('median'), p90: d.optNum('percentiles.p90'), p99: d.optNum('percentiles.p99') };
}

/**
 * kubernetes-sigs/inference-perf lifecycle reports (inference_perf/reportgen/base.py `summarize_requests`):
 * `stage_N_lifecycle_metrics.json` per load stage, and `summary_lifecycle_metrics.json` over all stages.
 * Figures are in seconds already. Stage files become one point each; the summary alone becomes one point.
 */
import { Fields, isObject, parseJson } from './fields';
import type { ImportedPoint, ImportedRun, Stat } from './types';

export interface NamedText {
  name: string;
  text: string;
}

export const STAGE_FILE = /^stage_(\d+)_lifecycle_metrics\.json$/;
export const SUMMARY_FILE = 'summary_lifecycle_metrics.json';

/** One run from a report folder's lifecycle files: the stages when there are any, else the summary. */
export function readInferencePerf(files: NamedText[]): ImportedRun {
  const stages = files.filter((f) => isStage(f.name)).sort((a, b) => stageOf(a.name) - stageOf(b.name));
  const used = stages.length ? stages : files.filter((f) => !isStage(f.name)).slice(0, 1);
  const points = used.map((f) => {
    const root = new Fields(f.name, parseJson(f.text, f.name));
    if (!isObject(root.root)) root.fail('', 'expected a JSON object (an inference-perf lifecycle report)');
    return isStage(f.name) ? stagePoint(root, `stage-${stageOf(f.name)}`, `stage ${stageOf(f.name)}`) : stagePoint(root, 'summary', 'all stages');
  });
  return {
    tool: 'inference-perf',
    files: used.map((f) => f.name),
    name: 'inference-perf',
    points,
    notes: [
      'Imported from inference-perf lifecycle reports (seconds in the file). Stage durations: successful requests over requests_per_sec, as the report computes its rates.',
      'inference-perf inter_token_latency is over every gap between streamed chunks, like Wattbench; its time_per_output_token ' +
        '((last token − first token) / (output tokens − 1), per request) is not shown as ITL.',
      'Output tokens as inference-perf counted them: its tokenizer on the streamed text unless use_server_output_tokens was set. ' +
        'Token totals are the mean lengths times the request count.',
      'Percentiles copied from the file (p90 and p99; the median as p50). The report names no model and no GPU.',
      'No energy in the lifecycle reports, so energy and J/token are blank.',
    ],
  };
}

const base = (name: string) => name.split(/[\\/]/).pop() ?? name;
const isStage = (name: string) => STAGE_FILE.test(base(name));
const stageOf = (name: string) => Number(STAGE_FILE.exec(base(name))?.[1] ?? -1);

function stagePoint(root: Fields, id: string, label: string): ImportedPoint {
  const ok = root.num('successes.count');
  const errors = root.optNum('failures.count') ?? 0;
  const rps = root.num('successes.throughput.requests_per_sec');
  const durationS = root.optNum('benchmark_time_seconds') ?? (rps > 0 ? ok / rps : root.optNum('load_summary.send_duration') ?? root.fail('successes.throughput.requests_per_sec', 'zero, and no benchmark_time_seconds'));
  const input = root.optNum('successes.prompt_tokens.total') ?? (root.optNum('successes.prompt_len.mean') ?? 0) * ok;
  const output = root.optNum('successes.output_tokens.total') ?? (root.optNum('successes.output_len.mean') ?? 0) * ok;
  const params: Record<string, unknown> = { num_prompts: root.optNum('load_summary.count') ?? ok + errors };
  const rate = root.optNum('load_summary.requested_rate');
  if (rate !== undefined) params.request_rate = rate;
  const promptMean = root.optNum('successes.prompt_len.mean');
  const outputMean = root.optNum('successes.output_len.mean');
  if (promptMean !== undefined) params.input_tokens = Math.round(promptMean);
  if (outputMean !== undefined) params.output_tokens = Math.round(outputMean);
  return {
    id,
    label: rate !== undefined ? `${label} · ${rate} req/s` : label,
    params,
    status: ok > 0 ? 'ok' : 'error',
    durationS,
    requests: { ok, errors },
    tokens: { input: Math.round(input), output: Math.round(output) },
    throughput: {
      outputTokensPerS: root.num('successes.throughput.output_tokens_per_sec'),
      totalTokensPerS: root.optNum('successes.throughput.total_tokens_per_sec') ?? (input + output) / durationS,
      requestsPerS: rps,
    },
    latency: {
      ttft: stat(root, 'successes.latency.time_to_first_token', ok),
      itl: stat(root, 'successes.latency.inter_token_latency', undefined),
      e2e: stat(root, 'successes.latency.request_latency', ok),
    },
  };
}

/** A `summarize()` block: mean, min, max, median, pNN (null when it had no values). */
function stat(root: Fields, path: string, n: number | undefined): Stat | undefined {
  if (!root.has(path)) return undefined;
  const s = root.sub(path);
  return { n, mean: s.optNum('mean'), min: s.optNum('min'), max: s.optNum('max'), p50: s.optNum('median'), p90: s.optNum('p90'), p99: s.optNum('p99') };
}

/**
 * vLLM's `vllm bench serve --save-result` JSON (vllm/benchmarks/serve.py; formerly benchmarks/benchmark_serving.py),
 * with `--save-detailed` per-request arrays, `--append-result` files (one JSON object per line), and the
 * sweeps of `vllm bench sweep serve`: `summary.csv` (pandas, one row per run) or a combination's `summary.json`
 * (a list of results).
 */
import { parseCsv } from './csv';
import { Fields, isObject, parseJson, type Json } from './fields';
import { scaled, statOf } from './stats';
import type { ImportedPoint, ImportedRun, Stat } from './types';

const NOTES = [
  'Imported from vLLM bench serve: its latencies are in ms in the file, converted to seconds here.',
  'vLLM ITL is per gap between streamed chunks (one token each only if the server streams token by token), like Wattbench; ' +
    "vLLM's TPOT (per-request mean time per output token, first token excluded) is not Wattbench's ITL and is not shown as it.",
  'Output tokens as vLLM counted them: the server\'s usage report where it sent one, else vLLM re-tokenised the generated text.',
];

/** A `--save-result` file: one result object, several (append-result, one per line), or a list (a sweep's summary.json). */
export function readVllmJson(text: string, file: string): ImportedRun {
  const results = vllmObjects(text, file);
  const read = results.map((r, i) => vllmPoint(new Fields(file, r, results.length > 1 ? `${i}` : ''), i, results.length));
  return vllmRun(results.map((r) => new Fields(file, r)), read.map((r) => r.point), [file], read.some((r) => r.detailed));
}

/** `summary.csv` of `vllm bench sweep serve`: one row per run of each parameter combination. */
export function readVllmSweepCsv(text: string, file: string): ImportedRun {
  const rows = parseCsv(text, file);
  const records = rows.map((row) => {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(row)) if (k !== '') out[k] = csvValue(v);
    return out;
  });
  const points = records.map((r, i) => vllmPoint(new Fields(file, r, `row ${i + 2}`), i, records.length).point);
  return vllmRun(records.map((r) => new Fields(file, r)), points, [file], false);
}

function vllmObjects(text: string, file: string): Json[] {
  try {
    const parsed = JSON.parse(text) as Json;
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    // Not one JSON value: --append-result writes each result with json.dump (one line) and a newline between.
  }
  const lines = text.trim().split(/\n(?=\{)/);
  if (lines.length < 2) return [parseJson(text, file)];
  let start = 0;
  return lines.map((line) => {
    const lineNo = text.slice(0, text.indexOf(line, start)).split('\n').length;
    start += line.length;
    // Padded with the lines before it, so that a syntax error names its line in the whole file.
    return parseJson('\n'.repeat(lineNo - 1) + line, file);
  });
}

/** One result as a point; `detailed` when its TTFT and ITL were recomputed from the per-request arrays. */
function vllmPoint(f: Fields, index: number, count: number): { point: ImportedPoint; detailed: boolean } {
  if (!isObject(f.root)) f.fail('', 'expected a result object');
  const completed = f.num('completed');
  const durationS = f.num('duration');
  const concurrency = f.optNum('max_concurrency');
  const rateRaw = f.root['request_rate'];
  const rate = typeof rateRaw === 'number' ? rateRaw : undefined;
  const detailed = f.has('ttfts') && f.has('errors');
  let ttft = fileStat(f, 'ttft', completed);
  let itl = fileStat(f, 'itl', completed);
  const e2e = fileStat(f, 'e2el', completed);
  let failed = f.optNum('failed');
  let inputTokens = f.optNum('total_input_tokens') ?? 0;
  const params: Record<string, unknown> = {};
  if (detailed) {
    const errors = f.arr('errors');
    const ok = errors.map((e) => e === '' || e === null);
    const ttfts = f.nums('ttfts');
    const itls = f.arr('itls').map((_, i) => f.nums(`itls.${i}`));
    ttft = statOf(ttfts.filter((_, i) => ok[i]));
    itl = statOf(itls.filter((_, i) => ok[i]).flat());
    failed ??= ok.filter((x) => !x).length;
    if (f.has('input_lens')) {
      const inputs = f.nums('input_lens');
      params.input_tokens = Math.round(mean(inputs.filter((_, i) => ok[i])));
      inputTokens ||= inputs.filter((_, i) => ok[i]).reduce((s, x) => s + x, 0);
    }
    if (f.has('output_lens')) params.output_tokens = Math.round(mean(f.nums('output_lens').filter((_, i) => ok[i])));
  }
  if (concurrency !== undefined) params.concurrency = concurrency;
  if (rate !== undefined) params.request_rate = rate;
  else if (rateRaw === 'inf') params.request_rate = 'inf';
  const numPrompts = f.optNum('num_prompts');
  if (numPrompts !== undefined) params.num_prompts = numPrompts;
  const runNumber = f.optNum('run_number');
  const outputTokens = f.optNum('total_output_tokens') ?? 0;
  const load = concurrency !== undefined ? `concurrency ${concurrency}` : rate !== undefined ? `${rate} req/s` : 'all at once';
  const point: ImportedPoint = {
    id: count > 1 ? `point-${index}` : 'point-0',
    label: `${load}${runNumber !== undefined ? ` · run ${runNumber}` : ''}`,
    params,
    status: completed > 0 ? 'ok' : 'error',
    durationS,
    requests: { ok: completed, errors: failed ?? 0 },
    tokens: { input: inputTokens, output: outputTokens },
    throughput: {
      outputTokensPerS: f.optNum('output_throughput') ?? outputTokens / durationS,
      totalTokensPerS: f.optNum('total_token_throughput') ?? (inputTokens + outputTokens) / durationS,
      requestsPerS: f.optNum('request_throughput') ?? completed / durationS,
    },
    latency: { ttft, itl, e2e },
    energy: vllmEnergy(f),
  };
  return { point, detailed };
}

/** mean/median/pNN of one metric, as `benchmark()` writes them (ms), in seconds. */
function fileStat(f: Fields, metric: string, n: number): Stat | undefined {
  const mean = f.optNum(`mean_${metric}_ms`);
  if (mean === undefined) return undefined;
  return scaled({ n, mean, p50: f.optNum(`median_${metric}_ms`) ?? f.optNum(`p50_${metric}_ms`), p90: f.optNum(`p90_${metric}_ms`), p99: f.optNum(`p99_${metric}_ms`) }, 1e-3);
}

/** Newer `bench serve` measures GPU energy with NVML's counter (vllm/benchmarks/lib/energy.py). */
function vllmEnergy(f: Fields): ImportedPoint['energy'] {
  const energyJ = f.optNum('gpu_energy_j');
  if (energyJ === undefined) return undefined;
  // The file gives the GPUs' sum only (energy_gpu_ids names them), so there is no per-GPU split.
  return { method: 'counter', totalJ: energyJ, perGpu: [], durationS: f.optNum('gpu_energy_duration_s') ?? f.num('duration') };
}

function vllmRun(results: Fields[], points: ImportedPoint[], files: string[], anyRecomputed: boolean): ImportedRun {
  const first = results[0];
  const model = first.optStr('model_id');
  const version = first.optStr('vllm_version') ?? first.optStr('version');
  const notes = [...NOTES];
  notes.push(
    anyRecomputed
      ? 'TTFT and ITL percentiles recomputed from the per-request arrays (--save-detailed), successful requests only; e2e copied from the file.'
      : 'Percentiles copied from the file (vLLM writes mean, median and the --metric-percentiles it was asked for; others are left blank).',
  );
  if (points.some((p) => p.energy)) notes.push("Energy: vLLM's own measurement, NVML's energy counter over the benchmark, all GPUs it names together.");
  else notes.push('No energy in the file: vLLM bench serve measures none unless asked to, so energy and J/token are blank.');
  return {
    tool: 'vllm',
    version,
    files,
    name: `vllm bench serve · ${model?.split('/').pop() ?? 'unknown model'}`,
    model,
    started: vllmDate(first.optStr('date')),
    points,
    notes,
  };
}

/** `date` is local time, "%Y%m%d-%H%M%S" (older releases; newer "%Y-%m-%d %H:%M:%S"). */
function vllmDate(date: string | undefined): string | undefined {
  const m = date && /^(\d{4})-?(\d{2})-?(\d{2})[- T](\d{2}):?(\d{2}):?(\d{2})$/.exec(date);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}` : undefined;
}

function csvValue(text: string): Json {
  if (text === '') return null;
  if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (text === 'True' || text === 'False') return text === 'True';
  return text;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);

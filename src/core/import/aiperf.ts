/**
 * NVIDIA AIPerf (successor of GenAI-Perf): `profile_export_aiperf.json` (JsonExportData, with the GPU
 * telemetry of DCGM in `telemetry_data`), `profile_export_aiperf.csv` (its two-section CSV) and the
 * per-request `profile_export.jsonl` (MetricRecordInfo lines). AIPerf's units vary by metric (ms, ns, sec):
 * every figure is converted by the unit the file gives it.
 */
import { csvRows } from './csv';
import { Fields, isObject, parseJson, parseJsonLines, type JsonObject } from './fields';
import { secondsPer, statOf } from './stats';
import { ImportError, type ImportedEnergy, type ImportedPoint, type ImportedRun, type Stat } from './types';

/** `schema_version` major.minor this reader knows (docs/reference/json-export-schema.md); a newer minor only adds fields. */
const KNOWN_SCHEMA = { major: 1, minor: 5 };

const ITL_NOTE =
  "AIPerf ITL (inter_token_latency) is each request's (latency − TTFT) / (output tokens − 1), a per-request mean like TPOT, " +
  'and its percentiles are over requests, not over gaps between chunks as in Wattbench.';

export function readAiperfJson(text: string, file: string): ImportedRun {
  const root = new Fields(file, parseJson(text, file));
  if (!isObject(root.root)) root.fail('', 'expected a JSON object (profile_export_aiperf.json)');
  const notes: string[] = [];
  const schema = root.optStr('schema_version');
  if (schema !== undefined) {
    const [major, minor] = schema.split('.').map(Number);
    if (!(major <= KNOWN_SCHEMA.major)) root.fail('schema_version', `schema version ${schema} is newer than this Wattbench reads (up to ${KNOWN_SCHEMA.major}.${KNOWN_SCHEMA.minor}); update Wattbench`);
    if (major === KNOWN_SCHEMA.major && minor > KNOWN_SCHEMA.minor) notes.push(`AIPerf export schema ${schema} is newer than ${KNOWN_SCHEMA.major}.${KNOWN_SCHEMA.minor}: read as its documented additive changes allow; fields added since are ignored.`);
  }
  const energy = telemetryEnergy(root);
  const point = aggregatePoint(root, energy?.energy);
  notes.unshift(
    'Imported from AIPerf profile_export_aiperf.json: every figure converted from the unit the file gives it (ms, ns, sec) to seconds.',
    ITL_NOTE,
    'Percentiles copied from the file (AIPerf writes p1…p99 over the profiling phase; warm-up requests excluded).',
    energy
      ? `Energy: DCGM's cumulative GPU energy counter (DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION) as AIPerf scraped it, last minus first reading of the run, per GPU; the edges are as fine as the scrape interval.`
      : 'No GPU energy in the file (AIPerf had no DCGM telemetry), so energy and J/token are blank.',
  );
  return aiperfRun(root, [point], [file], notes, root.optStr('aiperf_version'), energy);
}

export function readAiperfCsv(text: string, file: string): ImportedRun {
  const metrics: JsonObject = {};
  let header: string[] | undefined;
  for (const [i, row] of csvRows(text, file).entries()) {
    if (!row.some((c) => c !== '')) continue;
    if (row[0] === 'Metric') {
      header = row;
      continue;
    }
    if (!header) throw new ImportError(file, `line ${i + 1}`, 'expected the header row "Metric,…" first');
    if (row.length !== header.length) throw new ImportError(file, `line ${i + 1}`, `has ${row.length} cells, its header ${header.length} (the file ends early: truncated?)`);
    const m = /^(.*?)(?: \(([^()]*)\))?$/.exec(row[0])!;
    const tag = CSV_TAGS[m[1]] ?? m[1].toLowerCase().replace(/[^a-z0-9]+/g, '_');
    const entry: JsonObject = { unit: m[2] ?? (tag.endsWith('count') ? 'requests' : '') };
    header.slice(1).forEach((stat, k) => {
      const cell = row[k + 1];
      if (cell === undefined || cell === '') return;
      const value = Number(cell.replace(/,/g, ''));
      if (!Number.isFinite(value)) throw new ImportError(file, `line ${i + 1} (${row[0]}), ${stat}`, `expected a number, found ${JSON.stringify(cell)}`);
      entry[stat === 'Value' ? 'avg' : stat] = value;
    });
    metrics[tag] = entry;
  }
  const root = new Fields(file, metrics);
  const point = aggregatePoint(root, undefined);
  return aiperfRun(root, [point], [file], [
    'Imported from AIPerf profile_export_aiperf.csv: converted to seconds by the unit in each metric\'s name; the CSV rounds every figure to 2 decimals.',
    ITL_NOTE,
    'Percentiles copied from the file. The CSV has no model, load settings or GPU telemetry: import profile_export_aiperf.json for those.',
    'No energy in the CSV, so energy and J/token are blank.',
  ], undefined, undefined);
}

/** Header names of the CSV that are not the tag with spaces as underscores (aiperf/metrics/types). */
const CSV_TAGS: Record<string, string> = {
  'Total Input Sequence Length': 'total_isl',
  'Total Output Sequence Length': 'total_osl',
  'Total Error Input Sequence Length': 'total_error_isl',
  'Error Input Sequence Length': 'error_isl',
  GoodRequestCount: 'good_request_count',
  'Minimum Request Timestamp': 'min_request_timestamp',
  'Maximum Response Timestamp': 'max_response_timestamp',
};

/** Per-request records: every figure recomputed, ITL over every gap between chunks (inter_chunk_latency). */
export function readAiperfJsonl(text: string, file: string): ImportedRun {
  const records = parseJsonLines(text, file);
  if (!records.length) throw new ImportError(file, undefined, 'no records');
  const profiling = records.filter((r) => (r.optStr('metadata.benchmark_phase') ?? 'profiling') === 'profiling');
  const seconds = (r: Fields, tag: string): number | undefined => {
    if (!r.has(`metrics.${tag}`)) return undefined;
    return r.num(`metrics.${tag}.value`) * unitSeconds(r, `metrics.${tag}.unit`);
  };
  const ok = profiling.filter((r) => !r.has('error'));
  const starts = profiling.map((r) => r.num('metadata.request_start_ns'));
  const ends = profiling.map((r) => r.optNum('metadata.request_end_ns') ?? r.num('metadata.request_start_ns'));
  const durationS = (Math.max(...ends) - Math.min(...starts)) / 1e9;
  const sum = (rs: Fields[], tag: string) => rs.reduce((s, r) => s + (r.optNum(`metrics.${tag}.value`) ?? 0), 0);
  const input = sum(ok, 'input_sequence_length');
  const output = sum(ok, 'output_sequence_length');
  const gaps = ok.flatMap((r) => (r.has('metrics.inter_chunk_latency') ? r.nums('metrics.inter_chunk_latency.value').map((g) => g * unitSeconds(r, 'metrics.inter_chunk_latency.unit')) : []));
  const defined = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
  const point: ImportedPoint = {
    id: 'profiling',
    label: 'profiling',
    params: { num_prompts: profiling.length },
    status: ok.length ? 'ok' : 'error',
    start: Math.min(...starts) / 1e9,
    durationS,
    requests: { ok: ok.length, errors: profiling.length - ok.length },
    tokens: { input, output },
    throughput: { outputTokensPerS: output / durationS, totalTokensPerS: (input + output) / durationS, requestsPerS: ok.length / durationS },
    latency: {
      ttft: statOf(defined(ok.map((r) => seconds(r, 'time_to_first_token')))),
      itl: statOf(gaps),
      e2e: statOf(defined(ok.map((r) => seconds(r, 'request_latency')))),
    },
  };
  return aiperfRun(new Fields(file, {}), [point], [file], [
    'Imported from AIPerf profile_export.jsonl (one record per request, profiling phase only; warm-up left out).',
    'Every figure recomputed from the records: percentiles with linear interpolation; ITL over every gap between streamed chunks ' +
      "(inter_chunk_latency), as Wattbench measures it, not AIPerf's per-request inter_token_latency.",
    'Duration: first request sent to last response received.',
    'No energy in the records (gpu_telemetry_export.jsonl beside them has it), so energy and J/token are blank.',
  ], undefined, undefined);
}

function unitSeconds(f: Fields, path: string): number {
  const unit = f.optStr(path) ?? '';
  const k = secondsPer(unit);
  return k ?? f.fail(path, `expected a time unit (ns, us, ms, sec), found ${JSON.stringify(unit)}`);
}

/** A JsonMetricResult as a Stat in seconds (time units) or as is (tokens, counts). */
function metric(root: Fields, tag: string, time: boolean): Stat | undefined {
  if (!root.has(tag)) return undefined;
  const m = root.sub(tag);
  const k = time ? unitSeconds(m, 'unit') : 1;
  const v = (key: string) => (m.optNum(key) === undefined ? undefined : m.optNum(key)! * k);
  return { n: m.optNum('count'), mean: v('avg'), min: v('min'), max: v('max'), p50: v('p50'), p90: v('p90'), p99: v('p99') };
}

/**
 * Where AIPerf 0.10+ (schema 1.3) keeps the load: `input_config.phases[]`, one per phase (warm-up first, marked
 * `exclude_from_results`), instead of `input_config.loadgen`. The path of the profiling phase, if any.
 */
function profilingPhase(root: Fields): string | undefined {
  const phases = root.optArr('input_config.phases');
  if (!phases) return undefined;
  const i = phases.findIndex((_, k) => root.optStr(`input_config.phases.${k}.name`) === 'profiling');
  const j = i >= 0 ? i : phases.findIndex((p) => isObject(p) && p['exclude_from_results'] !== true);
  return j >= 0 ? `input_config.phases.${j}` : undefined;
}

function aggregatePoint(root: Fields, energy: ImportedEnergy | undefined): ImportedPoint {
  const ok = root.num('request_count.avg');
  const errors = root.optNum('error_request_count.avg') ?? 0;
  let durationS = root.has('benchmark_duration') ? root.num('benchmark_duration.avg') * unitSeconds(root, 'benchmark_duration.unit') : undefined;
  const first = root.has('min_request_timestamp') ? root.num('min_request_timestamp.avg') * unitSeconds(root, 'min_request_timestamp.unit') : undefined;
  const last = root.has('max_response_timestamp') ? root.num('max_response_timestamp.avg') * unitSeconds(root, 'max_response_timestamp.unit') : undefined;
  durationS ??= first !== undefined && last !== undefined ? last - first : root.fail('benchmark_duration', 'missing, and no min_request_timestamp/max_response_timestamp to take it from');
  const output = root.optNum('total_osl.avg') ?? root.optNum('total_output_tokens.avg') ?? root.optNum('output_sequence_length.sum') ?? 0;
  const input = root.optNum('total_isl.avg') ?? root.optNum('input_sequence_length.sum') ?? 0;
  const params: Record<string, unknown> = {};
  const phase = profilingPhase(root);
  const concurrency = root.optNum('input_config.loadgen.concurrency') ?? (phase ? root.optNum(`${phase}.concurrency`) : undefined);
  const rate = root.optNum('input_config.loadgen.request_rate');
  if (concurrency !== undefined) params.concurrency = concurrency;
  if (rate !== undefined) params.request_rate = rate;
  const count = root.optNum('input_config.loadgen.request_count') ?? (phase ? root.optNum(`${phase}.requests`) : undefined);
  if (count !== undefined) params.num_prompts = count;
  const inTokens = root.optNum('input_config.input.prompt.input_tokens.mean');
  const outTokens = root.optNum('input_config.input.prompt.output_tokens.mean');
  if (inTokens !== undefined) params.input_tokens = inTokens;
  if (outTokens !== undefined) params.output_tokens = outTokens;
  return {
    id: 'profiling',
    label: concurrency !== undefined ? `concurrency ${concurrency}` : rate !== undefined ? `${rate} req/s` : 'profiling',
    params,
    status: ok > 0 ? 'ok' : 'error',
    start: first,
    durationS,
    requests: { ok, errors },
    tokens: { input, output },
    throughput: {
      outputTokensPerS: root.optNum('output_token_throughput.avg') ?? output / durationS,
      totalTokensPerS: (input + output) / durationS,
      requestsPerS: root.optNum('request_throughput.avg') ?? ok / durationS,
    },
    latency: { ttft: metric(root, 'time_to_first_token', true), itl: metric(root, 'inter_token_latency', true), e2e: metric(root, 'request_latency', true) },
    energy,
  };
}

const ENERGY_UNITS: Record<string, number> = { mj: 1e6, kj: 1e3, j: 1, wh: 3600, kwh: 3.6e6 };

/** Per GPU: the counter's max minus min over the run (it only rises), in joules. */
function telemetryEnergy(root: Fields): { energy: ImportedEnergy; host?: string; gpus: { index: number; name: string }[] } | undefined {
  if (!root.has('telemetry_data.endpoints')) return undefined;
  const endpoints = root.sub('telemetry_data.endpoints');
  const perGpu: ImportedEnergy['perGpu'] = [];
  const gpus: { index: number; name: string }[] = [];
  let host: string | undefined;
  for (const url of Object.keys(endpoints.root as JsonObject)) {
    const list = endpoints.sub(`${url}.gpus`);
    for (const key of Object.keys(list.root as JsonObject)) {
      const g = list.sub(key);
      const name = g.has('metrics.nvidia_energy_consumption') ? 'metrics.nvidia_energy_consumption' : 'metrics.energy_consumption';
      if (!g.has(name)) continue;
      const unit = (g.optStr(`${name}.unit`) ?? '').toLowerCase();
      // "MJ" is megajoules here (DCGM reports mJ; AIPerf displays MJ): case matters only between these two.
      const k = g.optStr(`${name}.unit`) === 'mJ' ? 1e-3 : ENERGY_UNITS[unit];
      if (k === undefined) g.fail(`${name}.unit`, `expected an energy unit (MJ, kJ, J), found ${JSON.stringify(g.optStr(`${name}.unit`))}`);
      const index = g.optNum('gpu_index') ?? gpus.length;
      host ??= g.optStr('hostname');
      const label = `${g.optStr('hostname') ?? url}:${index}`;
      perGpu.push({ gpu: label, energyJ: (g.num(`${name}.max`) - g.num(`${name}.min`)) * k });
      gpus.push({ index, name: g.optStr('gpu_name') ?? 'GPU' });
    }
  }
  if (!perGpu.length) return undefined;
  const start = root.optStr('telemetry_data.summary.start_time');
  const end = root.optStr('telemetry_data.summary.end_time');
  const durationS = start && end ? (Date.parse(end) - Date.parse(start)) / 1000 : NaN;
  return { energy: { method: 'counter', totalJ: perGpu.reduce((s, g) => s + g.energyJ, 0), perGpu, durationS }, host, gpus };
}

function aiperfRun(
  root: Fields,
  points: ImportedPoint[],
  files: string[],
  notes: string[],
  version: string | undefined,
  telemetry: { host?: string; gpus: { index: number; name: string }[] } | undefined,
): ImportedRun {
  // Up to 0.8 `endpoint.model_names`; 0.10 (schema 1.3) moved the models to `models.items[].name`.
  const model = root.optStr('input_config.endpoint.model_names.0') ?? root.optStr('input_config.models.items.0.name');
  const started = root.optStr('start_time');
  return {
    tool: 'aiperf',
    version,
    files,
    name: `AIPerf · ${model?.split('/').pop() ?? 'unknown model'}`,
    model,
    started: started ?? (points[0].start !== undefined ? new Date(points[0].start * 1000).toISOString() : undefined),
    host: telemetry?.host,
    gpus: telemetry?.gpus,
    points,
    notes,
  };
}

/**
 * `gpu_telemetry_export.jsonl`: one DCGM scrape per line and GPU (`timestamp_ns`, `gpu_uuid`, `telemetry_data`
 * with `energy_consumption` in MJ, the GPU's counter since boot). Energy per GPU is the counter's rise between
 * the first and the last scrape inside `window` (epoch seconds); a GPU scraped by several endpoints is counted
 * once, from the endpoint with the most scrapes. Undefined, with the reason, when the scrapes do not cover it.
 */
export function aiperfTelemetryEnergy(
  text: string,
  file: string,
  window: { start: number; end: number } | undefined,
): { energy: ImportedEnergy; host?: string; gpus: { index: number; name: string }[] } | { reason: string } {
  type Scrape = { t: number; url: string; mj: number; index: number; name: string; host?: string };
  const byGpu = new Map<string, Scrape[]>();
  for (const f of parseJsonLines(text, file)) {
    const key = f.has('telemetry_data.nvidia_energy_consumption') ? 'telemetry_data.nvidia_energy_consumption' : 'telemetry_data.energy_consumption';
    if (!f.has(key)) continue;
    const uuid = f.optStr('gpu_uuid') ?? `${f.optStr('hostname')}:${f.num('gpu_index')}`;
    const scrape = { t: f.num('timestamp_ns') / 1e9, url: f.optStr('telemetry_source_url') ?? '', mj: f.num(key), index: f.num('gpu_index'), name: f.optStr('gpu_model_name') ?? 'GPU', host: f.optStr('hostname') };
    byGpu.set(uuid, [...(byGpu.get(uuid) ?? []), scrape]);
  }
  if (!byGpu.size) return { reason: `${file} has no energy_consumption readings` };
  const perGpu: ImportedEnergy['perGpu'] = [];
  const gpus: { index: number; name: string }[] = [];
  let from = Infinity;
  let to = -Infinity;
  let host: string | undefined;
  for (const [uuid, scrapes] of byGpu) {
    const urls = new Map<string, number>();
    for (const s of scrapes) urls.set(s.url, (urls.get(s.url) ?? 0) + 1);
    const url = [...urls.entries()].sort((a, b) => b[1] - a[1])[0][0];
    const inside = scrapes.filter((s) => s.url === url && (!window || (s.t >= window.start && s.t <= window.end))).sort((a, b) => a.t - b.t);
    if (inside.length < 2) return { reason: `${file}: GPU ${uuid} has ${inside.length} scrape(s) inside the benchmark's window, too few for an energy difference` };
    const [first, last] = [inside[0], inside[inside.length - 1]];
    perGpu.push({ gpu: `${first.host ?? url}:${first.index}`, energyJ: (last.mj - first.mj) * 1e6 });
    gpus.push({ index: first.index, name: first.name });
    host ??= first.host;
    from = Math.min(from, first.t);
    to = Math.max(to, last.t);
  }
  return { energy: { method: 'counter', totalJ: perGpu.reduce((s, g) => s + g.energyJ, 0), perGpu, durationS: to - from }, host, gpus };
}

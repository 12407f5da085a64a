/** Which tool wrote a file, from its name and its first bytes, and reading any of them. */
import { aiperfTelemetryEnergy, readAiperfCsv, readAiperfJson, readAiperfJsonl } from './aiperf';
import { isObject, parseJson } from './fields';
import { readGuidellm } from './guidellm';
import { readInferencePerf, STAGE_FILE, SUMMARY_FILE, type NamedText } from './inference-perf';
import { readMlEnergy } from './mlenergy';
import { ImportError, type ImportedRun } from './types';
import { readVllmJson, readVllmSweepCsv } from './vllm';

export type Format =
  | 'vllm'
  | 'vllm-sweep-csv'
  | 'guidellm'
  | 'aiperf-json'
  | 'aiperf-csv'
  | 'aiperf-jsonl'
  | 'aiperf-telemetry'
  | 'inference-perf'
  | 'mlenergy';

export const FORMATS_TEXT =
  'vLLM bench serve result JSON or sweep summary.csv, GuideLLM benchmarks.json, AIPerf profile_export_aiperf.json/.csv or profile_export.jsonl, ' +
  'inference-perf *_lifecycle_metrics.json, ML.ENERGY results.json';

/** The format of one file, or undefined when it is none Wattbench reads. A truncated file is still recognised by its start. */
export function detectFormat(text: string, fileName: string): Format | undefined {
  const base = fileName.split(/[\\/]/).pop() ?? fileName;
  const head = text.slice(0, 4096).trimStart();
  if (/\.csv$/i.test(base)) {
    const first = head.split(/\r?\n/, 1)[0];
    if (/^"?Metric"?,/.test(first)) return 'aiperf-csv';
    if (/(^|,)completed(,|$)/.test(first) && /(^|,)duration(,|$)/.test(first)) return 'vllm-sweep-csv';
    return undefined;
  }
  if (STAGE_FILE.test(base) || base === SUMMARY_FILE || /"load_summary"\s*:|^\{\s*"successes"\s*:/.test(head)) return 'inference-perf';
  if (base === 'gpu_telemetry_export.jsonl' || (/"timestamp_ns"/.test(head) && /"gpu_uuid"/.test(head) && /"telemetry_data"/.test(head))) return 'aiperf-telemetry';
  if (/\.jsonl$/i.test(base) || /^\{"metadata":\s*\{"session_num"/.test(head)) {
    if (/"request_start_ns"/.test(head) || /"x_request_id"/.test(head)) return 'aiperf-jsonl';
  }
  // A whole object when it parses; else (truncated) the keys seen in its start.
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const keys = (isObject(parsed) ? Object.keys(parsed) : Array.isArray(parsed) && isObject(parsed[0]) ? Object.keys(parsed[0]) : [...head.matchAll(/"([A-Za-z_0-9]+)"\s*:/g)].map((m) => m[1])).join(' ');
  const has = (k: string) => new RegExp(`(^| )${k}( |$)`).test(keys);
  if ((has('benchmarks') && (has('metadata') || !has('completed'))) || has('guidellm_version')) return 'guidellm';
  if (has('steady_state_energy') || has('steady_state_measurement') || has('steady_state_duration')) return 'mlenergy';
  if (has('request_throughput') && /"request_throughput"\s*:\s*\{/.test(head)) return 'aiperf-json';
  if (has('schema_version') && has('aiperf_version')) return 'aiperf-json';
  if (has('completed') || has('duration') || has('total_output_tokens')) return 'vllm';
  // A file cut off before any telling key: the names the tools give their files.
  return ({ 'benchmarks.json': 'guidellm', 'profile_export_aiperf.json': 'aiperf-json', 'profile_export.jsonl': 'aiperf-jsonl' } as Record<string, Format>)[base];
}

/**
 * The runs in `files` (name — a path — and text each). Files of one folder that are parts of one run go
 * together: inference-perf's lifecycle reports (its stages), and AIPerf's exports with their GPU telemetry.
 * Every other file makes its own run. Throws ImportError naming the file (and field) that fails.
 */
export function readResults(files: NamedText[]): ImportedRun[] {
  const runs: ImportedRun[] = [];
  const lifecycle = new Map<string, NamedText[]>();
  const aiperf = new Map<string, { format: Format; file: NamedText }[]>();
  const folderOf = (name: string) => name.slice(0, name.length - (name.split(/[\\/]/).pop() ?? '').length);
  for (const file of files) {
    const format = detectFormat(file.text, file.name);
    if (!format) {
      // A JSON file that does not parse says where it breaks, whatever tool wrote it.
      if (/\.json$/i.test(file.name)) parseJson(file.text, file.name);
      throw new ImportError(file.name, undefined, `not a result file of a tool Wattbench reads (${FORMATS_TEXT})`);
    }
    const folder = folderOf(file.name);
    if (format === 'inference-perf') lifecycle.set(folder, [...(lifecycle.get(folder) ?? []), file]);
    else if (format.startsWith('aiperf-')) aiperf.set(folder, [...(aiperf.get(folder) ?? []), { format, file }]);
    else runs.push(readOne(format as SingleFormat, file));
  }
  for (const group of lifecycle.values()) runs.push(readInferencePerf(group));
  for (const group of aiperf.values()) runs.push(readAiperfFolder(group));
  return runs;
}

/** An AIPerf artifact folder's files: the fullest export (JSON, else CSV, else the records), with its telemetry. */
function readAiperfFolder(group: { format: Format; file: NamedText }[]): ImportedRun {
  const exports = (['aiperf-json', 'aiperf-csv', 'aiperf-jsonl'] as const).flatMap((f) => group.filter((g) => g.format === f));
  const telemetry = group.find((g) => g.format === 'aiperf-telemetry');
  if (!exports.length) {
    throw new ImportError(telemetry!.file.name, undefined, 'GPU telemetry alone is no run: import it with profile_export_aiperf.json or profile_export.jsonl from the same folder');
  }
  const [{ format, file }, ...others] = exports;
  const run = readOne(format as SingleFormat, file);
  for (const other of others) run.notes.push(`${other.file.name.split(/[\\/]/).pop()} is the same AIPerf run in another format: not read.`);
  if (!telemetry) return run;
  const point = run.points[0];
  const window = point.start !== undefined ? { start: point.start, end: point.start + point.durationS } : undefined;
  const found = aiperfTelemetryEnergy(telemetry.file.text, telemetry.file.name, window);
  const name = telemetry.file.name.split(/[\\/]/).pop();
  if ('reason' in found) {
    run.notes.push(`GPU telemetry not used: ${found.reason}.`);
    return run;
  }
  point.energy = found.energy;
  run.gpus = found.gpus;
  run.host ??= found.host;
  run.files.push(telemetry.file.name);
  run.notes = run.notes.filter((n) => !/^(No GPU energy|No energy|Energy:)/.test(n));
  run.notes.push(
    `Energy: DCGM's GPU energy counter in ${name}, its rise between the first and the last scrape inside the benchmark's window ` +
      `(${found.energy.durationS.toFixed(2)} s of ${point.durationS.toFixed(2)} s), each GPU counted once.`,
  );
  return run;
}

type SingleFormat = Exclude<Format, 'inference-perf' | 'aiperf-telemetry'>;

function readOne(format: SingleFormat, { name, text }: NamedText): ImportedRun {
  switch (format) {
    case 'vllm':
      return readVllmJson(text, name);
    case 'vllm-sweep-csv':
      return readVllmSweepCsv(text, name);
    case 'guidellm':
      return readGuidellm(text, name);
    case 'aiperf-json':
      return readAiperfJson(text, name);
    case 'aiperf-csv':
      return readAiperfCsv(text, name);
    case 'aiperf-jsonl':
      return readAiperfJsonl(text, name);
    case 'mlenergy':
      return readMlEnergy(text, name);
  }
}

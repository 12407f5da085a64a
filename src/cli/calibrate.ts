import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { calibrateDetailed, type Measurement } from '../core/estimate/calibrate';
import type { ModelShape } from '../core/estimate/catalog';
import { mlEnergyMeasurements, parseCsv, parseMlEnergyCsv } from '../core/estimate/published';
import { measurementsFromRuns } from '../core/workspace/calibration';
import { readMeta } from '../core/store/store';
import { table } from './format';
import { type CliIO, parseArgs, stringFlag, UsageError } from './io';

export const calibrateUsage =
  'wattbench calibrate (--from-csv F.csv [--engine vllm] [--input-tokens N --output-tokens N] | RUNDIR... [--include-simulated]) -o P.json   fit the estimator to measurements';

export async function calibrateCommand(argv: string[], io: CliIO): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['json', 'include-simulated']);
  const out = stringFlag(flags, 'o') ?? stringFlag(flags, 'output');
  if (!out) throw new UsageError('calibrate needs -o P.json, where the profile is written');
  const csv = stringFlag(flags, 'from-csv');
  let measurements: Measurement[];
  if (csv) {
    const text = readFileSync(resolve(io.cwd, csv), 'utf8');
    const rows = parseMlEnergyCsv(text);
    const cells = parseCsv(text);
    const number = (name: string) => {
      const v = stringFlag(flags, name);
      if (v !== undefined && !(Number(v) > 0)) throw new UsageError(`--${name} must be a positive number`);
      return v === undefined ? undefined : Number(v);
    };
    measurements = mlEnergyMeasurements(rows, { inputTokens: number('input-tokens'), outputTokens: number('output-tokens'), engine: stringFlag(flags, 'engine') ?? 'vllm' }).map((m, i) => ({ ...m, model: typeof m.model === 'string' ? m.model : modelWithCsvColumns(m.model, cells[i] ?? {}, i + 2), source: m.source ?? `${basename(csv)} row ${i + 2}` }));
  } else {
    if (positional.length === 0) throw new UsageError('calibrate needs --from-csv F.csv or one or more run directories');
    const records = positional.map((p) => {
      const dir = resolve(io.cwd, p);
      if (!existsSync(`${dir}/meta.json`)) throw new UsageError(`${p} is not a Wattbench run directory (no meta.json)`);
      return { id: basename(dir), dir, meta: readMeta(dir) };
    });
    const found = measurementsFromRuns(records, { includeSimulated: flags.has('include-simulated') });
    for (const s of found.skipped) io.err(`skipped ${s}`);
    if (found.simulated) io.err(`${found.simulated} simulated run(s) left out: add --include-simulated to fit the estimator to the simulator`);
    measurements = found.measurements;
  }
  if (measurements.length === 0) {
    io.err('no measurements to calibrate on');
    return 1;
  }
  const result = calibrateDetailed(measurements);
  for (const s of result.skipped) io.err(`skipped ${s.measurement.source ?? 'a measurement'}: ${s.reason}`);
  const target = resolve(io.cwd, out);
  if (!existsSync(dirname(target))) throw new UsageError(`the folder of ${out} does not exist`);
  writeFileSync(target, `${JSON.stringify(result.profile, null, 2)}\n`);
  if (flags.has('json')) io.out(JSON.stringify(result.profile, null, 2));
  else {
    io.out(table(
      ['GPU', 'model', 'engine', 'points', 'fit error', 'leave-one-out error'],
      result.profile.entries.map((e) => [e.key.gpu, e.key.model, e.key.engine, e.n, `${(e.fit_error * 100).toFixed(1)}%`, e.loo_error === null ? '–' : `${(e.loo_error * 100).toFixed(1)}%`]),
    ));
    io.out(`wrote ${out}; use it with \`wattbench estimate FILE --profile ${out}\``);
  }
  return 0;
}

/** CSV columns that describe a model beyond the dense shape the ML.ENERGY reader keeps (MoE, head width). */
const MODEL_COLUMNS: [string, 'experts' | 'expertsPerToken' | 'activeParamsB' | 'headDim' | 'vocab'][] = [
  ['experts', 'experts'],
  ['experts_per_token', 'expertsPerToken'],
  ['active_params_b', 'activeParamsB'],
  ['head_dim', 'headDim'],
  ['vocab', 'vocab'],
];

/** A row's model with its MoE and head-width columns applied, so a mixture-of-experts row is not fitted as dense. */
export function modelWithCsvColumns(model: ModelShape, cells: Record<string, string>, line: number): ModelShape {
  const out: ModelShape = { ...model };
  for (const [column, key] of MODEL_COLUMNS) {
    if (cells[column] === undefined) continue;
    const v = Number(cells[column]);
    if (!(v > 0)) throw new UsageError(`CSV row ${line}: ${column} is not a positive number ("${cells[column]}")`);
    out[key] = v;
  }
  return out;
}

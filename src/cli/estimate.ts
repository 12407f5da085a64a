import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { datasetLengthsFrom } from '../core/workspace/datasets';
import { formatDiagnostic, hasErrors } from '../core/config';
import { loadConfigFile } from '../core/workspace/configs';
import { formatDuration, formatEnergy } from '../core/config/units';
import { estimateConfig } from '../core/estimate/config-estimate';
import { cliHubCacheDir } from '../core/models/hub-cache';
import { describeProvenance, resolveShape } from '../core/models/resolve-shape';
import { type CalibrationProfile, parseCalibrationProfile } from '../core/estimate/profile';
import { table } from './format';
import { type CliIO, parseArgs, stringFlag, UsageError } from './io';

export const estimateUsage =
  'wattbench estimate FILE [--profile P.json] [--json] [--offline]   predict runtime, energy and cost of every point (--offline: never ask the Hugging Face Hub for a model\'s config.json)';

export function readProfile(path: string | undefined, cwd: string): CalibrationProfile | undefined {
  if (!path) return undefined;
  const full = resolve(cwd, path);
  if (!existsSync(full)) throw new UsageError(`calibration profile ${path} not found`);
  const parsed = parseCalibrationProfile(readFileSync(full, 'utf8'));
  if ('error' in parsed) throw new UsageError(`${path}: ${parsed.error}`);
  return parsed.profile;
}

const round = (v: number, digits = 4) => (Number.isFinite(v) ? Number(v.toPrecision(digits)) : null);

export async function estimateCommand(argv: string[], io: CliIO): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['json', 'offline']);
  if (positional.length !== 1) throw new UsageError('estimate needs exactly one config file');
  const loaded = loadConfigFile(resolve(io.cwd, positional[0]));
  if (hasErrors(loaded.diagnostics) || !loaded.config) {
    for (const d of loaded.diagnostics) io.err(formatDiagnostic(positional[0], d));
    return 1;
  }
  const profile = readProfile(stringFlag(flags, 'profile'), io.cwd);
  // The model's shape: the config's keys, the catalog, a local config.json, the HF cache, kept Hub answers, the Hub.
  const shape = await resolveShape(loaded.config.model, {
    env: process.env,
    baseDir: dirname(loaded.path),
    hubCacheDir: cliHubCacheDir(process.env),
    fetchHub: !flags.has('offline'),
  });
  if (!shape.ok) {
    io.err(`${positional[0]}: cannot estimate: ${shape.message}`);
    return 1;
  }
  const estimate = estimateConfig(loaded.config, loaded.points, { profile, shapes: () => shape.shape, datasets: datasetLengthsFrom(dirname(loaded.path)) });
  if (estimate.error && !estimate.total) {
    io.err(`${positional[0]}: cannot estimate: ${estimate.error}`);
    return 1;
  }
  const modelFrom = `${describeProvenance(shape.provenance)}${shape.notes.length ? ` (${shape.notes.join('; ')})` : ''}`;
  if (flags.has('json')) {
    io.out(
      JSON.stringify(
        {
          name: loaded.config.name,
          model: estimate.model?.id,
          model_shape_from: { kind: shape.provenance.kind, where: shape.provenance.where, notes: shape.notes },
          gpu: estimate.gpu?.id,
          assumptions: estimate.assumptions,
          total: estimate.total,
          points: estimate.points.map((p) => ({
            id: p.point,
            label: p.label,
            params: p.params,
            prediction: p.prediction && {
              runtime_s: p.prediction.runtime_s,
              output_tokens_per_s: p.prediction.output_tokens_per_s,
              avg_power_w: p.prediction.avg_power_w,
              energy_j: p.prediction.energy_j,
              j_per_output_token: p.prediction.j_per_output_token,
              j_per_response: p.prediction.j_per_response,
              ttft_s: p.prediction.ttft_s,
              low: p.prediction.low,
              high: p.prediction.high,
              basis: p.prediction.basis,
              basis_detail: p.prediction.basisDetail,
              breakdown: p.prediction.breakdown,
            },
            idealized: p.idealized,
            error: p.error,
          })),
        },
        null,
        2,
      ),
    );
    return estimate.points.some((p) => p.error) ? 1 : 0;
  }
  io.out(`${loaded.config.name}: ${estimate.model?.id} on ${loaded.config.gpus.count}× ${estimate.gpu?.id}`);
  io.out(`  model ${modelFrom}`);
  for (const a of estimate.assumptions) io.out(`  assumed: ${a}`);
  io.out(
    table(
      ['point', 'time', 'tok/s', 'W/GPU', 'energy', 'J/token', 'J/resp', 'band J/token', 'idealized s/req', 'basis'],
      estimate.points.map((p) =>
        p.prediction
          ? [
              p.point,
              formatDuration(p.prediction.runtime_s),
              String(round(p.prediction.output_tokens_per_s, 4)),
              String(Math.round(p.prediction.avg_power_w)),
              formatEnergy(p.prediction.energy_j),
              String(round(p.prediction.j_per_output_token, 3)),
              String(round(p.prediction.j_per_response, 3)),
              `${round(p.prediction.low.j_per_output_token, 2)}–${round(p.prediction.high.j_per_output_token, 2)}`,
              String(round(p.idealized?.runtime_s ?? NaN, 3)),
              p.prediction.basis,
            ]
          : [p.point, `error: ${p.error}`, '', '', '', '', '', '', '', ''],
      ),
    ),
  );
  const t = estimate.total!;
  io.out(`total: ≈ ${formatDuration(t.runtime_s)} · ≈ ${formatEnergy(t.energy_j)} · ${round(t.j_per_output_token, 2)} J/token · $${round(t.usd, 3)} · ${round(t.gco2, 3)} gCO2 (${t.basis})`);
  return estimate.points.some((p) => p.error) ? 1 : 0;
}

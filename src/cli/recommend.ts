import { relative, resolve } from 'node:path';
import { formatDiagnostic, hasErrors } from '../core/config';
import { loadConfigFile } from '../core/workspace/configs';
import { measuredRunsOf, recommendForConfig } from '../core/workspace/recommend';
import { OBJECTIVES, recommendationText, type Objective } from '../core/recommend';
import { RunStore } from '../core/store/store';
import { readProfile } from './estimate';
import { type CliIO, parseArgs, stringFlag, UsageError } from './io';

export const recommendUsage =
  'wattbench recommend FILE [--objective j_per_token|usd_per_mtoken] [--profile P.json] [--workspace DIR] [--json]   the cheapest point that meets the SLO';

export async function recommendCommand(argv: string[], io: CliIO): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['json']);
  if (positional.length !== 1) throw new UsageError('recommend needs exactly one config file');
  const objective = (stringFlag(flags, 'objective') ?? 'j_per_token') as Objective;
  if (!OBJECTIVES.includes(objective)) throw new UsageError(`--objective must be one of ${OBJECTIVES.join(', ')}`);
  const file = resolve(io.cwd, positional[0]);
  const loaded = loadConfigFile(file);
  if (hasErrors(loaded.diagnostics) || !loaded.config) {
    for (const d of loaded.diagnostics) io.err(formatDiagnostic(positional[0], d));
    return 1;
  }
  const workspace = resolve(io.cwd, stringFlag(flags, 'workspace') ?? '.');
  const runs = measuredRunsOf(RunStore.forWorkspace(workspace).list(), loaded.config, relative(workspace, file));
  const result = recommendForConfig(loaded.config, loaded.points, runs, { objective, profile: readProfile(stringFlag(flags, 'profile'), io.cwd) });
  if (!result.prediction && !result.measured) {
    io.err(`${positional[0]}: cannot recommend: ${result.predictionError}`);
    return 1;
  }
  if (flags.has('json')) {
    io.out(JSON.stringify({ name: loaded.config.name, ...result }, null, 2));
    return 0;
  }
  io.out(`${loaded.config.name}:`);
  if (result.measured) for (const line of recommendationText(result.measured)) io.out(line);
  if (result.prediction) for (const line of recommendationText(result.prediction)) io.out(line);
  else io.out(`no prediction: ${result.predictionError}`);
  return 0;
}

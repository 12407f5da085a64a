import { resolve } from 'node:path';
import { formatDiagnostic, hasErrors } from '../core/config';
import { loadConfigFile } from '../core/workspace/configs';
import { type CliIO, parseArgs, UsageError } from './io';

export const expandUsage = 'wattbench expand FILE [--json]        list the sweep points with ids, labels and parameters';

export async function expandCommand(argv: string[], io: CliIO): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['json']);
  if (positional.length !== 1) throw new UsageError('expand needs exactly one config file');
  const file = positional[0];
  const loaded = loadConfigFile(resolve(io.cwd, file));
  if (hasErrors(loaded.diagnostics)) {
    for (const d of loaded.diagnostics) io.err(formatDiagnostic(file, d));
    return 1;
  }
  const points = loaded.points.map((p) => ({ id: p.id, label: p.label, index: p.index, params: p.params, gpu_count: p.gpuCount, power_cap_w: p.powerCapW ?? null, workload: p.workload }));
  if (flags.has('json')) io.out(JSON.stringify({ name: loaded.config!.name, points }, null, 2));
  else for (const p of points) io.out(`${String(p.index + 1).padStart(4)}  ${p.id.padEnd(32)}  ${p.label}`);
  return 0;
}

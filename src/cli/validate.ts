import { resolve } from 'node:path';
import { formatDiagnostic, hasErrors } from '../core/config';
import { loadConfigFile } from '../core/workspace/configs';
import { type CliIO, parseArgs, UsageError } from './io';

export const validateUsage = 'wattbench validate FILE... [--json]   check configs; exit 1 on any error';

export async function validateCommand(argv: string[], io: CliIO): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['json']);
  if (positional.length === 0) throw new UsageError('validate needs at least one config file');
  let failed = false;
  const report: object[] = [];
  for (const file of positional) {
    let loaded;
    try {
      loaded = loadConfigFile(resolve(io.cwd, file));
    } catch (error) {
      io.err(`${file}:1:1: error: cannot read the file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      failed = true;
      continue;
    }
    if (hasErrors(loaded.diagnostics)) failed = true;
    if (flags.has('json')) report.push({ file, valid: !hasErrors(loaded.diagnostics), points: loaded.points.length, diagnostics: loaded.diagnostics });
    else {
      for (const d of loaded.diagnostics) (d.severity === 'error' ? io.err : io.out)(formatDiagnostic(file, d));
      if (!hasErrors(loaded.diagnostics)) io.out(`${file}: ok (${loaded.points.length} point${loaded.points.length === 1 ? '' : 's'})`);
    }
  }
  if (flags.has('json')) io.out(JSON.stringify(report, null, 2));
  return failed ? 1 : 0;
}

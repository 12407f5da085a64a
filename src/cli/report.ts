import { resolve } from 'node:path';
import { summaryCsv } from '../core/store/csv';
import { loadRunReport, NotARunError } from '../core/workspace/reports';
import { summaryTable } from './format';
import { type CliIO, parseArgs, UsageError } from './io';

export const reportUsage = 'wattbench report RUNDIR [--csv] [--json]   re-summarise a stored run from its events';

export async function reportCommand(argv: string[], io: CliIO): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['csv', 'json']);
  if (positional.length !== 1) throw new UsageError('report needs exactly one run directory');
  let report;
  try {
    report = await loadRunReport(resolve(io.cwd, positional[0]));
  } catch (error) {
    if (!(error instanceof NotARunError)) throw error;
    io.err(`${positional[0]}: not a Wattbench run directory (no meta.json)`);
    return 1;
  }
  const { summary, denoised, run } = report;
  const meta = run.meta;
  if (flags.has('csv')) io.out(summaryCsv(summary, meta).trimEnd());
  else if (flags.has('json')) io.out(JSON.stringify({ ...summary, denoised }, null, 2));
  else {
    io.out(`run ${meta.run_id} (${meta.config_name}) on ${meta.target}: ${meta.status}${meta.error ? ` — ${meta.error}` : ''}`);
    io.out(summaryTable(summary));
    for (const [point, d] of Object.entries(denoised))
      io.out(`denoised runtime of ${point} (${d.repeats} repeats): α ${d.alpha_s.toPrecision(3)} s + β ${d.beta_s.toPrecision(3)} s/token + overhead ${d.overhead_s.toPrecision(3)} s`);
  }
  return 0;
}

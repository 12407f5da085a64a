import { resolve } from 'node:path';
import { ImportError, importFiles, TOOL_NAMES } from '../core/import';
import { RunStore } from '../core/store/store';
import { type CliIO, parseArgs, stringFlag, UsageError } from './io';

export const importUsage =
  'wattbench import FILE|DIR... [--store DIR]   store other tools\' results (vLLM bench serve, GuideLLM, AIPerf, inference-perf, ML.ENERGY) as runs';

export async function importCommand(argv: string[], io: CliIO): Promise<number> {
  const { positional, flags } = parseArgs(argv);
  if (!positional.length) throw new UsageError('import needs at least one result file or folder');
  const storeDir = stringFlag(flags, 'store');
  const root = storeDir ? resolve(io.cwd, storeDir) : RunStore.forWorkspace(io.cwd).root;
  let saved;
  try {
    saved = importFiles(root, positional.map((p) => resolve(io.cwd, p)));
  } catch (error) {
    if (!(error instanceof ImportError)) throw error;
    io.err(`wattbench import: ${error.message}`);
    io.err('nothing was imported');
    return 1;
  }
  for (const { run, id, dir } of saved) {
    const points = run.points.length === 1 ? '1 point' : `${run.points.length} points`;
    const energy = run.points.some((p) => p.energy) ? 'with energy' : 'no energy in the file';
    io.out(`${id}: ${TOOL_NAMES[run.tool]}${run.version ? ` ${run.version}` : ''} · ${run.model ?? 'model not stated'} · ${points} · ${energy}`);
    io.out(`  ${dir}`);
  }
  return 0;
}

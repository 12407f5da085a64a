/**
 * The files a user names, read from disk: a file as it is, a folder by the result files each tool leaves in
 * it (a vLLM sweep's summary.csv, AIPerf's artifact folder, an inference-perf report folder, …). Every file
 * is read and checked before anything is written, so one bad file imports nothing.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { readResults } from './detect';
import type { NamedText } from './inference-perf';
import { STAGE_FILE, SUMMARY_FILE } from './inference-perf';
import { saveImported, type ImportedMeta } from './save';
import { ImportError, type ImportedRun } from './types';

export interface SourceFile extends NamedText {
  path: string;
  mtime: Date;
}

/** A folder's result files, the most complete of each tool's. */
function pickInFolder(dir: string): string[] {
  const names = readdirSync(dir);
  const has = (n: string) => names.includes(n);
  const picked: string[] = [];
  if (has('summary.csv')) picked.push('summary.csv');
  if (has('benchmarks.json')) picked.push('benchmarks.json');
  const aiperf = ['profile_export_aiperf.json', 'profile_export_aiperf.csv', 'profile_export.jsonl'].find(has);
  if (aiperf) picked.push(aiperf, ...(has('gpu_telemetry_export.jsonl') ? ['gpu_telemetry_export.jsonl'] : []));
  const stages = names.filter((n) => STAGE_FILE.test(n));
  picked.push(...(stages.length ? stages : has(SUMMARY_FILE) ? [SUMMARY_FILE] : []));
  if (has('results.json')) picked.push('results.json');
  if (picked.length) return picked.map((n) => join(dir, n));
  return names.filter((n) => /\.(json|jsonl|csv)$/i.test(n)).sort().map((n) => join(dir, n));
}

export function readSourceFiles(paths: string[]): SourceFile[] {
  const files: SourceFile[] = [];
  for (const path of paths) {
    let stat;
    try {
      stat = statSync(path);
    } catch {
      throw new ImportError(path, undefined, 'no such file or folder');
    }
    const list = stat.isDirectory() ? pickInFolder(path) : [path];
    if (!list.length) throw new ImportError(path, undefined, 'a folder with no result file in it');
    for (const file of list) files.push({ path: file, name: basename(file), text: readFileSync(file, 'utf8'), mtime: statSync(file).mtime });
  }
  return files;
}

/** Reads every file (named by its path in messages) and, when all of them read, stores each run. */
export function importFiles(storeRoot: string, paths: string[], now = new Date()): { run: ImportedRun; id: string; dir: string; meta: ImportedMeta }[] {
  const files = readSourceFiles(paths);
  const runs = readResults(files.map((f) => ({ name: f.path, text: f.text }))).map((run) => ({
    run: { ...run, files: run.files.map((p) => basename(p)) },
    sources: files.filter((f) => run.files.includes(f.path)),
  }));
  return runs.map(({ run, sources }) => {
    const mtime = sources.reduce((t, f) => (f.mtime < t ? f.mtime : t), sources[0]?.mtime ?? now);
    const saved = saveImported(storeRoot, run, sources.map((f) => ({ name: f.name, content: f.text })), { now, fallbackStarted: mtime.toISOString() });
    return { run, ...saved };
  });
}

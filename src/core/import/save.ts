/**
 * An imported run written to the results store like any other: `<store>/<run-id>/` with `meta.json` (saying
 * where it came from in `source`), `summary.json`, and the tool's own files copied beside them. No events:
 * the run's figures are the stored summary (`loadRunReport` reads a run without events that way).
 * Written into a hidden folder and moved into place, `meta.json` last, so no half-written run is ever listed.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newRunId, type RunMeta } from '../store/store';
import { importedSummary } from './summary';
import { TOOL_NAMES, type ImportedRun } from './types';

/** meta.json of an imported run: a RunMeta with where it came from. */
export interface ImportedMeta extends RunMeta {
  /** "imported from <tool> <version>" (docs/protocol.md). */
  source: string;
  imported: { tool: string; version: string | null; files: string[]; model?: string; at: string };
}

export interface RawFile {
  name: string;
  content: string | Buffer;
}

export function sourceOf(run: ImportedRun): string {
  return `imported from ${TOOL_NAMES[run.tool]} ${run.version ?? '(version not stated in the file)'}`;
}

/** The name a copied file gets in the run folder: `source-<name>`, with characters a run file may not have replaced. */
export const rawName = (name: string) => `source-${(name.split(/[\\/]/).pop() ?? name).replace(/[^A-Za-z0-9._-]/g, '_')}`;

/**
 * Writes `run` into the store at `storeRoot` and returns its id and folder. `fallbackStarted` (e.g. the file's
 * modification time) is the start when the file states none.
 */
export function saveImported(storeRoot: string, run: ImportedRun, raw: RawFile[], options: { now?: Date; fallbackStarted?: string } = {}): { id: string; dir: string; meta: ImportedMeta } {
  const now = options.now ?? new Date();
  const id = newRunId(run.name, now);
  const started = run.started ?? options.fallbackStarted ?? now.toISOString();
  const meta: ImportedMeta = {
    run_id: id,
    config_name: run.name,
    target: run.host ?? 'imported',
    status: run.points.some((p) => p.status === 'ok') ? 'ok' : 'error',
    started,
    simulated: false,
    ...(run.gpus?.length && { gpus: run.gpus }),
    points: run.points.map((p) => ({ id: p.id, label: p.label, params: p.params })),
    remotes: [],
    notes: [
      `${sourceOf(run)}${run.model ? ` (model ${run.model})` : ''}: ${run.files.join(', ')}`,
      ...(run.started ? [] : [`The file states no start time: ${options.fallbackStarted ? "the file's modification time" : 'the import time'} stands in for it.`]),
      ...run.notes,
    ],
    source: sourceOf(run),
    imported: { tool: run.tool, version: run.version ?? null, files: run.files, ...(run.model && { model: run.model }), at: now.toISOString() },
  };
  const summary = importedSummary(run, id);
  mkdirSync(storeRoot, { recursive: true });
  const tmp = join(storeRoot, `.import-${id}`);
  const dir = join(storeRoot, id);
  try {
    mkdirSync(tmp);
    for (const file of raw) writeFileSync(join(tmp, rawName(file.name)), file.content);
    writeFileSync(join(tmp, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(join(tmp, 'meta.json.pending'), `${JSON.stringify(meta, null, 2)}\n`);
    renameSync(tmp, dir);
  } catch (error) {
    rmSync(tmp, { recursive: true, force: true });
    throw error;
  }
  // Last: a folder without meta.json is not a run, so until here the store lists nothing of it.
  renameSync(join(dir, 'meta.json.pending'), join(dir, 'meta.json'));
  return { id, dir, meta };
}

// Several runs in one result view (Compare Runs): how each run is named, on the charts and on every table row.
import type { ResultRun } from '../src/core/protocol/webview';
import { esc } from './html';

/**
 * How the view names each of `runs`: one run by its title; several by title and start, the name that
 * every chart legend and every table row of a comparison carries (`row` is undefined for a single run).
 */
export function runNames(runs: ResultRun[]): RunNames {
  const name = (r: ResultRun) => (runs.length > 1 ? `${r.title} · ${started(r)}` : r.title);
  return { name, row: (r) => (runs.length > 1 ? name(r) : undefined) };
}

export interface RunNames {
  name(r: ResultRun): string;
  row(r: ResultRun): string | undefined;
}

/** "2025-01-31 12:00" of the run's ISO start. */
const started = (r: ResultRun) => r.started.slice(0, 16).replace('T', ' ');

/** In a comparison every table row says which run it is from; a single run's tables have no run column. */
export const runHead = (run?: string) => (run === undefined ? '' : '<th>run</th>');
export const runCell = (run?: string) => (run === undefined ? '' : `<td>${esc(run)}</td>`);

/** Whether any of `runs` was judged against an SLO: the SLO table and the Pareto legend appear only then. */
export const anySlo = (runs: ResultRun[]) => runs.some((r) => r.summary.points.some((p) => p.slo));

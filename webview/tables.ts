// The result view's tables, one row per point (per run and point in a comparison). Pure: a unit test renders them.
import type { PointSummary } from '../src/core/protocol/summary';
import type { ResultRun } from '../src/core/protocol/webview';
import { runCell, runHead, type RunNames } from './compare';
import { fmt, tds, ths } from './html';

/** A column: its heading and its cell for one row, both HTML. */
type Column<T> = [heading: string, cell: (row: T) => string | number];

/** One run's rows of a table; `run` names it in a comparison (undefined for a single run). */
type Group<T> = { run?: string; items: T[] };

/**
 * One heading row, then every group's rows; in a comparison a first column names the run. A group with
 * no items gets one row saying `empty` (e.g. "no SLO"), so a run is never silently missing from a table.
 */
function table<T>(columns: Column<T>[], groups: Group<T>[], empty = '–'): string {
  const run = groups.some((g) => g.run !== undefined) ? '' : undefined;
  const head = `<tr>${runHead(run)}${ths(columns.map(([heading]) => heading))}</tr>`;
  const rows = groups.flatMap(({ run, items }) =>
    items.length
      ? items.map((item) => `<tr>${runCell(run)}${tds(columns.map(([, cell]) => cell(item)))}</tr>`)
      : [`<tr>${runCell(run)}<td class="muted" colspan="${columns.length}">${empty}</td></tr>`],
  );
  return head + rows.join('');
}

type PointOf = { r: ResultRun; p: PointSummary };
const pointsOf = (r: ResultRun): PointOf[] => r.summary.points.map((p) => ({ r, p }));
/** Each run's points as a group, named by `row` (Compare) or not (one run). */
const groups = (runs: ResultRun[], row: RunNames['row'], keep = (_: PointOf) => true): Group<PointOf>[] =>
  runs.map((r) => ({ run: row(r), items: pointsOf(r).filter(keep) }));
const label = ({ r, p }: PointOf) => r.labels[p.point] ?? p.point;

const SUMMARY: Column<PointOf>[] = [
  ['point', label],
  ['status', ({ p }) => p.status],
  ['time s', ({ p }) => fmt(p.window.duration_s)],
  ['ok', ({ p }) => p.requests.ok],
  ['err', ({ p }) => p.requests.errors],
  ['in tok', ({ p }) => p.tokens.input],
  ['out tok', ({ p }) => p.tokens.output],
  ['tok/s', ({ p }) => fmt(p.throughput.output_tokens_per_s)],
  ['req/s', ({ p }) => fmt(p.throughput.requests_per_s)],
  ['TTFT p50 s', ({ p }) => fmt(p.latency.ttft_s?.p50)],
  ['TTFT p99 s', ({ p }) => fmt(p.latency.ttft_s?.p99)],
  ['ITL p50 s', ({ p }) => fmt(p.latency.itl_s?.p50)],
  ['e2e p50 s', ({ p }) => fmt(p.latency.e2e_s?.p50)],
  ['e2e p99 s', ({ p }) => fmt(p.latency.e2e_s?.p99)],
  ['avg W', ({ p }) => fmt(p.energy.avg_power_w)],
  ['peak W', ({ p }) => fmt(p.energy.peak_power_w)],
  ['energy J', ({ p }) => fmt(p.energy.total_j, 4)],
  ['idle J', ({ p }) => fmt(p.energy.idle_j, 4)],
  ['dynamic J', ({ p }) => fmt(p.energy.dynamic_j, 4)],
  ['J/token', ({ p }) => fmt(p.j_per_output_token)],
  ['steady J/token', ({ p }) => fmt(p.steady?.j_per_output_token)],
  ['J/resp', ({ p }) => fmt(p.j_per_response)],
  ['$', ({ p }) => fmt(p.cost.usd, 2)],
  ['gCO2', ({ p }) => fmt(p.cost.gco2)],
  ['cap W', ({ p }) => fmt(p.power_cap_w)],
];

export const summaryRows = (runs: ResultRun[], row: RunNames['row']) => table(SUMMARY, groups(runs, row));

const ms = (s: number | null | undefined) => (s === null || s === undefined ? '–' : fmt(s * 1000));
/** One objective's cell: the percentile's value against the limit (ms), and the share meeting it. */
const objective =
  (metric: 'ttft' | 'itl' | 'tpot' | 'e2e') =>
  ({ p }: PointOf) => {
    const o = p.slo?.per_objective[metric];
    return o ? `${ms(o.value_s)} / ${ms(o.limit_s)} · ${fmt(o.attainment * 100)}%${o.met ? '' : ' ✗'}` : '–';
  };

const SLO: Column<PointOf>[] = [
  ['point', label],
  ['SLO', ({ p }) => (p.slo!.met ? 'met' : 'missed')],
  ['percentile', ({ p }) => `p${p.slo!.objectives.percentile}`],
  ['good / requests', ({ p }) => `${p.slo!.good_requests} / ${p.slo!.requests}`],
  ['attainment %', ({ p }) => fmt(p.slo!.attainment * 100)],
  ['goodput req/s', ({ p }) => fmt(p.slo!.goodput_requests_per_s)],
  ['goodput tok/s', ({ p }) => fmt(p.slo!.goodput_output_tokens_per_s)],
  ['J/SLO-token', ({ p }) => fmt(p.slo!.j_per_slo_token)],
  ['J/SLO-request', ({ p }) => fmt(p.slo!.j_per_slo_request)],
  ['TTFT ms', objective('ttft')],
  ['ITL ms', objective('itl')],
  ['TPOT ms', objective('tpot')],
  ['e2e ms', objective('e2e')],
];

/** Points judged against an SLO: attainment, goodput and energy per SLO-meeting token; "no SLO" for a run without. */
export const sloRows = (runs: ResultRun[], row: RunNames['row']) =>
  table(
    SLO,
    groups(runs, row, ({ p }) => p.slo !== undefined && p.slo !== null),
    'no SLO',
  );

const prediction = ({ r, p }: PointOf) => r.predictions[p.point];
/** The predicted J/token's error against the measured, in %. */
function predictionError(row: PointOf): string {
  const pred = prediction(row);
  const { p } = row;
  const measured = p.j_per_output_token;
  const err = pred && Number.isFinite(measured) ? (pred.j_per_output_token / measured - 1) * 100 : NaN;
  return Number.isFinite(err) ? `${err > 0 ? '+' : ''}${err.toFixed(1)}%` : '–';
}

const PREDICTION: Column<PointOf>[] = [
  ['point', label],
  ['basis', (row) => prediction(row)?.basis ?? '–'],
  ['J/token predicted', (row) => fmt(prediction(row)?.j_per_output_token)],
  ['measured', ({ p }) => fmt(p.j_per_output_token)],
  ['error', predictionError],
  ['tok/s predicted', (row) => fmt(prediction(row)?.output_tokens_per_s)],
  ['measured', ({ p }) => fmt(p.throughput.output_tokens_per_s)],
  ['W predicted', (row) => fmt(prediction(row)?.avg_power_w)],
  ['measured', ({ p }) => fmt(p.energy.avg_power_w)],
];

export const predictionRows = (runs: ResultRun[], row: RunNames['row']) => table(PREDICTION, groups(runs, row));

const denoised = ({ r, p }: PointOf) => r.denoised[p.point];

const IDEALIZED: Column<PointOf>[] = [
  ['point', label],
  ['α (s)', ({ p }) => fmt(p.idealized?.alpha_s)],
  ['β (s/token)', ({ p }) => fmt(p.idealized?.beta_s)],
  ['requests fitted', ({ p }) => p.idealized?.n ?? '–'],
  ['denoised α (s)', (row) => fmt(denoised(row)?.alpha_s)],
  ['denoised β (s/token)', (row) => fmt(denoised(row)?.beta_s)],
  ['overhead (s)', (row) => fmt(denoised(row)?.overhead_s)],
  ['repeats', (row) => denoised(row)?.repeats ?? '–'],
];

export const idealizedRows = (runs: ResultRun[], row: RunNames['row']) => table(IDEALIZED, groups(runs, row));

/** One GPU's energy over all of a run's points, and its idle power where the run had a baseline. */
type GpuOf = { r: ResultRun; gpu: string; energyJ: number };

function gpusOf(r: ResultRun): GpuOf[] {
  const energy = new Map<string, number>();
  for (const p of r.summary.points) {
    for (const g of p.energy.per_gpu) energy.set(g.gpu, (energy.get(g.gpu) ?? 0) + g.energy_j);
  }
  return [...energy.entries()].map(([gpu, energyJ]) => ({ r, gpu, energyJ }));
}

const PER_GPU: Column<GpuOf>[] = [
  ['GPU', ({ gpu }) => gpu],
  ['energy J', ({ energyJ }) => fmt(energyJ, 4)],
  ['idle W', ({ r, gpu }) => fmt(r.summary.idle_baseline?.per_gpu_w[gpu])],
];

/**
 * Energy per node and GPU (several GPUs, hosts or a Slurm allocation): each one measured, none extrapolated.
 * Shown when some run has more than one GPU; then every run's GPUs are listed, a single-GPU run's too, each
 * row naming its run in a comparison.
 */
export function perGpuRows(runs: ResultRun[], row: RunNames['row']): string {
  const all = runs.map((r) => ({ run: row(r), items: gpusOf(r) }));
  if (!all.some((g) => g.items.length > 1)) return '';
  return (
    '<div class="card"><h2>Energy per node and GPU (J, all points)</h2><table id="per-gpu-table">' +
    `${table(PER_GPU, all, 'no per-GPU energy')}</table></div>`
  );
}

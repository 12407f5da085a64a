/**
 * `npm run bench`: runs every figure one after the other (never two at once: they share the cores they
 * measure), writes bench/results.json, prints a table, and appends a full run to bench/history.jsonl.
 * `npm run bench -- ingest live-chart` runs some figures only (and leaves the history alone).
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { activation, bundleSizes } from './activation';
import { agentOverhead } from './agent-overhead';
import { runBundled } from './bundled';
import { dispatch } from './dispatch';
import { describeTarget, judge, now, round, type Figure, type JudgedFigure } from './figure';
import { liveChart } from './live-chart';
import { memory } from './memory';

const RESULTS = join(__dirname, 'results.json');
const HISTORY = join(__dirname, 'history.jsonl');

/** Each group yields one or more figures, keyed as they appear in results.json and the history. */
const GROUPS: Record<string, () => Promise<Record<string, Figure>>> = {
  ingest: async () => ({ ingest: await runBundled<Figure>('ingest', 'ingest') }),
  memory: async () => {
    const { peak, retained } = await memory();
    return { summary_memory: peak, summary_heap: retained };
  },
  estimator: async () => ({ estimator: await runBundled<Figure>('estimator', 'estimator') }),
  'live-chart': async () => {
    const { p99, p50 } = await liveChart();
    return { live_chart_p99: p99, live_chart_p50: p50 };
  },
  agent: async () => {
    const [slow, fast] = await agentOverhead();
    return { agent_cpu_10hz: slow, agent_cpu_100hz: fast };
  },
  dispatch: async () => ({ dispatch: await dispatch() }),
  activation: async () => ({ activation: await activation() }),
  bundles: async () => {
    const [extension, webview, cli] = bundleSizes();
    return { bundle_extension: extension, bundle_webview: webview, bundle_cli: cli };
  },
};

interface FailedFigure {
  title: string;
  error: string;
}

type Outcome = JudgedFigure | FailedFigure;

interface HistoryEntry {
  date: string;
  commit: string | null;
  /** Tracked files differed from the commit when the bench ran. */
  dirty: boolean;
  figures: Record<string, { value: number; unit: string; ratio?: number; met: boolean | null }>;
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: join(__dirname, '..'), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function lastHistory(): HistoryEntry | undefined {
  if (!existsSync(HISTORY)) return undefined;
  const lines = readFileSync(HISTORY, 'utf8').split('\n').filter((l) => l.trim());
  return lines.length ? (JSON.parse(lines[lines.length - 1]) as HistoryEntry) : undefined;
}

/** results.json: per figure {value, unit, baseline?, ratio?, target, met, method} and the details behind it. */
function toResult(outcome: Outcome) {
  if ('error' in outcome) return { title: outcome.title, value: null, unit: null, target: null, met: false, method: `failed: ${outcome.error}` };
  const { title, value, unit, baseline, ratio, target, met, method, details } = outcome;
  return { title, value, unit, baseline, ratio, target: target ? describeTarget(outcome) : null, met, method, details };
}

function formatNumber(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '';
  return Math.abs(value) >= 1000 ? Math.round(value).toLocaleString('en-US') : String(round(value));
}

function printTable(outcomes: Record<string, Outcome>, previous: HistoryEntry | undefined): void {
  const rows = Object.entries(outcomes).map(([key, o]) => {
    if ('error' in o) return [key, 'FAILED', '', '', '', 'no', o.error.split('\n')[0].slice(0, 80)];
    const before = previous?.figures[key];
    const change = before && before.value ? `${o.value >= before.value ? '+' : ''}${(((o.value - before.value) / before.value) * 100).toFixed(1)}%` : '';
    return [
      key,
      `${formatNumber(o.value)} ${o.unit}`,
      o.baseline ? `${formatNumber(o.baseline.value)} ${o.baseline.unit}` : '',
      o.ratio === undefined ? '' : String(o.ratio),
      describeTarget(o),
      o.met === null ? '–' : o.met ? 'yes' : 'NO',
      change,
    ];
  });
  const header = ['figure', 'value', 'baseline', 'ratio', 'target', 'met', 'vs last run'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(`\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  for (const r of rows) console.log(line(r));
}

async function main(): Promise<number> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((name) => !(name in GROUPS));
  if (unknown.length) {
    console.error(`unknown figure group(s): ${unknown.join(', ')}; known: ${Object.keys(GROUPS).join(', ')}`);
    return 2;
  }
  const groups = asked.length ? asked : Object.keys(GROUPS);
  const outcomes: Record<string, Outcome> = {};
  for (const name of groups) {
    const start = now();
    process.stdout.write(`bench: ${name} … `);
    try {
      for (const [key, figure] of Object.entries(await GROUPS[name]())) outcomes[key] = judge(figure);
      console.log(`${((now() - start) / 1000).toFixed(1)} s`);
    } catch (error) {
      outcomes[name] = { title: name, error: (error as Error).stack ?? String(error) };
      console.log(`failed after ${((now() - start) / 1000).toFixed(1)} s: ${(error as Error).message}`);
    }
  }

  writeFileSync(RESULTS, JSON.stringify(Object.fromEntries(Object.entries(outcomes).map(([k, o]) => [k, toResult(o)])), null, 2) + '\n');
  const previous = lastHistory();
  printTable(outcomes, previous);
  const failed = Object.values(outcomes).filter((o) => 'error' in o).length;
  const missed = Object.entries(outcomes).filter(([, o]) => !('error' in o) && o.met === false).map(([k]) => k);
  console.log(`\nresults: ${RESULTS}${missed.length ? `\ntargets missed: ${missed.join(', ')} (each figure's details in results.json; hotspots where profiled)` : ''}`);

  if (!asked.length && !failed) {
    const entry: HistoryEntry = {
      date: new Date().toISOString(),
      commit: git(['rev-parse', 'HEAD']),
      dirty: (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '',
      figures: Object.fromEntries(
        Object.entries(outcomes).map(([k, o]) => {
          const f = o as JudgedFigure;
          return [k, { value: f.value, unit: f.unit, ...(f.ratio !== undefined && { ratio: f.ratio }), met: f.met }];
        }),
      ),
    };
    appendFileSync(HISTORY, JSON.stringify(entry) + '\n');
    console.log(`history: appended to ${HISTORY}`);
  } else if (!asked.length) console.log('history: not appended (a figure failed)');
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);

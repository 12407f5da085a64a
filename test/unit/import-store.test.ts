/**
 * Imported results as stored runs: written whole or not at all, reopened by `openStoredRun`/`loadRunReport`
 * like any run, listed beside Wattbench's own runs and comparable with them, and broken files refused with
 * a message that names the file and the field (and, for JSON syntax, the line and column).
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { main } from '../../src/cli/main';
import { loadConfig } from '../../src/core/config';
import { ImportError, importFiles, readResults, readVllmJson } from '../../src/core/import';
import { createRunRecord, openStoredRun } from '../../src/core/run/stored';
import { summaryCsv } from '../../src/core/store/csv';
import { readMeta, RunStore } from '../../src/core/store/store';
import { loadRunReport } from '../../src/core/workspace/reports';

const FIX = join(__dirname, '..', 'fixtures', 'import');
const root = mkdtempSync(join(tmpdir(), 'wb-import-'));
after(() => rmSync(root, { recursive: true, force: true }));
const fresh = (name: string) => {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
};
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const json = (path: string): any => JSON.parse(readFileSync(join(FIX, path), 'utf8'));
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} ≠ ${b}`);

describe('an imported run in the store', () => {
  const store = RunStore.forWorkspace(fresh('ws'));
  const [mlenergy] = importFiles(store.root, [join(FIX, 'mlenergy', 'results.json')]);
  const [guidellm] = importFiles(store.root, [join(FIX, 'guidellm', 'benchmarks.json')]);

  it('has meta.json saying where it came from, the raw file beside it, and no half-written folder left', () => {
    const meta = readMeta(mlenergy.dir) as ReturnType<typeof readMeta> & { source: string };
    assert.equal(meta.source, 'imported from ML.ENERGY benchmark (version not stated in the file)');
    assert.equal((readMeta(guidellm.dir) as typeof meta).source, `imported from GuideLLM ${json('guidellm/benchmarks.json').metadata.guidellm_version}`);
    assert.equal(readFileSync(join(mlenergy.dir, 'source-results.json'), 'utf8'), readFileSync(join(FIX, 'mlenergy', 'results.json'), 'utf8'));
    assert.deepEqual(readdirSync(store.root).filter((n) => n.startsWith('.')), []);
    assert.deepEqual(store.list().map((r) => r.id).sort(), [mlenergy.id, guidellm.id].sort());
  });

  it('reopens with openStoredRun and loadRunReport, its figures those of the file', async () => {
    const raw = json('mlenergy/results.json');
    const run = openStoredRun(mlenergy.dir);
    assert.equal(run.config, undefined, 'no config.yaml: nothing to calibrate on or run again');
    assert.deepEqual(run.meta.points.map((p) => p.id), ['benchmark']);
    const { summary } = await loadRunReport(mlenergy.dir);
    const [p] = summary.points;
    const entire = Object.values(raw.entire_benchmark_measurement.gpu_energy as Record<string, number>).reduce((s, x) => s + x, 0);
    assert.equal(p.energy.method, 'counter');
    close(p.energy.total_j, entire, 'energy');
    close(p.j_per_output_token, entire / raw.total_output_tokens, 'J/token');
    close(p.throughput.output_tokens_per_s, raw.output_throughput, 'tok/s');
    close(p.steady!.j_per_output_token, raw.steady_state_energy_per_token, 'steady J/token');
    assert.equal(summary.telemetry.source, 'imported (ML.ENERGY benchmark)');
  });

  it('without energy in the file: method none, energy and J/token blank (null on disk), never 0', async () => {
    const { summary } = await loadRunReport(guidellm.dir);
    for (const p of summary.points) {
      assert.equal(p.energy.method, 'none');
      assert.equal(p.energy.total_j, null);
      assert.equal(p.j_per_output_token, null);
    }
    assert.equal(JSON.parse(readFileSync(join(guidellm.dir, 'summary.json'), 'utf8')).total.energy.total_j, null);
  });

  it('sits beside a Wattbench run: both listed, both read by the report the views use, one CSV format', async () => {
    const configText = 'name: native\nserver: { sim: true }\nmodel: { id: m }\n';
    const loaded = loadConfig(configText);
    assert.ok(loaded.config);
    const spec = { store, agentSource: '', configText, config: loaded.config, points: loaded.points, resolveLocal: (p: string) => p };
    const { writer, summarizer } = createRunRecord(spec, 'local', 'native-run');
    const point = loaded.points[0].id;
    const lines = [
      { t: 0, type: 'phase', phase: 'measure', point },
      { t: 0, type: 'sample', gpus: [{ i: 0, p_w: 500, e_j: 0 }] },
      { t: 1, type: 'request', point, repeat: 0, i: 0, ok: true, warmup: false, t_start: 0, t_end: 1, prompt_tokens: 10, output_tokens: 50, ttft_s: 0.1, latency_s: 1, itl_s: [0.02] },
      { t: 2, type: 'sample', gpus: [{ i: 0, p_w: 500, e_j: 1000 }] },
      { t: 2, type: 'phase', phase: 'cooldown', point },
    ].map((e, seq) => JSON.stringify({ v: 1, seq, ...e }));
    writer.appendLines(lines);
    for (const l of lines) summarizer.add(JSON.parse(l));
    writer.writeSummary(summarizer.result());
    writer.updateMeta({ status: 'ok' });
    writer.close();
    assert.deepEqual(store.list().map((r) => r.id).sort(), ['native-run', mlenergy.id, guidellm.id].sort());
    const reports = await Promise.all(['native-run', mlenergy.id].map((id) => loadRunReport(store.dirOf(id))));
    // What the result view's tables and Pareto read of each point (webview/tables.ts, webview/result.ts).
    for (const { summary } of reports) {
      const p = summary.points[0];
      for (const v of [p.window.duration_s, p.requests.ok, p.tokens.output, p.throughput.output_tokens_per_s, p.latency.ttft_s?.p50, p.energy.total_j, p.j_per_output_token]) {
        assert.equal(typeof v, 'number');
      }
    }
    const [nativeCsv, importedCsv] = reports.map((r) => summaryCsv(r.summary, r.run.meta).split('\n'));
    assert.equal(nativeCsv[0], importedCsv[0], 'same columns');
    assert.match(importedCsv[1], /,counter,/);
  });
});

describe('broken input', () => {
  const vllm = readFileSync(join(FIX, 'vllm', 'openai-infqps-concurrency4-Llama-3.1-8B-Instruct-20251104-101500.json'), 'utf8');
  const fails = (files: { name: string; text: string }[], pattern: RegExp) =>
    assert.throws(() => readResults(files), (e: unknown) => e instanceof ImportError && pattern.test(e.message), String(pattern));

  it('truncated JSON: the file, the line and the column', () => {
    const guidellm = readFileSync(join(FIX, 'guidellm', 'benchmarks.json'), 'utf8').replace(/\{/, '{\n');
    fails([{ name: 'benchmarks.json', text: guidellm.slice(0, 500) }], /^benchmarks\.json: not valid JSON at line 2, column \d+ \(the file ends early: truncated\?\)/);
    fails([{ name: 'r.json', text: vllm.slice(0, 200) }], /^r\.json: not valid JSON at line 1, column 201/);
  });

  it('a missing or mistyped field: the file and the field', () => {
    const { completed: _, ...rest } = JSON.parse(vllm);
    fails([{ name: 'r.json', text: JSON.stringify(rest) }], /^r\.json: completed: missing$/);
    fails([{ name: 'r.json', text: JSON.stringify({ ...rest, completed: '8' }) }], /^r\.json: completed: expected a number, found the text "8"$/);
    const stage = JSON.parse(readFileSync(join(FIX, 'inference-perf', 'stage_0_lifecycle_metrics.json'), 'utf8'));
    delete stage.successes.throughput;
    fails([{ name: 'stage_0_lifecycle_metrics.json', text: JSON.stringify(stage) }], /stage_0_lifecycle_metrics\.json: successes\.throughput\.requests_per_sec: missing/);
    const detailed = JSON.parse(readFileSync(join(FIX, 'vllm', 'detailed-concurrency2.json'), 'utf8'));
    detailed.itls[2][1] = 'x';
    assert.throws(() => readVllmJson(JSON.stringify(detailed), 'd.json'), /^ImportError: d\.json: itls\.2\.1: expected a number/);
  });

  it('a truncated per-request file and a truncated CSV: the line', () => {
    const jsonl = readFileSync(join(FIX, 'aiperf', 'profile_export.jsonl'), 'utf8');
    fails([{ name: 'profile_export.jsonl', text: jsonl.slice(0, jsonl.length - 40) }], /^profile_export\.jsonl: line 8: not valid JSON \(the last line: truncated\?\)/);
    const csv = readFileSync(join(FIX, 'vllm', 'sweep', 'summary.csv'), 'utf8');
    fails([{ name: 'summary.csv', text: csv.slice(0, csv.length - 300) }], /^summary\.csv: row 5: has \d+ cells, the header \d+/);
  });

  it('a file of no known tool says which tools are', () => fails([{ name: 'x.json', text: '{"a": 1}' }], /^x\.json: not a result file .*GuideLLM/));

  it('one bad file among good ones imports nothing', () => {
    const dir = fresh('mixed');
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, vllm.slice(0, 100));
    const store = RunStore.forWorkspace(fresh('mixed-ws'));
    assert.throws(() => importFiles(store.root, [join(FIX, 'mlenergy', 'results.json'), bad]), ImportError);
    assert.equal(existsSync(store.root) ? readdirSync(store.root).length : 0, 0);
  });
});

describe('wattbench import', () => {
  const io = (cwd: string) => {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l), cwd, isTTY: false } };
  };

  it('imports files and folders into the workspace store (or --store), one line per run', async () => {
    const ws = fresh('cli');
    const a = io(ws);
    assert.equal(await main(['import', join(FIX, 'inference-perf'), join(FIX, 'aiperf', 'profile_export_aiperf.json')], a.io), 0, a.err.join('\n'));
    const runs = RunStore.forWorkspace(ws).list();
    assert.equal(runs.length, 2);
    assert.match(a.out.join('\n'), /inference-perf · model not stated · 2 points · no energy in the file/);
    assert.match(a.out.join('\n'), /NVIDIA AIPerf 0\.4\.0 · Qwen\/Qwen3-0\.6B · 1 point · with energy/);
    const b = io(ws);
    assert.equal(await main(['import', join(FIX, 'vllm', 'sweep'), '--store', 'elsewhere'], b.io), 0, b.err.join('\n'));
    const rows = readFileSync(join(FIX, 'vllm', 'sweep', 'summary.csv'), 'utf8').trim().split('\n').length - 1;
    assert.equal(new RunStore(join(ws, 'elsewhere')).list()[0].meta.points.length, rows);
  });

  it('refuses a broken file with its message, exit 1, nothing stored', async () => {
    const ws = fresh('cli-bad');
    const file = join(ws, 'profile_export_aiperf.json');
    copyFileSync(join(FIX, 'aiperf', 'profile_export_aiperf.json'), file);
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 300));
    const c = io(ws);
    assert.equal(await main(['import', file], c.io), 1);
    assert.match(c.err[0], /profile_export_aiperf\.json: not valid JSON at line \d+, column \d+/);
    assert.match(c.err[1], /nothing was imported/);
    assert.equal(RunStore.forWorkspace(ws).list().length, 0);
  });

  it('without a file: usage', async () => {
    const d = io(root);
    assert.equal(await main(['import'], d.io), 2);
    assert.match(d.err.join('\n'), /usage: wattbench import/);
  });
});

describe('every fixture cut short anywhere', () => {
  const fixtures = [
    'vllm/openai-infqps-concurrency4-Llama-3.1-8B-Instruct-20251104-101500.json',
    'vllm/detailed-concurrency2.json',
    'vllm/sweep/summary.csv',
    'guidellm/benchmarks.json',
    'guidellm/benchmarks-v0.3.json',
    'aiperf/profile_export_aiperf.json',
    'aiperf/profile_export_aiperf.csv',
    'aiperf/profile_export.jsonl',
    'aiperf/telemetry/gpu_telemetry_export.jsonl',
    'inference-perf/stage_0_lifecycle_metrics.json',
    'mlenergy/results.json',
  ];
  it('reads or gives an ImportError naming the file, never another exception', () => {
    for (const path of fixtures) {
      const text = readFileSync(join(FIX, path), 'utf8');
      const name = path.split('/').pop()!;
      for (let k = 1; k <= 40; k++) {
        const cut = text.slice(0, Math.floor((text.length * k) / 41));
        try {
          readResults([{ name, text: cut }]);
        } catch (error) {
          assert.ok(error instanceof ImportError, `${path} cut at ${cut.length}: ${(error as Error).stack}`);
          assert.ok(error.message.startsWith(`${name}: `), error.message);
        }
      }
    }
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CliIO } from '../../src/cli/io';
import { main } from '../../src/cli/main';
import { loadConfig } from '../../src/core/config';
import { DEFAULT_COST, type SloObjectives } from '../../src/core/config/model';
import { getGpu, getModel } from '../../src/core/estimate/catalog';
import { predictPoint } from '../../src/core/estimate/predict';
import type { AgentEvent } from '../../src/core/protocol/events';
import type { PointSummary, RunSummary } from '../../src/core/protocol/summary';
import { recommendFromMeasurements, recommendFromPrediction, type MeasuredRun } from '../../src/core/recommend';
import { sloPlan } from '../../src/core/run/slo';
import { createRunRecord } from '../../src/core/run/stored';
import { summarize } from '../../src/core/run/summarize';
import { RunStore } from '../../src/core/store/store';

const CONFIG = `name: rec
server: { sim: true }
model: { id: Llama-3.1-8B }
gpus: { type: H100-SXM-80GB }
workload: { input_tokens: 512, output_tokens: 256, num_prompts: 200 }
slo: { ttft: 10s, itl: ITL }
sweep: { concurrency: [1, 8, 64] }
`;

function loaded(itl: string) {
  const l = loadConfig(CONFIG.replace('ITL', itl));
  assert.deepEqual(l.diagnostics.filter((d) => d.severity === 'error'), []);
  return l;
}

/** The estimator's own figures for one concurrency on 1× H100 (what the search reads, computed here directly). */
function predicted(concurrency: number) {
  const p = predictPoint({ model: getModel('Llama-3.1-8B'), gpu: getGpu('H100-SXM-80GB'), gpuCount: 1, inputTokens: 512, outputTokens: 256, numPrompts: 200, concurrency, engine: 'sim' });
  return { j: p.j_per_output_token, step: p.breakdown.step_s, runtime: p.runtime_s, ttft: p.ttft_s };
}

const narrow = { gpus: [getGpu('H100-SXM-80GB')], gpuCounts: [1], caps: [undefined], loads: [1, 8, 64].map((concurrency) => ({ concurrency })) };

describe('recommend from the prior', () => {
  const [c1, c8, c64] = [1, 8, 64].map(predicted);

  it('the sweep is as the test needs it: more load, fewer joules per token, longer steps', () => {
    assert.ok(c64.j < c8.j && c8.j < c1.j, `J/token ${c1.j} ${c8.j} ${c64.j}`);
    assert.ok(c64.step > c8.step && c8.step > c1.step, `step ${c1.step} ${c8.step} ${c64.step}`);
    assert.ok(c64.ttft < 10 && c8.ttft < 10);
  });

  it('passes over the cheapest point when it breaks the ITL objective, and names the runner-up', () => {
    // An ITL limit between concurrency 8's step and concurrency 64's: 64 is cheapest but too slow per token.
    const limitMs = ((c8.step + c64.step) / 2) * 1000;
    const l = loaded(`${limitMs}ms`);
    const rec = recommendFromPrediction(l.config!, l.points, { ...narrow, objective: 'j_per_token' });
    assert.equal(rec.source, 'prediction');
    assert.equal(rec.searched, 3);
    assert.equal(rec.best?.concurrency, 8);
    assert.equal(rec.runnerUp?.concurrency, 1);
    assert.ok(Math.abs(rec.best!.j_per_output_token - c8.j) < 1e-12);
    // All 200 requests meet the SLO: goodput is every request over the predicted runtime.
    assert.ok(Math.abs(rec.best!.goodput_requests_per_s - 200 / c8.runtime) < 1e-9);
    assert.equal(rec.best!.prediction!.basis, 'prior');
    assert.ok(rec.best!.prediction!.j_per_output_token_low < c8.j && c8.j < rec.best!.prediction!.j_per_output_token_high);
    assert.equal(rec.closest, undefined);
  });

  it('says how far the closest point is when nothing meets the SLO', () => {
    const limit = c1.step / 2;
    const l = loaded(`${limit * 1000}ms`);
    const rec = recommendFromPrediction(l.config!, l.points, narrow);
    assert.equal(rec.best, undefined);
    assert.equal(rec.closest?.concurrency, 1);
    // Its ITL is twice the limit.
    assert.ok(Math.abs(rec.closest!.worst - 2) < 1e-9, String(rec.closest!.worst));
    assert.equal(rec.closest!.checks.find((c) => c.metric === 'itl')!.ratio, rec.closest!.worst);
  });

  it('searches other GPU types and counts of the catalog by default', () => {
    const l = loaded('1s');
    const rec = recommendFromPrediction(l.config!, l.points);
    assert.ok(rec.searched > 100, String(rec.searched));
    assert.ok(rec.best && rec.runnerUp);
    assert.ok(rec.best.j_per_output_token <= rec.runnerUp.j_per_output_token);
  });

  it('refuses a config without an slo', () => {
    const l = loadConfig(CONFIG.replace(/slo:.*\n/, ''));
    assert.throws(() => recommendFromPrediction(l.config!, l.points, narrow), /no `slo`/);
  });
});

/** A measured point as summary.json holds it: only the fields the recommendation reads matter. */
function point(id: string, o: { energy: number; duration: number; tokens: number; good?: number; met?: boolean; slo?: SloObjectives; ttftP99?: number }): PointSummary {
  return {
    point: id,
    status: 'ok',
    window: { start: 0, end: o.duration, duration_s: o.duration },
    requests: { ok: 10, errors: 0, warmup: 0 },
    tokens: { input: 100, output: o.tokens },
    throughput: { output_tokens_per_s: o.tokens / o.duration, total_tokens_per_s: 0, requests_per_s: 10 / o.duration },
    latency: { ttft_s: { n: 10, mean: 0, min: 0, max: 0, p50: 0, p90: 0, p99: o.ttftP99 ?? 0 } },
    energy: { method: 'counter', total_j: o.energy, idle_j: 0, dynamic_j: 0, avg_power_w: 0, peak_power_w: 0, per_gpu: [] },
    ...(o.slo && {
      slo: {
        objectives: { ttft_s: o.slo.ttftS, percentile: o.slo.percentile },
        requests: 10,
        good_requests: 5,
        good_output_tokens: o.good!,
        attainment: 0.5,
        goodput_requests_per_s: 5 / o.duration,
        goodput_output_tokens_per_s: o.good! / o.duration,
        j_per_slo_token: o.energy / o.good!,
        j_per_slo_request: o.energy / 5,
        met: o.met!,
        per_objective: { ttft: { limit_s: o.slo.ttftS!, attainment: 0.5, value_s: 0.1, met: o.met! } },
      },
    }),
  } as unknown as PointSummary;
}

function measuredRun(id: string, points: PointSummary[]): MeasuredRun {
  return {
    run_id: id,
    gpu: 'H100-SXM-80GB',
    cost: DEFAULT_COST,
    points: points.map((p, i) => ({ id: p.point, label: p.point, gpuCount: 1, concurrency: 2 ** i })),
    summary: { points } as RunSummary,
  };
}

describe('recommend from stored summaries', () => {
  const slo: SloObjectives = { ttftS: 0.5, percentile: 99 };
  const runs = [
    measuredRun('A', [
      point('c8', { energy: 1000, duration: 100, tokens: 800, good: 500, met: true, slo }),
      // Cheapest per SLO token (1500 / 3000 = 0.5 J) but its SLO is not met.
      point('c64', { energy: 1500, duration: 100, tokens: 4000, good: 3000, met: false, slo }),
    ]),
    measuredRun('B', [point('cap', { energy: 900, duration: 10, tokens: 400, good: 400, met: true, slo })]),
  ];

  it('picks the lowest energy per SLO-meeting token among points that met the SLO', () => {
    const rec = recommendFromMeasurements(runs, slo, 'j_per_token');
    assert.equal(rec.source, 'measurement');
    // A/c8: 1000 J / 500 good tokens = 2 J; B/cap: 900 / 400 = 2.25 J.
    assert.equal(rec.best?.measured?.point, 'c8');
    assert.equal(rec.best?.j_per_output_token, 2);
    assert.equal(rec.runnerUp?.measured?.point, 'cap');
    assert.equal(rec.runnerUp?.j_per_output_token, 2.25);
    assert.equal(rec.best?.goodput_output_tokens_per_s, 5);
  });

  it('counts GPU-hours in $/Mtoken, which favours the short run', () => {
    const rec = recommendFromMeasurements(runs, slo, 'usd_per_mtoken');
    // By hand at $0.15/kWh, PUE 1, $2.50 per GPU-hour:
    //   A/c8:  (1000/3.6e6·0.15 + 100 s·2.5/3600) / 500 · 1e6 = 138.97 $/Mtoken
    //   B/cap: ( 900/3.6e6·0.15 +  10 s·2.5/3600) / 400 · 1e6 = 17.45 $/Mtoken
    assert.equal(rec.best?.measured?.run_id, 'B');
    assert.ok(Math.abs(rec.best!.usd_per_mtoken - 17.4549) < 1e-3, String(rec.best!.usd_per_mtoken));
    assert.ok(Math.abs(rec.runnerUp!.usd_per_mtoken - 138.9716) < 1e-3, String(rec.runnerUp!.usd_per_mtoken));
  });

  it('judges a point summarised without this SLO by its percentiles, and says so', () => {
    const other = measuredRun('C', [point('old', { energy: 100, duration: 10, tokens: 1000, ttftP99: 0.4 }), point('slow', { energy: 50, duration: 10, tokens: 1000, ttftP99: 0.6 })]);
    const rec = recommendFromMeasurements([other], slo);
    // old: p99 TTFT 0.4 s ≤ 0.5 s → meets, 100 J / 1000 tokens; slow: 0.6 s misses.
    assert.equal(rec.best?.measured?.point, 'old');
    assert.equal(rec.best?.measured?.judged_by, 'percentiles');
    assert.equal(rec.best?.j_per_output_token, 0.1);
    assert.equal(rec.runnerUp, undefined);
    assert.ok(rec.notes.some((n) => /percentiles/.test(n)));
  });

  it('gives the closest miss and by how much when no stored point met the SLO', () => {
    const miss = measuredRun('D', [point('a', { energy: 1, duration: 1, tokens: 1, ttftP99: 0.75 }), point('b', { energy: 1, duration: 1, tokens: 1, ttftP99: 1.0 })]);
    const rec = recommendFromMeasurements([miss], slo);
    assert.equal(rec.best, undefined);
    assert.equal(rec.closest?.measured?.point, 'a');
    assert.equal(rec.closest?.worst, 1.5);
  });
});

describe('wattbench recommend', () => {
  const root = mkdtempSync(join(tmpdir(), 'wb-recommend-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const configText = `name: rec-cli
server: { sim: true }
model: { id: Llama-3.1-8B }
gpus: { type: H100-SXM-80GB }
workload: { input_tokens: 512, output_tokens: 100, num_prompts: 4 }
slo: { ttft: 500ms }
sweep: { concurrency: [1, 8] }
`;
  writeFileSync(join(root, 'rec.wattbench.yaml'), configText);

  /**
   * A stored run of both points, 300 W for 1 s each (300 J): concurrency-1 answers one request of 100
   * tokens within its TTFT objective (300 J / 100 = 3 J per SLO token); concurrency-8 four, all too late
   * (0.75 J per token, but none meets the SLO).
   */
  function storeRun(): void {
    const loaded = loadConfig(configText);
    const store = RunStore.forWorkspace(root);
    const { writer } = createRunRecord({ store, agentSource: '', configText, config: loaded.config!, points: loaded.points, resolveLocal: (p) => p }, 'local', 'run-1');
    const [c1, c8] = loaded.points.map((p) => p.id);
    const request = (point: string, i: number, t: number, ttft: number) => ({ type: 'request', t: t + 1, point, i, ok: true, t_start: t, t_end: t + 1, prompt_tokens: 512, output_tokens: 100, ttft_s: ttft, latency_s: 1 });
    const events = [
      { type: 'hello', t: 0, run_id: 'run-1', host: 'h', agent_version: 't', pid: 1, telemetry: { source: 'sim', interval_s: 0.1 }, simulated: true, gpus: [{ index: 0, name: 'H100' }] },
      { type: 'phase', t: 0, phase: 'measure', point: c1 },
      { type: 'sample', t: 0, gpus: [{ i: 0, p_w: 300, e_j: 0 }] },
      request(c1, 0, 0, 0.1),
      { type: 'sample', t: 1, gpus: [{ i: 0, p_w: 300, e_j: 300 }] },
      { type: 'phase', t: 1, phase: 'cooldown', point: c1 },
      { type: 'point', t: 1, point: c1, state: 'end', status: 'ok' },
      { type: 'phase', t: 1, phase: 'measure', point: c8 },
      ...[0, 1, 2, 3].map((i) => request(c8, i, 1, 0.9)),
      { type: 'sample', t: 2, gpus: [{ i: 0, p_w: 300, e_j: 600 }] },
      { type: 'phase', t: 2, phase: 'cooldown', point: c8 },
      { type: 'sample', t: 2.1, gpus: [{ i: 0, p_w: 300, e_j: 630 }] },
      { type: 'point', t: 2.1, point: c8, state: 'end', status: 'ok' },
      { type: 'done', t: 2.2, status: 'ok', caps_restored: true },
    ].map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
    writer.writeSummary(summarize(events, { slo: sloPlan(loaded.config!.slo, loaded.points) }));
    writer.updateMeta({ status: 'ok', simulated: true });
    writer.close();
  }

  async function recommend(...args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), cwd: root, isTTY: false };
    const code = await main(['recommend', 'rec.wattbench.yaml', ...args], io);
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it('predicts before any run, and says it is a prediction', async () => {
    const { code, out } = await recommend();
    assert.equal(code, 0);
    assert.match(out, /predicted \(no run needed\)/);
    assert.match(out, /best: /);
    assert.doesNotMatch(out, /measured \(stored runs/);
  });

  it("recommends from the config's stored runs once there are some", async () => {
    storeRun();
    const { code, out } = await recommend('--json');
    assert.equal(code, 0);
    const result = JSON.parse(out);
    assert.equal(result.measured.source, 'measurement');
    assert.equal(result.measured.best.measured.point, 'concurrency-1');
    assert.equal(result.measured.best.j_per_output_token, 3);
    assert.equal(result.measured.best.measured.attainment, 1);
    assert.equal(result.measured.runnerUp, undefined);
    assert.equal(result.prediction.source, 'prediction');
  });

  it('refuses an unknown objective', async () => {
    const { code, err } = await recommend('--objective', 'fastest');
    assert.equal(code, 2);
    assert.match(err, /--objective must be one of j_per_token, usd_per_mtoken/);
  });
});

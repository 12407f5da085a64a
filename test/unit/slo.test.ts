import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import type { SloObjectives } from '../../src/core/config/model';
import type { AgentEvent, RequestEvent } from '../../src/core/protocol/events';
import { requestMetrics, sloPlan } from '../../src/core/run/slo';
import { summarize } from '../../src/core/run/summarize';
import { summaryCsv } from '../../src/core/store/csv';

type Req = Partial<RequestEvent> & { i: number };

/**
 * One GPU at a constant 200 W with an energy counter e_j = 200·t; point `p` is measured from t = 10
 * to t = 20, so its energy is exactly 200 W × 10 s = 2000 J.
 */
function run(requests: Req[], point = 'p'): AgentEvent[] {
  const events: object[] = [
    { type: 'hello', t: 0, run_id: 'r', host: 'h', agent_version: 't', pid: 1, telemetry: { source: 'sim', interval_s: 1 }, simulated: true, gpus: [{ index: 0, name: 'G' }] },
  ];
  const sample = (t: number) => events.push({ type: 'sample', t, dt_s: 1, gpus: [{ i: 0, p_w: 200, e_j: 200 * t }] });
  for (let t = 0; t <= 10; t++) sample(t);
  events.push({ type: 'point', t: 10, point, state: 'start' }, { type: 'phase', t: 10, phase: 'measure', point });
  for (const r of requests)
    events.push({ type: 'request', t: 15, point, ok: true, t_start: 11, t_end: 15, prompt_tokens: 10, output_tokens: 100, latency_s: 2, ...r });
  for (let t = 11; t <= 20; t++) sample(t);
  events.push({ type: 'phase', t: 20, phase: 'cooldown', point });
  for (let t = 21; t <= 22; t++) sample(t);
  events.push({ type: 'point', t: 22, point, state: 'end', status: 'ok', requests: requests.length, errors: 0 }, { type: 'done', t: 23, status: 'ok', caps_restored: true });
  return events.map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
}

const objectives: SloObjectives = { ttftS: 0.5, itlS: 0.05, e2eS: 20, percentile: 90 };
const itl = (n: number, s: number) => Array.from({ length: n }, () => s);

/**
 * 10 measured requests (and one warm-up, which does not count):
 *   0–3: good: TTFT 0.2 s, 99 gaps of 20 ms, 100 tokens, e2e 0.2 + 99·0.02 = 2.18 s;
 *   4:   good: its gaps average (98·0.02 + 2.0) / 99 = 0.0400 s ≤ 50 ms, though one gap is 2 s;
 *   5:   good: 50 tokens, 49 gaps of 20 ms;
 *   6–8: miss TTFT (0.8 s), otherwise good;
 *   9:   errored.
 */
const TEN: Req[] = [
  ...[0, 1, 2, 3].map((i) => ({ i, ttft_s: 0.2, itl_s: itl(99, 0.02), latency_s: 2.18 })),
  { i: 4, ttft_s: 0.2, itl_s: [...itl(98, 0.02), 2.0], latency_s: 4.16 },
  { i: 5, ttft_s: 0.2, itl_s: itl(49, 0.02), latency_s: 1.18, output_tokens: 50 },
  ...[6, 7, 8].map((i) => ({ i, ttft_s: 0.8, itl_s: itl(99, 0.02), latency_s: 2.78 })),
  { i: 9, ok: false, output_tokens: 0, ttft_s: null, itl_s: [], latency_s: 0.3, error: 'HTTP 500: boom' },
  { i: -1, warmup: true, ttft_s: 5, latency_s: 9 },
];

describe('SLO attainment, goodput and energy per SLO-meeting token', () => {
  it('counts a request good only when it meets every objective, errors as misses', () => {
    const p = summarize(run(TEN), { slo: { fallback: objectives } }).points[0];
    const slo = p.slo!;
    // Hand-computed: energy 2000 J over 10 s; good requests 0–5: 4·100 + 100 + 50 = 550 tokens.
    assert.equal(p.energy.total_j, 2000);
    assert.equal(slo.requests, 10);
    assert.equal(slo.good_requests, 6);
    assert.equal(slo.good_output_tokens, 550);
    assert.equal(slo.attainment, 0.6);
    assert.equal(slo.goodput_requests_per_s, 0.6);
    assert.equal(slo.goodput_output_tokens_per_s, 55);
    assert.ok(Math.abs(slo.j_per_slo_token - 2000 / 550) < 1e-12, String(slo.j_per_slo_token));
    assert.ok(Math.abs(slo.j_per_slo_request - 2000 / 6) < 1e-12);
    // Per objective: TTFT met by 6 of 10; ITL and e2e by the 9 that did not fail.
    assert.equal(slo.per_objective.ttft!.attainment, 0.6);
    assert.equal(slo.per_objective.itl!.attainment, 0.9);
    assert.equal(slo.per_objective.e2e!.attainment, 0.9);
    assert.equal(slo.per_objective.tpot, undefined);
    // At the 90th percentile: ITL and e2e are met (9/10), TTFT is not, so the point is not.
    assert.equal(slo.per_objective.ttft!.met, false);
    assert.equal(slo.per_objective.itl!.met, true);
    assert.equal(slo.per_objective.e2e!.met, true);
    assert.equal(slo.met, false);
    // The J/token of all tokens stays what it was: 2000 J / (8·100 + 50 + 0) tokens.
    assert.ok(Math.abs(p.j_per_output_token - 2000 / 850) < 1e-12);
    assert.deepEqual(slo.objectives, { ttft_s: 0.5, itl_s: 0.05, e2e_s: 20, percentile: 90 });
  });

  it('meets the SLO when every objective holds at its percentile', () => {
    const p = summarize(run(TEN), { slo: { fallback: { ...objectives, ttftS: 1, percentile: 90 } } }).points[0];
    assert.equal(p.slo!.good_requests, 9);
    assert.equal(p.slo!.met, true);
    // At the 99th percentile the one error is too many.
    const strict = summarize(run(TEN), { slo: { fallback: { ...objectives, ttftS: 1, percentile: 99 } } }).points[0];
    assert.equal(strict.slo!.met, false);
  });

  it('judges TPOT as vLLM does: (e2e − TTFT) / (output tokens − 1)', () => {
    const at = (latency: number, tokens: number, ttft = 0.1) =>
      requestMetrics({ type: 'request', ok: true, ttft_s: ttft, latency_s: latency, output_tokens: tokens } as RequestEvent);
    assert.ok(Math.abs(at(2.1, 101).tpot! - 0.02) < 1e-12);
    assert.equal(at(0.3, 1).tpot, 0, 'one token has no time per output token');
    assert.equal(requestMetrics({ type: 'request', ok: true, latency_s: 2, output_tokens: 5 } as RequestEvent).tpot, undefined, 'no TTFT, no TPOT');
    const reqs: Req[] = [
      { i: 0, ttft_s: 0.1, latency_s: 2.1, output_tokens: 101 }, // 20 ms
      { i: 1, ttft_s: 0.1, latency_s: 3.1, output_tokens: 101 }, // 30 ms
    ];
    const slo = summarize(run(reqs), { slo: { fallback: { tpotS: 0.025, percentile: 50 } } }).points[0].slo!;
    assert.equal(slo.good_requests, 1);
    assert.equal(slo.good_output_tokens, 101);
    assert.ok(Math.abs(slo.j_per_slo_token - 2000 / 101) < 1e-12);
    assert.equal(slo.met, true, '1 of 2 meets it, the 50th percentile asks no more');
  });

  it('has no slo without objectives, and a point of its own takes its own', () => {
    assert.equal(summarize(run(TEN)).points[0].slo, undefined);
    const plan = sloPlan(objectives, [{ id: 'p', slo: { ...objectives, ttftS: 1 } }]);
    assert.equal(summarize(run(TEN), { slo: plan }).points[0].slo!.good_requests, 9);
    assert.equal(summarize(run(TEN, 'other'), { slo: plan }).points[0].slo!.good_requests, 6);
    assert.equal(sloPlan(undefined, [{ id: 'p' }]), undefined);
  });

  it('writes the SLO figures to the CSV', () => {
    const summary = summarize(run(TEN), { slo: { fallback: objectives } });
    const [header, row] = summaryCsv(summary).trim().split('\n');
    const cells = Object.fromEntries(header.split(',').map((h, i) => [h, row.split(',')[i]]));
    assert.equal(cells.slo_attainment, '0.6');
    assert.equal(cells.slo_met, 'false');
    assert.equal(Number(cells.j_per_slo_token), 2000 / 550);
    assert.equal(cells.goodput_requests_per_s, '0.6');
  });
});

describe('slo in the config', () => {
  const base = 'name: t\nserver: { sim: true }\nmodel: { id: m }\n';

  it('resolves durations to seconds, with the percentile defaulting to 99', () => {
    const loaded = loadConfig(`${base}slo: { ttft: 500ms, itl: 50ms, e2e: 20s, tpot: 0.04 }\n`);
    assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
    assert.deepEqual(loaded.config!.slo, { ttftS: 0.5, itlS: 0.05, e2eS: 20, tpotS: 0.04, percentile: 99 });
    assert.deepEqual(loaded.points[0].slo, loaded.config!.slo);
  });

  it("takes a sweep point's own objectives over the config's, and keeps them out of its id", () => {
    const loaded = loadConfig(`${base}slo: { ttft: 500ms, percentile: 95 }\nsweep:\n  points:\n    - { concurrency: 1, slo: { ttft: 2s, e2e: 1m } }\n    - { concurrency: 8 }\n`);
    assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
    const [one, eight] = loaded.points;
    assert.equal(one.id, 'concurrency-1');
    assert.deepEqual(one.params, { concurrency: 1 });
    assert.deepEqual(one.slo, { ttftS: 2, e2eS: 60, percentile: 95 });
    assert.deepEqual(eight.slo, { ttftS: 0.5, percentile: 95 });
  });

  it('rejects what is not an objective', () => {
    for (const bad of ['slo: { ttft: fast }', 'slo: {}', 'slo: { percentile: 0 }', 'slo: { p99: 1s }', 'slo: { percentile: 101 }']) {
      const errors = loadConfig(`${base}${bad}\n`).diagnostics.filter((d) => d.severity === 'error');
      assert.ok(errors.length > 0, `${bad} should be an error`);
      assert.ok(errors.some((e) => e.path[0] === 'slo'), `${bad}: ${errors.map((e) => e.message).join('; ')}`);
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentEvent } from '../../src/core/protocol/events';
import { EventStream } from '../../src/core/run/stream';
import { EnergyCurve, summarize, TokenTimeline } from '../../src/core/run/summarize';
import { Histogram } from '../../src/core/run/histogram';
import { summaryNotes } from '../../src/core/run/summary-notes';

/**
 * A synthetic run: 2 s idle baseline at 50 W/GPU, then one point with 2 GPUs whose power is a ramp;
 * the agent measures from `measure` (t = 2) to `cooldown` (t = 4, every request answered).
 */
function syntheticRun(opts: { counter: boolean; interval?: number }): AgentEvent[] {
  const events: Omit<AgentEvent, 'seq' | 'v'>[] = [];
  const dt = opts.interval ?? 0.1;
  const power = (t: number) => (t < 2 ? 50 : 100 + 50 * (t - 2)); // W per GPU
  const energy = (t: number) => (t < 2 ? 50 * t : 100 + 100 * (t - 2) + 25 * (t - 2) ** 2); // exact integral
  events.push({ type: 'hello', t: 0, run_id: 'r1', host: 'h', agent_version: 't', pid: 1, telemetry: { source: 'sim', interval_s: dt }, simulated: true, gpus: [{ index: 0, name: 'G' }, { index: 1, name: 'G' }] } as never);
  events.push({ type: 'phase', t: 0, phase: 'baseline' } as never);
  const samplesUntil = (from: number, to: number) => {
    for (let k = Math.round(from / dt); k * dt <= to + 1e-9; k++) {
      const t = k * dt;
      events.push({ type: 'sample', t, gpus: [0, 1].map((i) => ({ i, p_w: power(t), ...(opts.counter ? { e_j: energy(t) } : {}) })) } as never);
    }
  };
  samplesUntil(0, 1.95);
  events.push({ type: 'phase', t: 2, phase: 'measure', point: 'p1' } as never);
  events.push({ type: 'point', t: 2, point: 'p1', state: 'start' } as never);
  samplesUntil(2, 3.95);
  events.push({ type: 'phase', t: 4, phase: 'cooldown', point: 'p1' } as never);
  for (let i = 0; i < 10; i++)
    events.push({ type: 'request', t: 2.1 + i * 0.2, point: 'p1', i, ok: true, t_start: 2 + i * 0.2, t_end: 2.1 + i * 0.2, prompt_tokens: 100, output_tokens: 1 + i * 10, ttft_s: 0.05, latency_s: 0.5 + 0.01 * i * 10, itl_s: [0.01, 0.01] } as never);
  events.push({ type: 'request', t: 3, point: 'p1', i: 10, ok: false, t_start: 2.9, t_end: 3, prompt_tokens: 0, output_tokens: 0, latency_s: 0.1, error: 'boom' } as never);
  events.push({ type: 'request', t: 2, point: 'p1', i: -1, ok: true, warmup: true, t_start: 1.9, t_end: 2, prompt_tokens: 5, output_tokens: 5, latency_s: 0.1 } as never);
  samplesUntil(4, 6.05);
  events.push({ type: 'point', t: 6, point: 'p1', state: 'end', status: 'ok' } as never);
  events.push({ type: 'done', t: 6.2, status: 'ok', caps_restored: true } as never);
  return events.map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
}

const close = (actual: number, expected: number, rel: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= rel * Math.abs(expected), `${what}: ${actual} vs ${expected}`);

describe('summarize', () => {
  it('takes energy from the counter exactly, and says so', () => {
    const s = summarize(syntheticRun({ counter: true }));
    const p = s.points[0];
    // Per GPU over [2, 4]: 100·2 + 25·4 = 300 J; two GPUs.
    assert.equal(p.energy.method, 'counter');
    close(p.energy.total_j, 600, 1e-9, 'counter energy');
    assert.equal(p.window.duration_s, 2);
    close(p.energy.avg_power_w, 300, 1e-9, 'average power');
  });

  it('integrates sampled power with the trapezoid rule when there is no counter', () => {
    const s = summarize(syntheticRun({ counter: false }));
    const p = s.points[0];
    assert.equal(p.energy.method, 'integral');
    close(p.energy.total_j, 600, 1e-9, 'a piecewise-linear power integrates exactly');
    assert.equal(s.telemetry.samples > 50, true);
    close(s.telemetry.achieved_interval_s!, 0.1, 1e-6, 'achieved interval');
  });

  it('splits idle and dynamic energy with the baseline', () => {
    const s = summarize(syntheticRun({ counter: true }));
    assert.deepEqual(Object.keys(s.idle_baseline!.per_gpu_w), ['0', '1']);
    close(s.idle_baseline!.total_w, 100, 1e-9, 'idle total');
    close(s.points[0].energy.idle_j, 200, 1e-9, 'idle energy = 100 W × 2 s');
    close(s.points[0].energy.dynamic_j, 400, 1e-9, 'dynamic energy');
  });

  it('counts tokens and requests, leaving out warm-up and failures from the rates', () => {
    const p = summarize(syntheticRun({ counter: true })).points[0];
    assert.deepEqual(p.requests, { ok: 10, errors: 1, warmup: 1 });
    assert.equal(p.tokens.output, 460);
    assert.equal(p.tokens.input, 1000);
    close(p.throughput.output_tokens_per_s, 230, 1e-9, 'tokens/s');
    close(p.j_per_output_token, 600 / 460, 1e-9, 'J/token');
    close(p.j_per_response, 60, 1e-9, 'J/response');
    assert.equal(p.latency.ttft_s!.p50.toFixed(3), '0.050');
    assert.equal(p.latency.itl_s!.n, 20);
  });

  it('measures the steady state up to the last request sent', () => {
    const p = summarize(syntheticRun({ counter: true })).points[0];
    // The last request starts at 3.8 s: per GPU 100·1.8 + 25·1.8² = 261 J over 1.8 s, two GPUs.
    close(p.steady!.duration_s, 1.8, 1e-9, 'steady duration');
    close(p.steady!.avg_power_w, (2 * 261) / 1.8, 0.01, 'steady power');
    // Tokens decoded before 3.8 s: requests 0..8 (1 + 10·i tokens each); request 9 decodes after it.
    // Tokens are kept in 0.5 s bins (memory bounded by duration), so the last bin is split evenly:
    // here that counts 22 tokens of the bin [3.5, 4.0) too many; over a real run's minutes it vanishes.
    close(p.steady!.j_per_output_token, 522 / 369, 0.06, 'steady J/token');
  });

  it('integrates interval-averaged power readings as steps', () => {
    const events = syntheticRun({ counter: false }).map((e) => {
      if (e.type === 'hello') return { ...e, telemetry: { ...e.telemetry!, power_reading: 'interval_average' as const } };
      // Turn each instant reading into the mean over the interval before it.
      if (e.type === 'sample') return { ...e, gpus: e.gpus.map((g) => ({ ...g, p_w: e.t < 2 || e.t - 0.1 < 2 ? g.p_w : 100 + 50 * (e.t - 0.05 - 2) })) };
      return e;
    });
    close(summarize(events).points[0].energy.total_j, 600, 1e-6, 'steps of interval means add up exactly');
  });

  it("fits HELM's idealized form to the requests", () => {
    const p = summarize(syntheticRun({ counter: true })).points[0];
    close(p.idealized!.alpha_s, 0.5, 1e-9, 'alpha');
    close(p.idealized!.beta_s, 0.01, 1e-9, 'beta');
  });

  it('prices energy with the cost settings', () => {
    const s = summarize(syntheticRun({ counter: true }), { cost: { usdPerKwh: 3.6, gco2PerKwh: 3600, pue: 2, usdPerGpuHour: 1 } });
    close(s.points[0].cost.usd, (600 * 2 * 3.6) / 3.6e6, 1e-9, 'usd');
    close(s.points[0].cost.gco2, (600 * 2 * 3600) / 3.6e6, 1e-9, 'gCO2');
    assert.equal(s.status, 'ok');
    assert.equal(s.caps_restored, true);
    assert.equal(s.simulated, true);
  });
});

describe('event stream', () => {
  const lines = syntheticRun({ counter: true }).map((e) => JSON.stringify(e) + '\n');
  const bytes = Buffer.from(lines.join(''));

  it('gives the same events however the bytes are cut, and tracks the byte offset', () => {
    for (const cut of [1, 7, 100, 4096]) {
      const seen: number[] = [];
      const stream = new EventStream({ onEvent: (e) => seen.push(e.seq), onProblem: (p) => assert.fail(p.message) });
      for (let i = 0; i < bytes.length; i += cut) stream.push(bytes.subarray(i, i + cut));
      assert.deepEqual(seen, lines.map((_, i) => i));
      assert.equal(stream.offset, bytes.length);
    }
  });

  it('resumes from an offset without losing or doubling events', () => {
    const seen: number[] = [];
    const first = new EventStream({ onEvent: (e) => seen.push(e.seq) });
    first.push(bytes.subarray(0, 1000)); // a connection that drops mid-line
    const resumed = new EventStream({ onEvent: (e) => seen.push(e.seq) }, { offset: first.offset, nextSeq: first.nextSeq });
    resumed.push(bytes.subarray(first.offset));
    assert.deepEqual(seen, lines.map((_, i) => i));
  });

  it('reports garbled lines, gaps and duplicates, and keeps going', () => {
    const problems: string[] = [];
    const seen: number[] = [];
    const stream = new EventStream({ onEvent: (e) => seen.push(e.seq), onProblem: (p) => problems.push(`${p.kind}: ${p.message}`) });
    stream.push(Buffer.from(lines[0] + 'garbage{\n' + lines[2] + lines[2] + '{"seq":3}\n' + lines[3]));
    assert.deepEqual(seen, [0, 2, 3]);
    assert.deepEqual(problems, [
      'garbled: line at byte ' + lines[0].length + ': not JSON: "garbage{"',
      `gap: events 1..1 missing before byte ${lines[0].length + 9}`,
      `duplicate: event 2 received twice (expected 3); ignored`,
      `garbled: line at byte ${lines[0].length + 9 + 2 * lines[2].length}: event 3: missing or invalid "t"`,
    ]);
  });
});

describe('histogram', () => {
  it('gives percentiles within 1% in fixed memory', () => {
    const h = new Histogram();
    for (let i = 1; i <= 100000; i++) h.add(i / 1000);
    const s = h.summary()!;
    close(s.p50, 50, 0.01, 'p50');
    close(s.p99, 99, 0.01, 'p99');
    close(s.mean, 50.0005, 1e-9, 'mean');
    assert.equal(s.max, 100);
  });
});

describe('steady-state bookkeeping stays bounded', () => {
  it('keeps at most about a thousand entries per point however long it runs, and still adds up', () => {
    const curve = new EnergyCurve();
    const tokens = new TokenTimeline();
    // A day at 10 Hz: constant 1 kW, 100 tokens a second.
    for (let i = 1; i <= 864_000; i++) {
      const t = i / 10;
      curve.record(t, 1000 * t, false);
      if (i % 10 === 0) tokens.add(0, t - 1, t, 100);
    }
    assert.ok(curve.points.length <= 1025, `${curve.points.length} curve points`);
    const half = curve.points.find(([t]) => t >= 43_200)!;
    close(half[1], 1000 * half[0], 1e-9, 'the curve keeps exact values at the points it keeps');
    close(tokens.before(43_200), 100 * 43_200, 0.01, 'tokens in the first half day');
  });
});

describe('samples written just after the event that opens or closes a window', () => {
  it('count exactly the part of their interval inside the window', () => {
    // 100 W constant, one GPU, samples every 0.1 s. The agent writes `measure` (t = 1.02) and
    // `cooldown` (t = 2.09) after samples it took later (t = 1.1, 2.1), so those come first in the file.
    const events: Omit<AgentEvent, 'seq' | 'v'>[] = [
      { type: 'hello', t: 0, run_id: 'r', host: 'h', agent_version: 't', pid: 1, telemetry: { source: 'sim', interval_s: 0.1 }, simulated: true, gpus: [{ index: 0, name: 'G' }] } as never,
    ];
    const sample = (t: number) => ({ type: 'sample', t, gpus: [{ i: 0, p_w: 100, e_j: 100 * t }] }) as never;
    for (let k = 0; k <= 30; k++) {
      const t = k / 10;
      if (Math.abs(t - 1.1) < 1e-9) events.push(sample(t), { type: 'phase', t: 1.02, phase: 'measure', point: 'p' } as never);
      else if (Math.abs(t - 2.1) < 1e-9) events.push(sample(t), { type: 'phase', t: 2.09, phase: 'cooldown', point: 'p' } as never);
      else events.push(sample(t));
    }
    const numbered = events.map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
    const counter = summarize(numbered).points[0];
    close(counter.energy.total_j, 107, 1e-9, 'counter: 100 W × 1.07 s');
    const sampled = summarize(numbered.map((e) => (e.type === 'sample' ? { ...e, gpus: e.gpus.map(({ e_j: _, ...g }) => g) } : e))).points[0];
    close(sampled.energy.total_j, 107, 1e-9, 'samples: 100 W × 1.07 s');
  });
});

/**
 * Two hosts of one sweep, each with one GPU and a point of its own, overlapping in time: host a idles
 * at 70 W over [0, 1] and measures p1 at 450 W over [1.5, 5.5]; host b idles at 60 W over [2, 3] (while
 * a is busy) and measures p2 at 300 W over [3.5, 6.5].
 */
function twoHostRun(): { a: AgentEvent[]; b: AgentEvent[] } {
  const host = (node: string, idle: [number, number, number], busy: [number, number, number], point: string) => {
    const events: Omit<AgentEvent, 'seq' | 'v'>[] = [];
    const [i0, i1, idleW] = idle;
    const [b0, b1, busyW] = busy;
    events.push({ type: 'hello', t: i0, run_id: `r-${node}`, host: node, agent_version: 't', pid: 1, telemetry: { source: 'sim', interval_s: 0.1 }, simulated: true, gpus: [{ index: 0, name: 'G' }], node } as never);
    events.push({ type: 'phase', t: i0, phase: 'baseline', node } as never);
    for (let k = Math.round(i0 * 10); k <= Math.round(b1 * 10) + 2; k++) {
      const t = k / 10;
      if (Math.abs(t - i1) < 1e-9) events.push({ type: 'phase', t, phase: 'warmup', point, node } as never);
      if (Math.abs(t - b0) < 1e-9) {
        events.push({ type: 'phase', t, phase: 'measure', point, node } as never);
        events.push({ type: 'point', t, point, state: 'start', node } as never);
      }
      if (Math.abs(t - b1) < 1e-9) events.push({ type: 'phase', t, phase: 'cooldown', point, node } as never);
      events.push({ type: 'sample', t, gpus: [{ i: 0, p_w: t >= b0 - 1e-9 ? busyW : idleW }], node } as never);
    }
    events.push({ type: 'request', t: b1, point, i: 0, ok: true, t_start: b0, t_end: b1, prompt_tokens: 10, output_tokens: 100, latency_s: b1 - b0, node } as never);
    events.push({ type: 'point', t: b1 + 0.2, point, state: 'end', status: 'ok', node } as never);
    events.push({ type: 'done', t: b1 + 0.2, status: 'ok', caps_restored: true, node } as never);
    return events.map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
  };
  return { a: host('a', [0, 1, 70], [1.5, 5.5, 450], 'p1'), b: host('b', [2, 3, 60], [3.5, 6.5, 300], 'p2') };
}

describe('a sweep over several hosts', () => {
  const check = (events: AgentEvent[], order: string) => {
    const s = summarize(events, { pointsPerNode: true });
    assert.deepEqual(Object.keys(s.idle_baseline?.per_gpu_w ?? {}).sort(), ['a:0', 'b:0']);
    close(s.idle_baseline!.per_gpu_w['a:0']!, 70, 1e-9, `${order}: host a's idle from its own baseline`);
    close(s.idle_baseline!.per_gpu_w['b:0']!, 60, 1e-9, `${order}: host b's idle from its own baseline, though a was busy then`);
    const p1 = s.points.find((p) => p.point === 'p1')!;
    const p2 = s.points.find((p) => p.point === 'p2')!;
    close(p1.energy.total_j, 450 * 4, 1e-9, `${order}: p1 counts host a's GPU only`);
    close(p2.energy.total_j, 300 * 3, 1e-9, `${order}: p2 counts host b's GPU only`);
    close(p1.energy.idle_j, 70 * 4, 1e-9, `${order}: p1's idle share`);
    assert.deepEqual(p1.energy.per_gpu.map((g) => g.gpu), ['a:0']);
  };

  it('counts each point on its own host, whether the hosts\' events come one after the other or interleaved', () => {
    const { a, b } = twoHostRun();
    check([...a, ...b], 'host by host');
    check([...b, ...a], 'later host first');
    check([...a, ...b].sort((x, y) => x.t - y.t), 'interleaved in time');
  });

  it('without per-node points (Slurm), every node\'s GPUs count toward node 0\'s point', () => {
    const { a, b } = twoHostRun();
    const samplesOfB = b.filter((e) => e.type === 'sample' || e.type === 'hello');
    const s = summarize([...a, ...samplesOfB].sort((x, y) => x.t - y.t));
    const p1 = s.points.find((p) => p.point === 'p1')!;
    assert.deepEqual(p1.energy.per_gpu.map((g) => g.gpu).sort(), ['a:0', 'b:0']);
  });

  it('reports the power cap the agent set, from its cap event, and none for a point whose cap failed', () => {
    const events = [
      { type: 'hello', t: 0, run_id: 'r', host: 'h', agent_version: 't', pid: 1, telemetry: { source: 'sim', interval_s: 1 }, simulated: true, gpus: [{ index: 0, name: 'G' }] },
      { type: 'phase', t: 0, phase: 'cap', point: 'capped' },
      { type: 'cap', t: 0, action: 'set', gpus: [{ i: 0, from_w: 700, to_w: 350 }] },
      { type: 'phase', t: 1, phase: 'measure', point: 'capped' },
      { type: 'point', t: 1, point: 'capped', state: 'start' },
      { type: 'phase', t: 2, phase: 'cooldown', point: 'capped' },
      { type: 'point', t: 2, point: 'capped', state: 'end', status: 'ok' },
      // The config asks 50 W for the next point: outside the GPU's range, so the agent says so and sets nothing.
      { type: 'phase', t: 2, phase: 'cap', point: 'too-low' },
      { type: 'error', t: 2, where: 'cap', fatal: false, point: 'too-low', message: "power cap 50 W is outside GPU 0's range 100-700 W" },
      { type: 'cap', t: 2, action: 'restore', gpus: [{ i: 0, from_w: 350, to_w: 700 }] },
      { type: 'phase', t: 3, phase: 'measure', point: 'too-low' },
      { type: 'point', t: 3, point: 'too-low', state: 'start' },
      { type: 'phase', t: 4, phase: 'cooldown', point: 'too-low' },
      { type: 'point', t: 4, point: 'too-low', state: 'end', status: 'error' },
    ].map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
    const s = summarize(events);
    assert.equal(s.points.find((p) => p.point === 'capped')?.power_cap_w, 350);
    assert.equal(s.points.find((p) => p.point === 'too-low')?.power_cap_w, undefined);
  });

  it('measures each repeat in its own window: two repeats at a steady 100 W give 1 J/token and 100 tokens/s', () => {
    // One GPU at 100 W throughout. Each repeat measures for 1 s and generates 100 tokens; between them
    // 2 s of cap and warm-up that belong to no window.
    const events: object[] = [
      { type: 'hello', t: 0, run_id: 'r', host: 'h', agent_version: 't', pid: 1, telemetry: { source: 'sim', interval_s: 0.1 }, simulated: true, gpus: [{ index: 0, name: 'G' }] },
      { type: 'point', t: 0, point: 'p', repeat: 0, state: 'start' },
    ];
    const windows = [
      [0, 1],
      [3, 4],
    ];
    windows.forEach(([from, to], repeat) => {
      if (repeat) events.push({ type: 'point', t: from, point: 'p', repeat, state: 'start' });
      events.push({ type: 'phase', t: from, phase: 'measure', point: 'p', repeat });
      for (let k = 0; k < 4; k++)
        events.push({ type: 'request', t: from + 0.25 * (k + 1), point: 'p', repeat, i: k, ok: true, t_start: from, t_end: from + 0.25 * (k + 1), prompt_tokens: 10, output_tokens: 25, latency_s: 0.25 * (k + 1) });
      events.push({ type: 'phase', t: to, phase: 'cooldown', point: 'p', repeat });
      events.push({ type: 'point', t: to, point: 'p', repeat, state: 'end', status: 'ok' });
    });
    for (let k = 0; k <= 50; k++) events.push({ type: 'sample', t: k * 0.1, gpus: [{ i: 0, p_w: 100, e_j: 10 * k }] });
    events.sort((a, b) => (a as { t: number }).t - (b as { t: number }).t);
    const s = summarize(events.map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent));
    const p = s.points[0];
    close(p.window.duration_s, 2, 1e-9, 'measured time: two 1 s windows');
    close(p.energy.total_j, 200, 1e-9, 'energy: 100 J per window');
    close(p.j_per_output_token, 1, 1e-9, 'J/token');
    close(p.throughput.output_tokens_per_s, 100, 1e-9, 'tokens/s');
    assert.equal(p.repeats?.length, 2);
    for (const r of p.repeats!) {
      close(r.j_per_output_token, 1, 1e-9, `repeat ${r.repeat} J/token`);
      close(r.output_tokens_per_s, 100, 1e-9, `repeat ${r.repeat} tokens/s`);
    }
    close(p.spread!.j_per_output_token!.relative, 0, 1e-9, 'identical repeats do not spread');
  });

  it('says how each point counted its tokens and how many requests the server throttled', () => {
    const base = { type: 'request', point: 'p', ok: true, t_start: 0, t_end: 1, prompt_tokens: 1, latency_s: 1 };
    const events = [
      { type: 'phase', t: 0, phase: 'measure', point: 'p' },
      { ...base, t: 1, i: 0, output_tokens: 10, tokens_from: 'usage' },
      { ...base, t: 1, i: 1, output_tokens: 9, tokens_from: 'chunks' },
      { ...base, t: 1, i: 2, ok: false, output_tokens: 0, http_status: 429, error: 'HTTP 429: slow down' },
      { ...base, t: 1, i: 3, ok: false, output_tokens: 0, http_status: 500, error: 'HTTP 500' },
      { type: 'phase', t: 1, phase: 'measure', point: 'q' },
      { ...base, point: 'q', t: 2, i: 0, output_tokens: 4, tokens_from: 'chunks' },
      { ...base, point: 'r', t: 2, i: 0, output_tokens: 4 },
    ].map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
    const s = summarize(events);
    const of = (id: string) => s.points.find((p) => p.point === id)!;
    assert.equal(of('p').tokens_from, 'mixed');
    assert.equal(of('q').tokens_from, 'chunks');
    assert.equal(of('r').tokens_from, 'reported');
    assert.deepEqual(of('p').requests, { ok: 2, errors: 2, warmup: 0, throttled: 1 });
  });

  it('carries how the load generator did over the repeats, and says when it fell behind or fell short', () => {
    const request = (point: string, i: number, t: number) =>
      ({ type: 'request', point, i, t, ok: true, t_start: t - 1, t_end: t, prompt_tokens: 1, output_tokens: 5, latency_s: 1, tokens_from: 'usage' });
    const end = (point: string, repeat: number, fields: Record<string, unknown>) => ({ type: 'point', t: 9, point, repeat, state: 'end', status: 'ok', ...fields });
    const lag = (p99: number, max: number) => ({ p50: 0.5, p99, max });
    const events = [
      { type: 'phase', t: 0, phase: 'measure', point: 'steady', repeat: 0 },
      ...[0, 1, 2, 3].map((i) => request('steady', i, 1 + i)),
      end('steady', 0, { concurrency: 4, inflight_max: 4, inflight_mean: 3.5, client_lag_ms: lag(1, 3), client_behind: false, arrival_stamps: 'kernel', load_processes: 1, first_tokens_shared_read: 0.25 }),
      { type: 'phase', t: 10, phase: 'measure', point: 'steady', repeat: 1 },
      ...[4, 5, 6, 7].map((i) => request('steady', i, 10 + i)),
      end('steady', 1, { concurrency: 4, inflight_max: 3, inflight_mean: 2.5, client_lag_ms: lag(8, 60), client_behind: true, arrival_stamps: 'loop', load_processes: 2, arrivals_shared_read: 0.034, first_tokens_shared_read: 0 }),
      { type: 'phase', t: 20, phase: 'measure', point: 'rate' },
      ...Array.from({ length: 100 }, (_, i) => request('rate', i, 21 + i * 0.1)),
      end('rate', 0, { request_rate: 20, request_rate_achieved: 12, client_behind: false, arrival_stamps: 'kernel', load_processes: 1, first_tokens_shared_read: 0.01 }),
      { type: 'phase', t: 40, phase: 'measure', point: 'command' },
      request('command', 0, 41),
      end('command', 0, {}),
    ].map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
    const s = summarize(events);
    const of = (id: string) => s.points.find((p) => p.point === id)!;
    // the worst repeat's lag, the most in flight, either repeat behind: the point is flagged
    assert.deepEqual(of('steady').client, {
      concurrency: 4, inflight_max: 4, inflight_mean: 3, lag_ms: { p50: 0.5, p99: 8, max: 60 }, behind: true, arrival_stamps: 'mixed', processes: 2,
      shared_reads: 0.034, first_shared_reads: 0.25,
    });
    assert.equal(of('command').client, undefined, 'a command workload has no load generator to report');
    const notes = summaryNotes(s);
    assert.ok(notes.some((n) => n.startsWith('warning: steady: the load generator fell behind (its loop ran late: p99 8.0 ms, max 60.0 ms)')), notes.join('\n'));
    assert.ok(!notes.some((n) => n.includes('in flight')), 'the most in flight reached the 4 asked for');
    assert.ok(notes.some((n) => n.startsWith('warning: steady: 3.4% of tokens were read together with the one before')), notes.join('\n'));
    assert.ok(!notes.some((n) => n.startsWith('warning: rate: ') && n.includes('read together')), 'no shared reads reported: no note');
    // the worst repeat's: one of 4 first tokens read with its second (1% at the rate point is not past the limit)
    assert.ok(notes.some((n) => n.startsWith('warning: steady: 25.0% of requests had their first token read together with the second')), notes.join('\n'));
    assert.ok(!notes.some((n) => n.startsWith('warning: rate: ') && n.includes('first token')), notes.join('\n'));
    // 12/s of 20/s over 100 requests: a 40% shortfall, far past a Poisson count's 30%
    assert.ok(notes.some((n) => n === 'warning: rate: requests went out at 12.00/s of the 20/s asked for'), notes.join('\n'));
    const short = summarize(events.map((e) => (e.type === 'point' && e.point === 'steady' ? ({ ...e, inflight_max: 2 } as AgentEvent) : e)));
    assert.ok(summaryNotes(short).includes('warning: steady: at most 2 of the 4 requests asked for were in flight at once'));
  });
});

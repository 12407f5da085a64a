import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildStepModel,
  decodeStep,
  decodeUtil,
  effectiveLimit,
  getGpu,
  getModel,
  physicalDecodeUtil,
  predictPoint,
  prefillStep,
  simProfileFor,
  underLimit,
  type PointRequest,
  type SimProfile,
} from '../../src/core/estimate';

const close = (a: number, b: number, rel = 1e-9) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b));

/**
 * A reference run of the protocol's simulated server (docs/protocol.md, SimProfile), closed loop:
 * one step at a time; a prefill step over every waiting prompt when the batch has room (it yields
 * each request's first token), else a decode step over the running sequences. A finished request's
 * client sends the next one at once.
 */
function simulateClosedLoop(profile: SimProfile, req: PointRequest, maxBatch: number) {
  const limit = effectiveLimit(profile, req.powerCapW);
  const p = req.inputTokens;
  const o = req.outputTokens;
  let waiting = Math.min(req.concurrency ?? 1, req.numPrompts);
  let issued = waiting;
  let done = 0;
  let t = 0;
  let energyPerGpu = 0;
  let running: number[] = [];
  while (done < req.numPrompts) {
    const room = maxBatch - running.length;
    if (waiting > 0 && room > 0) {
      const k = Math.min(waiting, room);
      const step = prefillStep(profile, k * p, limit);
      t += step.seconds;
      energyPerGpu += step.seconds * step.drawW;
      waiting -= k;
      running.push(...new Array<number>(k).fill(1));
      continue;
    }
    const context = running.reduce((s, generated) => s + p + generated, 0);
    const step = decodeStep(profile, running.length, context, limit);
    t += step.seconds;
    energyPerGpu += step.seconds * step.drawW;
    running = running.map((g) => g + 1);
    const finished = running.filter((g) => g >= o).length;
    running = running.filter((g) => g < o);
    done += finished;
    const next = Math.min(finished, req.numPrompts - issued);
    waiting += next;
    issued += next;
  }
  return { runtime_s: t, energy_j: energyPerGpu * profile.gpu.count };
}

const CASES: { name: string; req: PointRequest }[] = [
  {
    name: 'Llama-3.1-8B on 1×H100, concurrency 64',
    req: { model: getModel('llama-3.1-8b'), gpu: getGpu('H100'), gpuCount: 1, inputTokens: 256, outputTokens: 200, numPrompts: 640, concurrency: 64 },
  },
  {
    name: 'Llama-3.1-70B on 4×H100 under a 450 W cap, a partial last wave',
    req: { model: getModel('llama-3.1-70b'), gpu: getGpu('H100'), gpuCount: 4, inputTokens: 512, outputTokens: 128, numPrompts: 100, concurrency: 32, powerCapW: 450 },
  },
  {
    name: 'Llama-3.1-8B on 1×H100, 512 clients against the simulator\'s 256-sequence limit',
    req: { model: getModel('llama-3.1-8b'), gpu: getGpu('H100'), gpuCount: 1, inputTokens: 128, outputTokens: 64, numPrompts: 1024, concurrency: 512, maxBatch: 256 },
  },
  {
    name: 'Qwen3-30B-A3B (mixture of experts) on 1×A100-80GB, concurrency 16',
    req: { model: getModel('qwen3-30b-a3b'), gpu: getGpu('A100-80GB'), gpuCount: 1, inputTokens: 128, outputTokens: 300, numPrompts: 48, concurrency: 16 },
  },
];

describe('SimProfile', () => {
  it('has exactly the fields of docs/protocol.md, finite and in range', () => {
    const profile = simProfileFor({ model: getModel('llama-3.1-8b'), gpu: getGpu('H100'), gpuCount: 2 });
    assert.deepEqual(Object.keys(profile).sort(), ['cap', 'decode', 'gpu', 'noise', 'prefill', 'v']);
    assert.deepEqual(Object.keys(profile.gpu).sort(), ['count', 'idle_w', 'max_limit_w', 'memory_mb', 'min_limit_w', 'name', 'tdp_w']);
    assert.deepEqual(Object.keys(profile.prefill).sort(), ['fixed_s', 's_per_token', 'util']);
    assert.deepEqual(Object.keys(profile.decode).sort(), ['fixed_s', 's_per_ctx_token', 's_per_seq', 'util_base', 'util_max', 'util_per_seq']);
    assert.deepEqual(Object.keys(profile.cap), ['time_exponent']);
    assert.deepEqual(profile.noise, { rel_std: 0, seed: 1 });
    assert.equal(profile.v, 1);
    assert.equal(profile.gpu.name, 'Simulated H100-SXM-80GB');
    assert.equal(profile.gpu.count, 2);
    assert.deepEqual([profile.gpu.idle_w, profile.gpu.tdp_w, profile.gpu.min_limit_w, profile.gpu.max_limit_w], [70, 700, 200, 700]);
    const numbers = [...Object.values(profile.prefill), ...Object.values(profile.decode)];
    assert.ok(numbers.every((x) => Number.isFinite(x) && x >= 0));
    assert.ok(profile.prefill.util <= 1 && profile.decode.util_max <= 1);
    assert.ok(profile.decode.fixed_s > 0.001 && profile.decode.fixed_s < 0.01, `decode fixed ${profile.decode.fixed_s}`);
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(profile)));
  });

  it('applies the cap rule exactly as the protocol states it', () => {
    const profile = simProfileFor({ model: getModel('llama-3.1-8b'), gpu: getGpu('H100'), gpuCount: 1 });
    const demand = 70 + 0.8 * (700 - 70);
    const out = underLimit(profile, 0.01, 0.8, 300);
    assert.equal(out.demandW, demand);
    assert.equal(out.drawW, 300);
    assert.equal(out.seconds, 0.01 * Math.pow((demand - 70) / (300 - 70), profile.cap.time_exponent));
    assert.deepEqual(underLimit(profile, 0.01, 0.8, 650), { seconds: 0.01, util: 0.8, demandW: demand, drawW: demand, slowdown: 1 });
  });

  for (const { name, req } of CASES) {
    it(`gives the prediction's step when evaluated at the steady-state batch: ${name}`, () => {
      const prediction = predictPoint(req);
      const b = prediction.breakdown;
      const context = req.inputTokens + req.outputTokens / 2;
      const profile = simProfileFor(req, { batch: b.batch, contextPerSeq: context, promptTokens: req.inputTokens });
      const limit = effectiveLimit(profile, req.powerCapW);
      const decode = decodeStep(profile, b.batch, b.batch * context, limit);
      assert.ok(close(decode.seconds, b.step_s), `${decode.seconds} vs ${b.step_s}`);
      assert.ok(close(decodeUtil(profile, b.batch), b.decode_util));
      assert.ok(close(decode.drawW, b.draw_w));
      assert.ok(close(prefillStep(profile, b.batch * req.inputTokens, limit).seconds, b.prefill_step_s));
    });

    it(`is what a simulated closed-loop run measures: ${name}`, () => {
      const prediction = predictPoint(req);
      const b = prediction.breakdown;
      const profile = simProfileFor(req, { batch: b.batch, contextPerSeq: req.inputTokens + req.outputTokens / 2, promptTokens: req.inputTokens });
      const run = simulateClosedLoop(profile, req, Math.min(b.kv_capacity_seqs, req.maxBatch ?? Infinity));
      assert.ok(close(run.runtime_s, prediction.runtime_s, 1e-9), `runtime ${run.runtime_s} vs ${prediction.runtime_s}`);
      assert.ok(close(run.energy_j, prediction.energy_j, 1e-9), `energy ${run.energy_j} vs ${prediction.energy_j}`);
    });
  }

  it('linearises utilisation as the tangent of the physical, time-weighted utilisation at the hinted batch', () => {
    const model = getModel('llama-3.1-70b');
    const gpu = getGpu('H100');
    for (const batch of [1, 16, 128, 512]) {
      const step = buildStepModel(model, gpu, 4, { hint: { batch, contextPerSeq: 600, promptTokens: 256 } });
      assert.ok(close(decodeUtil(step.sim, batch), physicalDecodeUtil(step, batch, 600), 1e-12), `batch ${batch}`);
      // Away from the hint the line stays close to the curve it touches.
      assert.ok(Math.abs(decodeUtil(step.sim, batch + 8) - physicalDecodeUtil(step, batch + 8, 600)) < 0.02);
    }
  });

  it('linearises the batch-dependent parts at the hinted batch only', () => {
    const req = { model: getModel('qwen3-30b-a3b'), gpu: getGpu('H100'), gpuCount: 1 };
    const at8 = simProfileFor(req, { batch: 8 });
    const at256 = simProfileFor(req, { batch: 256 });
    // More experts are touched per step at a larger batch, so less of the weight traffic is per-sequence.
    assert.ok(at256.decode.s_per_seq < at8.decode.s_per_seq);
    assert.ok(at256.decode.fixed_s > at8.decode.fixed_s);
    assert.ok(decodeUtil(at256, 256) >= decodeUtil(at8, 8));
  });
});

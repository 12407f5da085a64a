import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  EstimateError,
  PRIOR,
  WORDS_TO_WATTS_CAP,
  checkFit,
  fitCapTimeExponent,
  getGpu,
  getModel,
  listGpus,
  listModels,
  mlEnergyMeasurements,
  parseMlEnergyCsv,
  predictPoint,
  resolveMeasurement,
  wordsToWattsCapEffect,
  type PointRequest,
  type Prediction,
} from '../../src/core/estimate';

const PUBLISHED = join(__dirname, '..', '..', 'src', 'core', 'estimate', 'data', 'published');
const llama8b = getModel('llama-3.1-8b');
const h100 = getGpu('H100-SXM-80GB');

function point(over: Partial<PointRequest> = {}): PointRequest {
  return { model: llama8b, gpu: h100, gpuCount: 1, inputTokens: 256, outputTokens: 717, numPrompts: 2048, concurrency: 64, ...over };
}

describe('prior against ML.ENERGY v3 reference rows', () => {
  const rows = parseMlEnergyCsv(readFileSync(join(PUBLISHED, 'mlenergy-v3-sample.csv'), 'utf8'));
  const measurements = mlEnergyMeasurements(rows);

  it('covers Llama-3.1-8B and Qwen3-8B on H100 at batch 8 to 512', () => {
    assert.equal(measurements.length, 7);
    assert.deepEqual([...new Set(rows.map((r) => r.batch))].sort((a, b) => a - b), [8, 64, 256, 512]);
  });

  for (const [i, m] of measurements.entries()) {
    const row = rows[i]!;
    it(`predicts J/token within 25% for ${row.model} at batch ${row.batch}`, () => {
      const p = predictPoint(resolveMeasurement(m).request);
      const err = p.j_per_output_token / m.j_per_output_token! - 1;
      assert.ok(Math.abs(err) < 0.25, `predicted ${p.j_per_output_token.toFixed(4)} vs ${m.j_per_output_token} (${(err * 100).toFixed(1)}%)`);
    });
  }
});

describe('power caps', () => {
  it('reproduces From Words to Watts: 250 W → 175 W costs about +6.7% time and saves about 23% energy', () => {
    const effects = wordsToWattsCapEffect();
    for (const fx of effects) {
      const pub = WORDS_TO_WATTS_CAP.points.find((p) => p.outputTokens === fx.outputTokens)!;
      assert.ok(Math.abs(fx.timeChange - pub.timeChange) < 0.015, `time ${fx.timeChange} vs ${pub.timeChange} at ${fx.outputTokens}`);
      assert.ok(Math.abs(fx.energyChange - pub.energyChange) < 0.04, `energy ${fx.energyChange} vs ${pub.energyChange} at ${fx.outputTokens}`);
    }
    const mean = (k: 'timeChange' | 'energyChange') => effects.reduce((s, x) => s + x[k], 0) / effects.length;
    assert.ok(Math.abs(mean('timeChange') - 0.067) < 0.005, `mean time ${mean('timeChange')}`);
    assert.ok(Math.abs(mean('energyChange') - -0.232) < 0.03, `mean energy ${mean('energyChange')}`);
  });

  it('uses the exponent that the Words-to-Watts fit returns', () => {
    assert.ok(Math.abs(fitCapTimeExponent() - PRIOR.capTimeExponent) < 0.002, `${fitCapTimeExponent()} vs ${PRIOR.capTimeExponent}`);
  });

  it('stretches time and cuts power when the cap is below the demand, and changes nothing above it', () => {
    const free = predictPoint(point());
    const demand = free.breakdown.demand_w;
    const atTdp = predictPoint(point({ powerCapW: h100.tdpW }));
    assert.equal(atTdp.runtime_s, free.runtime_s);
    assert.equal(atTdp.energy_j, free.energy_j);
    // Between the decode demand and the (higher) prefill demand only the prefill steps slow down.
    const between = predictPoint(point({ powerCapW: Math.ceil(demand) + 1 }));
    assert.equal(between.breakdown.decode_s, free.breakdown.decode_s);
    assert.ok(between.breakdown.prefill_s > free.breakdown.prefill_s);

    const capped = predictPoint(point({ powerCapW: 350 }));
    assert.ok(capped.runtime_s > free.runtime_s);
    assert.ok(capped.avg_power_w <= 350 + 1e-9 && capped.avg_power_w < free.avg_power_w);
    assert.equal(capped.breakdown.draw_w, 350);
    const expected = Math.pow((demand - h100.idleW) / (350 - h100.idleW), PRIOR.capTimeExponent);
    assert.ok(Math.abs(capped.breakdown.cap_slowdown - expected) < 1e-12);
  });

  it('clamps a cap below the GPU minimum to the minimum, and says so', () => {
    const p = predictPoint(point({ powerCapW: 150 }));
    assert.equal(p.breakdown.power_limit_w, h100.minLimitW);
    assert.match(p.basisDetail, /power cap 150 W clamped to the GPU's range: 200 W/);
  });
});

describe('steady-state picture', () => {
  it('adds up: time split, energy, per-token and per-response figures', () => {
    const p = predictPoint(point());
    const b = p.breakdown;
    assert.ok(Math.abs(b.prefill_s + b.decode_s + b.idle_s - p.runtime_s) < 1e-9 * p.runtime_s);
    assert.ok(Math.abs(p.avg_power_w * p.runtime_s * 1 - p.energy_j) < 1e-6 * p.energy_j);
    assert.ok(Math.abs(p.j_per_output_token * 2048 * 717 - p.energy_j) < 1e-6 * p.energy_j);
    assert.ok(Math.abs(p.j_per_response * 2048 - p.energy_j) < 1e-6 * p.energy_j);
    assert.ok(Math.abs(p.output_tokens_per_s * p.runtime_s - 2048 * 717) < 1e-6);
    assert.equal(b.batch, 64);
    assert.equal(b.idle_share, 0);
    assert.ok(p.avg_power_w > h100.idleW && p.avg_power_w <= h100.tdpW);
  });

  it('brackets the prediction with a low–high band and explains its width', () => {
    const p = predictPoint(point());
    for (const k of ['runtime_s', 'energy_j', 'j_per_output_token'] as const) {
      assert.ok(p.low[k] < p[k] && p[k] < p.high[k], k);
    }
    assert.equal(p.basis, 'prior');
    assert.match(p.basisDetail, /band ±\d+% = ×\/÷ exp\(2σ\)/);
  });

  it('writes its lazily built breakdown, basis and bands when serialised', () => {
    const p = predictPoint(point({ powerCapW: 400 }));
    const json = JSON.parse(JSON.stringify(p)) as Record<string, unknown>;
    assert.deepEqual(json.breakdown, JSON.parse(JSON.stringify(p.breakdown)));
    assert.equal(json.basisDetail, p.basisDetail);
    assert.deepEqual(json.low, p.low);
    assert.deepEqual(json.high, p.high);
    assert.equal(json.runtime_s, p.runtime_s);
    assert.equal((json.breakdown as { power_limit_w: number }).power_limit_w, 400);
    // A second read returns the same object: the breakdown is built once.
    assert.equal(p.breakdown, p.breakdown);
  });

  it('limits the batch by the KV cache, the engine\'s sequence limit and the number of prompts', () => {
    assert.equal(predictPoint(point({ concurrency: 4096, numPrompts: 8192 })).breakdown.batch_limited_by, 'kv-cache');
    const engine = predictPoint(point({ concurrency: 512, maxBatch: 256 }));
    assert.equal(engine.breakdown.batch, 256);
    assert.equal(engine.breakdown.batch_limited_by, 'max-batch');
    assert.ok(engine.ttft_s > predictPoint(point({ concurrency: 256 })).ttft_s, 'the other 256 clients queue');
    const few = predictPoint(point({ concurrency: 64, numPrompts: 10 }));
    assert.equal(few.breakdown.batch, 10);
    assert.equal(few.breakdown.batch_limited_by, 'num-prompts');
  });

  it('idles at low Poisson request rates and saturates at high ones (Little\'s law)', () => {
    const slow = predictPoint(point({ concurrency: undefined, requestRate: 0.1, numPrompts: 200 }));
    assert.ok(slow.breakdown.idle_share > 0.4, `idle ${slow.breakdown.idle_share}`);
    assert.ok(Math.abs(slow.runtime_s - 200 / 0.1) / (200 / 0.1) < 0.01, `runtime ${slow.runtime_s}`);
    assert.ok(slow.avg_power_w < predictPoint(point({ concurrency: 1 })).avg_power_w);

    const step = (p: Prediction) => p.breakdown.step_s;
    const mid = predictPoint(point({ concurrency: undefined, requestRate: 2, numPrompts: 2000 }));
    // Little's law: the number in the system is the arrival rate times the time each request spends there.
    const residence = mid.ttft_s + 716 * step(mid);
    const inSystem = 2 * residence;
    assert.ok(Math.abs(mid.breakdown.batch - inSystem / (1 - Math.exp(-inSystem))) < 0.05 * mid.breakdown.batch);

    const flood = predictPoint(point({ concurrency: undefined, requestRate: 1000, numPrompts: 4000 }));
    assert.equal(flood.breakdown.batch_limited_by, 'saturated');
    assert.equal(flood.breakdown.idle_share, 0);
  });

  it('gives TTFT from the prefill of a request, and longer TTFT for longer prompts', () => {
    const short = predictPoint(point({ concurrency: 1, inputTokens: 128 }));
    const long = predictPoint(point({ concurrency: 1, inputTokens: 8192 }));
    assert.ok(short.ttft_s > 0 && long.ttft_s > 4 * short.ttft_s);
  });
});

describe('sanity', () => {
  it('gives more tokens/s and less J/token with more concurrency, until the batch saturates', () => {
    const levels = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
    const ps = levels.map((c) => predictPoint(point({ concurrency: c, numPrompts: 4096 })));
    for (let i = 1; i < ps.length; i++) {
      assert.ok(ps[i]!.output_tokens_per_s > ps[i - 1]!.output_tokens_per_s, `tok/s at ${levels[i]}`);
      assert.ok(ps[i]!.j_per_output_token < ps[i - 1]!.j_per_output_token, `J/token at ${levels[i]}`);
    }
    const saturated = [2048, 4096].map((c) => predictPoint(point({ concurrency: c, numPrompts: 8192 })));
    assert.equal(saturated[0]!.j_per_output_token, saturated[1]!.j_per_output_token);
    assert.equal(saturated[0]!.output_tokens_per_s, saturated[1]!.output_tokens_per_s);
  });

  it('costs more J/token for a bigger model on the same GPUs', () => {
    const on4 = (name: string) => predictPoint(point({ model: getModel(name), gpuCount: 4 })).j_per_output_token;
    const family = ['llama-7b', 'llama-13b', 'llama-65b'].map(on4);
    assert.ok(family[0]! < family[1]! && family[1]! < family[2]!, family.join(' < '));
    assert.ok(on4('llama-3.1-8b') < on4('llama-3.1-70b'));
    assert.ok(on4('qwen3-8b') < on4('qwen3-32b'));
  });

  it('draws more watts in total with more GPUs for the same work', () => {
    const total = (n: number) => {
      const p = predictPoint(point({ model: getModel('llama-3.1-70b'), gpuCount: n }));
      return p.avg_power_w * n;
    };
    const watts = [4, 8, 16].map(total);
    assert.ok(watts[0]! < watts[1]! && watts[1]! < watts[2]!, watts.join(' < '));
  });

  it('gives finite, positive figures for every catalog model on every GPU it fits', () => {
    let checked = 0;
    for (const model of listModels()) {
      for (const gpu of listGpus()) {
        for (const gpuCount of [1, 8]) {
          if (!checkFit(model, gpu, gpuCount, 256 + 717).fits) continue;
          for (const load of [{ concurrency: 1 }, { concurrency: 64 }, { requestRate: 1 }]) {
            const p = predictPoint({ model, gpu, gpuCount, inputTokens: 256, outputTokens: 717, numPrompts: 128, ...load });
            const values = [p.runtime_s, p.output_tokens_per_s, p.avg_power_w, p.energy_j, p.j_per_output_token, p.j_per_response, p.ttft_s];
            assert.ok(values.every((v) => Number.isFinite(v) && v > 0), `${model.id} on ${gpuCount}×${gpu.id} ${JSON.stringify(load)}`);
            assert.ok(p.avg_power_w >= gpu.idleW - 1e-9 && p.avg_power_w <= gpu.tdpW + 1e-9, `${model.id} on ${gpu.id}: ${p.avg_power_w} W`);
            checked++;
          }
        }
      }
    }
    assert.ok(checked > 200, `checked ${checked}`);
  });

  it('refuses a model that does not fit, naming the need, what is there and the fix', () => {
    const req = point({ model: getModel('llama-3.1-405b'), gpuCount: 1, concurrency: 1, numPrompts: 1 });
    assert.throws(
      () => predictPoint(req),
      (e: unknown) => {
        assert.ok(e instanceof EstimateError);
        assert.equal(e.code, 'model-does-not-fit');
        assert.equal(e.message, 'Llama-3.1-405B in bf16 needs 810 GB; 1×H100-SXM-80GB has 80 GB — use gpus.count ≥ 11 or fp8');
        assert.equal(e.detail?.fits, false);
        assert.equal(e.detail?.minGpuCountFp8, 6);
        return true;
      },
    );
  });

  it('explains when the weights fit but leave no room for the KV cache', () => {
    const fit = checkFit(getModel('llama-3.1-405b'), h100, 11, 973);
    assert.equal(fit.fits, false);
    assert.match(fit.message!, /needs 810 GB of weights plus .* GB of KV cache .* use gpus.count ≥ 12 or fp8/);
    assert.equal(checkFit(getModel('llama-3.1-405b'), h100, 12, 973).fits, true);
  });

  it('rejects malformed requests with a message', () => {
    assert.throws(() => predictPoint(point({ gpuCount: 0 })), /gpuCount must be a whole number ≥ 1/);
    assert.throws(() => predictPoint(point({ outputTokens: 0 })), /outputTokens must be ≥ 1/);
    assert.throws(() => predictPoint(point({ requestRate: 2 })), /concurrency or requestRate, not both/);
    assert.throws(() => predictPoint(point({ powerCapW: 50 })), /powerCapW must be above the GPU's idle power/);
  });
});

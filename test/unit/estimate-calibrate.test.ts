import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  calibrate,
  calibrateDetailed,
  findCalibration,
  getGpu,
  getModel,
  mlEnergyMeasurements,
  nelderMead,
  parseCalibrationProfile,
  parseCsv,
  parseMlEnergyCsv,
  predictPoint,
  predictPointUsing,
  resolveMeasurement,
  type CalibrationParams,
  type Measurement,
} from '../../src/core/estimate';

const PUBLISHED = join(__dirname, '..', '..', 'src', 'core', 'estimate', 'data', 'published');
const sample = () => mlEnergyMeasurements(parseMlEnergyCsv(readFileSync(join(PUBLISHED, 'mlenergy-v3-sample.csv'), 'utf8')));
const modelOf = (m: Measurement) => (typeof m.model === 'string' ? m.model : m.model.id);

describe('ML.ENERGY CSV', () => {
  it('parses rows with empty cells, leaving those metrics out', () => {
    const rows = parseMlEnergyCsv(readFileSync(join(PUBLISHED, 'mlenergy-v3-sample.csv'), 'utf8'));
    assert.equal(rows.length, 7);
    const b64 = rows.find((r) => r.model === 'llama-3.1-8b' && r.batch === 64)!;
    assert.equal(b64.j_per_output_token, 0.119);
    assert.equal(b64.avg_power_w, undefined);
    assert.equal(b64.output_tok_per_s, undefined);
    assert.equal(rows[0]!.kv_heads, 8);
  });

  it('handles quoted cells and rejects non-numbers in numeric columns', () => {
    assert.deepEqual(parseCsv('a,b\n"x, y",""\n'), [{ a: 'x, y' }]);
    assert.throws(() => parseMlEnergyCsv('model,gpu,n_gpus,batch\nm,H100,one,8\n'), /row 2: n_gpus is not a number/);
  });

  it('turns rows into measurements: catalog shapes, batch as concurrency, power per GPU', () => {
    const rows = parseMlEnergyCsv(
      'model,hf_id,params_b,layers,hidden,heads,kv_heads,intermediate,dtype,gpu,n_gpus,batch,j_per_output_token,avg_power_w,output_tok_per_s\n' +
        'llama-3.1-70b,meta-llama/Llama-3.1-70B-Instruct,70.55,80,8192,64,8,28672,bf16,H100-SXM-80GB,4,128,0.5634,2183.8,3876.3\n' +
        'mystery-3b,acme/mystery-3b,3,28,3072,24,8,8192,bf16,H100-SXM-80GB,1,16,0.2,300,1500\n',
    );
    const [known, custom] = mlEnergyMeasurements(rows);
    assert.equal(modelOf(known!), 'meta-llama/Llama-3.1-70B');
    assert.equal(known!.avg_power_w, 2183.8 / 4);
    assert.equal(known!.batch, 128);
    assert.deepEqual([known!.inputTokens, known!.outputTokens], [256, 717]);
    assert.equal(modelOf(custom!), 'acme/mystery-3b');
    assert.equal(resolveMeasurement(custom!).request.concurrency, 16);
  });
});

describe('calibration', () => {
  it('predicts the other points of a model within 10% from two of its points', () => {
    const all = sample();
    for (const model of ['meta-llama/Llama-3.1-8B', 'Qwen/Qwen3-8B']) {
      const mine = all.filter((m) => modelOf(m) === model);
      const train = mine.filter((m) => m.batch === 8 || m.batch === 512);
      const held = mine.filter((m) => m.batch !== 8 && m.batch !== 512);
      assert.equal(train.length, 2);
      assert.ok(held.length >= 1);
      const profile = calibrate(train);
      for (const m of held) {
        const p = predictPoint(resolveMeasurement(m).request, profile);
        const err = p.j_per_output_token / m.j_per_output_token! - 1;
        assert.ok(Math.abs(err) < 0.1, `${model} batch ${m.batch}: ${(err * 100).toFixed(1)}%`);
        assert.equal(p.basis, 'calibrated');
      }
    }
  });

  it('recovers known multipliers from measurements the model itself produced', () => {
    const truth: CalibrationParams = { bandwidth: 0.8, compute: 1.3, power: 0.9 };
    const model = getModel('mistral-7b');
    const gpu = getGpu('A100-SXM4-80GB');
    const measurements: Measurement[] = [1, 8, 32, 128].map((batch) => {
      const req = { model, gpu, gpuCount: 1, inputTokens: 512, outputTokens: 256, numPrompts: batch * 4, concurrency: batch };
      const p = predictPointUsing(req, { calibration: truth });
      return { model, gpu, gpuCount: 1, batch, numPrompts: req.numPrompts, inputTokens: 512, outputTokens: 256, output_tokens_per_s: p.output_tokens_per_s, avg_power_w: p.avg_power_w };
    });
    const entry = calibrate(measurements, { ridge: 0 }).entries[0]!;
    for (const k of ['bandwidth', 'compute', 'power'] as const) {
      assert.ok(Math.abs(entry.params[k] / truth[k] - 1) < 0.02, `${k}: ${entry.params[k]} vs ${truth[k]}`);
    }
    assert.ok(entry.fit_error < 0.01);
    assert.ok(entry.loo_error !== null && entry.loo_error < 0.02, `loo ${entry.loo_error}`);
  });

  it('writes a profile keyed by GPU, model and engine with n, leave-one-out error and sources', () => {
    const profile = calibrate(sample().map((m) => ({ ...m, engine: 'vllm' })));
    assert.equal(profile.v, 1);
    const llama = findCalibration(profile, 'H100-SXM-80GB', 'meta-llama/Llama-3.1-8B', 'vllm')!;
    assert.deepEqual(llama.key, { gpu: 'H100-SXM-80GB', model: 'meta-llama/Llama-3.1-8B', engine: 'vllm' });
    assert.equal(llama.n, 4);
    assert.equal(typeof llama.loo_error, 'number');
    assert.deepEqual(Object.keys(llama.params).sort(), ['bandwidth', 'compute', 'power']);
    assert.ok(llama.sources.some((s) => /ML\.ENERGY v3 llama-3\.1-8b/.test(s)));
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(profile)));
  });

  it('reads back a profile it wrote, and names the first wrong field of a broken one', () => {
    const profile = calibrate(sample());
    const back = parseCalibrationProfile(JSON.stringify(profile));
    assert.ok('profile' in back);
    assert.deepEqual(back.profile, profile);
    const broken = structuredClone(profile) as unknown as { entries: { params: Record<string, unknown> }[] };
    broken.entries[0]!.params.power = 'high';
    assert.deepEqual(parseCalibrationProfile(JSON.stringify(broken)), { error: 'entries[0].params.power must be a positive number' });
    assert.match((parseCalibrationProfile('{"v": 1, "entries": [') as { error: string }).error, /^not JSON/);
    assert.match((parseCalibrationProfile('{"entries": []}') as { error: string }).error, /expected \{"v": 1/);
    assert.deepEqual(parseCalibrationProfile('{"v":1,"entries":[{"key":{"gpu":"H100-SXM-80GB","model":"m"},"params":{}}]}'), { error: 'entries[0].key.engine must be a string' });
  });

  it('says what the calibrated prediction rests on', () => {
    const profile = calibrate(sample().filter((m) => modelOf(m) === 'meta-llama/Llama-3.1-8B'));
    const req = { model: getModel('llama-3.1-8b'), gpu: getGpu('H100'), gpuCount: 1, inputTokens: 256, outputTokens: 717, numPrompts: 1000, concurrency: 100 };
    const p = predictPoint(req, profile);
    assert.equal(p.basis, 'calibrated');
    assert.match(p.basisDetail, /calibrated on 4 measurements of meta-llama\/Llama-3\.1-8B on H100-SXM-80GB .*leave-one-out error \d+\.\d%/);
    assert.equal(predictPoint({ ...req, gpu: getGpu('A100-80GB') }, profile).basis, 'prior');
    assert.equal(predictPoint({ ...req, engine: 'sglang' }, profile).basis, 'prior');
  });

  it('falls back to the GPU-wide entry for a model measured nowhere', () => {
    const profile = calibrate(sample());
    const pooled = profile.entries.find((e) => e.key.model === '*')!;
    assert.equal(pooled.n, 7);
    const p = predictPoint(
      { model: getModel('mistral-7b'), gpu: getGpu('H100'), gpuCount: 1, inputTokens: 256, outputTokens: 256, numPrompts: 64, concurrency: 8 },
      profile,
    );
    assert.equal(p.basis, 'calibrated');
    assert.match(p.basisDetail, /all models measured on H100-SXM-80GB/);
  });

  it('has no leave-one-out error from a single point, and narrows the band with a good fit', () => {
    const one = calibrate(sample().slice(0, 1));
    assert.equal(one.entries[0]!.loo_error, null);
    const profile = calibrate(sample().filter((m) => modelOf(m) === 'Qwen/Qwen3-8B'));
    const req = { model: getModel('qwen3-8b'), gpu: getGpu('H100'), gpuCount: 1, inputTokens: 256, outputTokens: 717, numPrompts: 640, concurrency: 64 };
    const width = (p: ReturnType<typeof predictPoint>) => p.high.energy_j / p.low.energy_j;
    assert.ok(width(predictPoint(req, profile)) < width(predictPoint(req)));
  });

  it('reports the measurements it cannot use instead of failing', () => {
    const ok = sample()[0]!;
    const { profile, skipped } = calibrateDetailed([
      ok,
      { ...ok, model: 'llama-9000' },
      { ...ok, j_per_output_token: undefined, avg_power_w: undefined, output_tokens_per_s: undefined },
      { ...ok, model: 'llama-3.1-405b', gpuCount: 1 },
    ]);
    assert.equal(profile.entries.length, 1);
    assert.equal(skipped.length, 3);
    assert.match(skipped[0]!.reason, /Unknown model "llama-9000"/);
    assert.match(skipped[1]!.reason, /no measured metric/);
    assert.match(skipped[2]!.reason, /needs 810 GB/);
  });
});

describe('Nelder–Mead', () => {
  it('finds the minimum of the Rosenbrock valley', () => {
    const rosenbrock = ([x, y]: number[]) => (1 - x!) ** 2 + 100 * (y! - x! * x!) ** 2;
    const r = nelderMead(rosenbrock, [-1.2, 1], { maxIterations: 5000, tolerance: 1e-14 });
    assert.ok(Math.abs(r.x[0]! - 1) < 1e-3 && Math.abs(r.x[1]! - 1) < 1e-3, r.x.join());
  });
});

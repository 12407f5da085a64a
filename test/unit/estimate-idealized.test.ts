import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  exportHelmJson,
  fitDenoised,
  fitIdealized,
  getGpu,
  getModel,
  idealizedCost,
  idealizedEnergy,
  idealizedFromPrior,
  idealizedRuntime,
  importHelmJson,
  makeTable,
  type RuntimeSample,
} from '../../src/core/estimate';

const PUBLISHED = join(__dirname, '..', '..', 'src', 'core', 'estimate', 'data', 'published');
const referenceJson = JSON.parse(readFileSync(join(PUBLISHED, 'helm-idealized-a100-sample.json'), 'utf8'));
const reference = importHelmJson(referenceJson);
const near = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol;

/** An independent transcription of HELM's _compute_estimated_time_from_prompt_size_and_num_output_tokens. */
function helmOracle(entry: { runtime_per_output_token: number; runtime_for_prompt_tokens: Record<string, number>; overhead?: number }, p: number, o: number): number {
  const table = Object.fromEntries(Object.entries(entry.runtime_for_prompt_tokens).map(([k, v]) => [Number(k), v]));
  const keys = Object.keys(table).map(Number).sort((a, b) => a - b);
  let prompt: number | undefined;
  for (const key of keys) {
    if (p <= key) {
      prompt = table[key]! * (p / key);
      break;
    }
  }
  if (prompt === undefined) prompt = table[keys[keys.length - 1]!]! * (p / keys[keys.length - 1]!);
  let t = prompt;
  if (o > 0) t += entry.runtime_per_output_token * (o - 1);
  if (entry.overhead !== undefined) t += entry.overhead;
  return t;
}

describe('HELM idealized runtime', () => {
  it('imports the three reference models with their GPU counts', () => {
    assert.deepEqual([...reference.keys()], ['together/gpt-j-6b', 'ai21/j1-large', 'openai/davinci']);
    assert.equal(reference.get('openai/davinci')!.gpus, 8);
    assert.equal(reference.get('together/gpt-j-6b')!.runtimePerOutputToken, 0.021);
    assert.equal(reference.get('ai21/j1-large')!.runtimeForPromptTokens.length, 27);
  });

  it('reproduces the reference models exactly at profiled, in-between and beyond-range prompt sizes', () => {
    const gptj = reference.get('together/gpt-j-6b')!;
    assert.ok(near(idealizedRuntime(gptj, 256, 1), 0.025));
    assert.ok(near(idealizedRuntime(gptj, 256, 101), 0.025 + 0.021 * 100));
    assert.ok(near(idealizedRuntime(gptj, 300, 10), 0.03 * (300 / 320) + 0.021 * 9)); // k* = 320
    assert.ok(near(idealizedRuntime(gptj, 10, 1), 0.024 * (10 / 16))); // k* = 16
    assert.ok(near(idealizedRuntime(gptj, 4000, 1), 0.142 * (4000 / 1920))); // beyond 1920: scale the largest
    const j1 = reference.get('ai21/j1-large')!;
    assert.ok(near(idealizedRuntime(j1, 428, 2), 0.046 + 0.024));
    const davinci = reference.get('openai/davinci')!;
    assert.ok(near(idealizedRuntime(davinci, 1000, 50), 0.323 * (1000 / 1024) + 0.081 * 49));
    assert.ok(near(idealizedRuntime(davinci, 2500, 200), 0.597 * (2500 / 1920) + 0.081 * 199));
  });

  it('matches HELM\'s edge cases: no output tokens, an empty prompt', () => {
    const gptj = reference.get('together/gpt-j-6b')!;
    assert.equal(idealizedRuntime(gptj, 256, 0), 0.025); // o = 0: no β term at all
    assert.equal(idealizedRuntime(gptj, 0, 1), 0);
    assert.ok(near(idealizedRuntime(gptj, 0, 5), 0.021 * 4));
  });

  it('agrees with a transcription of HELM\'s function over a sweep', () => {
    for (const [name, table] of reference) {
      const entry = referenceJson.models[name];
      for (const p of [0, 1, 2, 15, 16, 17, 191, 192, 427, 428, 429, 1000, 1920, 1921, 5000]) {
        for (const o of [0, 1, 2, 64, 1000]) {
          assert.ok(near(idealizedRuntime(table, p, o), helmOracle(entry, p, o)), `${name} p=${p} o=${o}`);
        }
      }
    }
  });

  it('reads HELM\'s own file shape, with the denoised overhead', () => {
    const helmDenoised = {
      'ai21/j1-large': {
        runtime_per_output_token: 0.016,
        runtime_for_prompt_tokens: { '1': 0.016, '256': 0.065, '512': 0.184, '1024': 0.34, '1536': 0.449 },
        overhead: 0.237,
      },
    };
    const t = importHelmJson(helmDenoised).get('ai21/j1-large')!;
    assert.equal(t.overhead, 0.237);
    assert.ok(near(idealizedRuntime(t, 300, 20), 0.184 * (300 / 512) + 0.016 * 19 + 0.237));
    assert.ok(near(idealizedRuntime(t, 300, 20), helmOracle(helmDenoised['ai21/j1-large'], 300, 20)));
    assert.deepEqual(exportHelmJson(importHelmJson(helmDenoised)), helmDenoised);
    assert.throws(() => importHelmJson({ nothing: 1 }), /no model entries/);
  });

  it('prices idealized runtime per GPU-hour for every accelerator, and turns it into energy', () => {
    assert.equal(idealizedCost(3600, 2, 8), 16);
    assert.equal(idealizedCost(1.8, 4, 1), 0.002);
    assert.equal(idealizedEnergy(10, 8, 300), 24000);
  });
});

describe('fitting α and β', () => {
  const truth = makeTable(0.02, { 1: 0.02, 256: 0.05, 512: 0.09, 1024: 0.2 }, { overhead: 0.15 });

  it('takes α at o = 1 and β as the least-squares slope against o − 1', () => {
    const exact = makeTable(0.021, { 16: 0.024, 256: 0.025, 1024: 0.076 });
    const samples: RuntimeSample[] = [];
    for (const [p] of exact.runtimeForPromptTokens) {
      for (const o of [1, 8, 32, 128]) samples.push({ promptTokens: p, outputTokens: o, runtime_s: idealizedRuntime(exact, p, o) });
    }
    const fit = fitIdealized(samples);
    assert.ok(near(fit.runtimePerOutputToken, 0.021, 1e-12));
    fit.runtimeForPromptTokens.forEach(([p, a], i) => {
      assert.equal(p, exact.runtimeForPromptTokens[i]![0]);
      assert.ok(near(a, exact.runtimeForPromptTokens[i]![1], 1e-12));
    });
    assert.throws(() => fitIdealized([{ promptTokens: 1, outputTokens: 1, runtime_s: 0.1 }]), /β is undetermined/);
  });

  it('recovers α, β and overhead for denoised runtime from the minimum of noisy repeats', () => {
    let seed = 7;
    const random = () => {
      // mulberry32: a small seeded generator, so the test is repeatable.
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t ^= t + Math.imul(t ^ (t >>> 7), 61 | t);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const samples: RuntimeSample[] = [];
    for (const [p] of truth.runtimeForPromptTokens) {
      for (const o of [1, 16, 64, 128]) {
        for (let r = 0; r < 12; r++) {
          // Contention only ever adds time: exponential delays with a 50 ms mean.
          const delay = -0.05 * Math.log(1 - random());
          samples.push({ promptTokens: p, outputTokens: o, runtime_s: idealizedRuntime(truth, p, o) + delay });
        }
      }
    }
    const fit = fitDenoised(samples);
    assert.ok(Math.abs(fit.runtimePerOutputToken - 0.02) < 0.0005, `β ${fit.runtimePerOutputToken}`);
    assert.ok(Math.abs(fit.overhead! - 0.15) < 0.01, `overhead ${fit.overhead}`);
    fit.runtimeForPromptTokens.forEach(([p, a], i) => {
      assert.equal(p, truth.runtimeForPromptTokens[i]![0]);
      assert.ok(Math.abs(a - truth.runtimeForPromptTokens[i]![1]) < 0.01, `α(${p}) ${a}`);
    });
    // Fitting the mean instead of the minimum would be biased by the 50 ms mean delay.
    const meanFit = fitIdealized(samples);
    assert.ok(meanFit.runtimeForPromptTokens[0]![1] - 0.17 > 0.03);
  });
});

describe('α and β from the roofline prior', () => {
  it('gives a rising α(p), a positive β, and α(1) close to one decode step', () => {
    const t = idealizedFromPrior(getModel('gpt-j-6b'), getGpu('A100-SXM4-80GB'), 1);
    const alphas = t.runtimeForPromptTokens.map(([, a]) => a);
    assert.equal(t.runtimeForPromptTokens.length, 27);
    assert.ok(alphas.every((a, i) => i === 0 || a > alphas[i - 1]!));
    assert.ok(t.runtimePerOutputToken > 0);
    assert.ok(Math.abs(alphas[0]! / t.runtimePerOutputToken - 1) < 0.2);
    assert.equal(t.gpus, 1);
  });

  it('scales with the hardware: faster GPUs give smaller α and β', () => {
    const on = (gpu: string) => idealizedFromPrior(getModel('llama-3.1-8b'), getGpu(gpu), 1);
    const a100 = on('A100-SXM4-80GB');
    const h100 = on('H100');
    assert.ok(h100.runtimePerOutputToken < a100.runtimePerOutputToken);
    assert.ok(idealizedRuntime(h100, 1024, 128) < idealizedRuntime(a100, 1024, 128));
  });
});

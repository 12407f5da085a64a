import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';

const BASE = `name: t
server: { sim: true }
model: { id: m }
workload:
  input_tokens: 128
  max_tokens: 256
  concurrency: 2
`;

function expand(sweep: string) {
  const loaded = loadConfig(`${BASE}${sweep}`);
  assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), []);
  return loaded.points;
}

describe('sweep expansion', () => {
  it('without a sweep gives one default point from the workload', () => {
    const [point, ...rest] = expand('');
    assert.equal(rest.length, 0);
    assert.equal(point.id, 'default');
    assert.equal(point.workload.concurrency, 2);
    assert.equal(point.workload.maxTokens, 256);
  });

  it('takes the Cartesian product of lists, first key outermost', () => {
    const points = expand('sweep:\n  power_cap_w: [250W, 175]\n  concurrency: [1, 8, 64]\n');
    assert.equal(points.length, 6);
    assert.deepEqual(points.map((p) => [p.powerCapW, p.workload.concurrency]), [
      [250, 1], [250, 8], [250, 64], [175, 1], [175, 8], [175, 64],
    ]);
    assert.deepEqual(points.map((p) => p.index), [0, 1, 2, 3, 4, 5]);
  });

  it('gives ids derived from values, stable when the sweep is reordered', () => {
    const a = expand('sweep:\n  concurrency: [1, 8]\n  max_tokens: [128, 512]\n');
    const b = expand('sweep:\n  max_tokens: [512, 128]\n  concurrency: [8, 1]\n');
    assert.deepEqual(new Set(a.map((p) => p.id)), new Set(b.map((p) => p.id)));
    assert.equal(a[0].id, 'concurrency-1_max_tokens-128');
    assert.equal(a[0].label, 'concurrency 1 · max_tokens 128');
  });

  it('labels power caps and rates with their units', () => {
    const [capped] = expand('sweep:\n  power_cap_w: ["0.3kW"]\n');
    assert.equal(capped.powerCapW, 300);
    assert.equal(capped.id, 'cap-300W');
    assert.equal(capped.label, 'cap 300 W');
    const [rated] = expand('sweep:\n  request_rate: [2.5]\n');
    assert.equal(rated.label, '2.5 req/s');
    assert.equal(rated.workload.requestRate, 2.5);
    assert.equal(rated.workload.concurrency, undefined, 'a swept rate replaces the workload concurrency');
  });

  it('crosses explicit points with the lists', () => {
    const points = expand('sweep:\n  concurrency: [1, 4]\n  points:\n    - { max_tokens: 64 }\n    - { max_tokens: 128, power_cap_w: 200 }\n');
    assert.deepEqual(points.map((p) => p.id), [
      'concurrency-1_max_tokens-64', 'concurrency-4_max_tokens-64',
      'concurrency-1_max_tokens-128_cap-200W', 'concurrency-4_max_tokens-128_cap-200W',
    ]);
  });

  it('applies swept lengths, datasets and GPU counts to each point', () => {
    const points = expand('sweep:\n  input_tokens: [64, { mean: 512, std: 32 }]\n  gpu_count: [1, 2]\n');
    assert.deepEqual(points[0].workload.inputTokens, { dist: 'fixed', mean: 64 });
    assert.deepEqual(points[2].workload.inputTokens, { dist: 'normal', mean: 512, std: 32, min: undefined, max: undefined });
    assert.equal(points[3].gpuCount, 2);
    assert.equal(points[2].id, 'input-512pm32_gpus-1');
  });

  it('makes a swept max_tokens bound the output when output length follows it', () => {
    const points = expand('sweep:\n  max_tokens: [128, 1024]\n');
    assert.deepEqual(points.map((p) => p.workload.outputTokens.mean), [128, 1024]);
  });

  it('keeps duplicate points apart and warns about them', () => {
    const loaded = loadConfig(`${BASE}sweep:\n  points:\n    - { concurrency: 1 }\n    - { concurrency: 1 }\n`);
    assert.deepEqual(loaded.points.map((p) => p.id), ['concurrency-1', 'concurrency-1-2']);
    assert.match(loaded.diagnostics.find((d) => d.code === 'duplicate-point')?.message ?? '', /points 1 and 2 have the same parameters/);
  });

  it('refuses a sweep too large to run', () => {
    const values = Array.from({ length: 101 }, (_, i) => i + 1).join(', ');
    const loaded = loadConfig(`${BASE}sweep:\n  concurrency: [${values}]\n  max_tokens: [${values}]\n`);
    assert.match(loaded.diagnostics.find((d) => d.code === 'too-many-points')?.message ?? '', /10201 points/);
    assert.deepEqual(loaded.points, []);
  });
});

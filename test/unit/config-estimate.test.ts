import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/core/config';
import { estimateConfig } from '../../src/core/estimate/config-estimate';

const EXAMPLE = readFileSync(join(__dirname, '..', '..', 'examples', 'llama-3.1-8b-h100-vllm.wattbench.yaml'), 'utf8');

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.abs(expected), `${what}: ${actual} vs ${expected}`);
}

describe('estimate of a whole config', () => {
  it('totals every point, its band and its repeats', () => {
    const text = /^repeats:/m.test(EXAMPLE) ? EXAMPLE.replace(/^repeats:.*$/m, 'repeats: 3') : `${EXAMPLE}\nrepeats: 3\n`;
    const loaded = loadConfig(text);
    assert.ok(loaded.config, loaded.diagnostics.map((d) => d.message).join('; '));
    assert.ok(loaded.points.length > 1, 'the example sweeps several points');
    const estimate = estimateConfig(loaded.config, loaded.points);
    const total = estimate.total!;
    const predictions = estimate.points.map((p) => p.prediction!);
    const sum = (f: (p: (typeof predictions)[number]) => number) => predictions.reduce((s, p) => s + f(p), 0);
    close(total.runtime_s, 3 * sum((p) => p.runtime_s), 'runtime');
    close(total.energy_j, 3 * sum((p) => p.energy_j), 'energy');
    close(total.low.runtime_s, 3 * sum((p) => p.low.runtime_s), 'low runtime');
    close(total.low.energy_j, 3 * sum((p) => p.low.energy_j), 'low energy');
    close(total.high.runtime_s, 3 * sum((p) => p.high.runtime_s), 'high runtime');
    close(total.high.energy_j, 3 * sum((p) => p.high.energy_j), 'high energy');
    assert.ok(total.low.energy_j < total.energy_j && total.energy_j < total.high.energy_j);
  });
});

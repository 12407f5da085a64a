/**
 * An imported run's power timeline: the ML.ENERGY file's Zeus readings summed over its GPUs, stored in the
 * run's summary.json and drawn by the result view labelled as the file's (webview/power.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { importFiles } from '../../src/core/import';
import { readMlEnergy } from '../../src/core/import/mlenergy';
import { totalPower } from '../../src/core/import/power-timeline';
import type { ResultRun } from '../../src/core/protocol/webview';
import { RunStore } from '../../src/core/store/store';
import { loadRunReport } from '../../src/core/workspace/reports';
import { powerSeries } from '../../webview/power';

const FIXTURE = join(__dirname, '..', 'fixtures', 'import', 'mlenergy', 'results.json');
const root = mkdtempSync(join(tmpdir(), 'wb-power-'));
after(() => rmSync(root, { recursive: true, force: true }));

describe('a total power timeline from per-GPU readings', () => {
  it('holds each GPU at its last reading and starts once every GPU has read', () => {
    // GPU a reads at 10 and 12; GPU b only from 11. At 11: a still 100 + b 50; at 12: a 120 + b 50.
    const a: [number, number][] = [[10, 100], [12, 120]];
    const b: [number, number][] = [[11, 50]];
    assert.deepEqual(totalPower([a, b]), [{ t: 0, w: 150 }, { t: 1, w: 170 }]);
  });

  it('keeps at most maxPoints, every k-th; nothing when a GPU has no readings', () => {
    const long: [number, number][] = Array.from({ length: 10 }, (_, i) => [i, i]);
    assert.deepEqual(totalPower([long], 4).map((p) => p.t), [0, 3, 6, 9]);
    assert.deepEqual(totalPower([long, []]), []);
  });
});

describe('an imported ML.ENERGY run with a power timeline', () => {
  const text = readFileSync(FIXTURE, 'utf8');
  const raw = JSON.parse(text) as { timeline: { power: { device_instant: Record<string, [number, number][]> } } };
  // The fixture's GPUs read at the same instants: the total is their sum there, by hand.
  const [g0, g1] = Object.values(raw.timeline.power.device_instant);
  const expected = g0.map(([t, w], i) => ({ t: t - g0[0][0], w: w + g1[i][1] }));

  it('reads the device power of every GPU, summed', () => {
    assert.equal(g0.length, g1.length);
    assert.deepEqual(readMlEnergy(text, 'results.json').power, expected);
  });

  it('is stored in summary.json and read back with the run; the view labels it as the file\'s', async () => {
    const store = RunStore.forWorkspace(join(root, 'ws'));
    const [run] = importFiles(store.root, [FIXTURE]);
    assert.deepEqual(JSON.parse(readFileSync(join(run.dir, 'summary.json'), 'utf8')).power_timeline, expected);
    const report = await loadRunReport(run.dir);
    assert.deepEqual(report.power, [], 'no sample events of its own');
    const view: ResultRun = { runId: run.id, title: 'ml', target: 'imported', status: 'ok', started: '', simulated: false, summary: report.summary, labels: {}, predictions: {}, power: report.power, notes: [], denoised: {} };
    const series = powerSeries(view, 'ml');
    assert.equal(series.label, 'ml (from the imported file)');
    assert.deepEqual(series.data, expected.map(({ t, w }) => ({ x: t, y: w })));
    // A Wattbench run's own samples are drawn as they are, with no such label.
    const own = powerSeries({ ...view, power: [{ t: 0, w: 5 }] }, 'own');
    assert.deepEqual(own, { label: 'own', data: [{ x: 0, y: 5 }] });
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import { createRunRecord, openStoredRun } from '../../src/core/run/stored';
import { RunStore } from '../../src/core/store/store';
import { loadRunReport } from '../../src/core/workspace/reports';

const root = mkdtempSync(join(tmpdir(), 'wb-stored-'));
after(() => rmSync(root, { recursive: true, force: true }));

const line = (seq: number, e: object) => JSON.stringify({ v: 1, seq, ...e });

describe('a stored run, reopened', () => {
  // The user's settings price energy at 0.9 $/kWh; the config itself says nothing about cost.
  const configText = 'name: priced\nserver: { sim: true }\nmodel: { id: m }\n';
  const loaded = loadConfig(configText, { costDefaults: { usdPerKwh: 0.9, pue: 1.5 } });

  it('is re-summarised at the prices it ran with, not at the defaults', async () => {
    assert.ok(loaded.config);
    const store = RunStore.forWorkspace(root);
    const spec = { store, agentSource: '', configText, config: loaded.config, points: loaded.points, resolveLocal: (p: string) => p };
    const { writer, summarizer } = createRunRecord(spec, 'local', 'priced-run');
    const point = loaded.points[0].id;
    // One GPU at a steady 1 kW for 3.6 s, its counter going 0 → 3600 J: 1 Wh at the wall × PUE 1.5.
    const lines = [
      line(0, { t: 0, type: 'phase', phase: 'measure', point }),
      line(1, { t: 0, type: 'sample', gpus: [{ i: 0, p_w: 1000, e_j: 0 }] }),
      line(2, { t: 3.6, type: 'sample', gpus: [{ i: 0, p_w: 1000, e_j: 3600 }] }),
      line(3, { t: 3.6, type: 'phase', phase: 'cooldown', point }),
    ];
    writer.appendLines(lines);
    for (const l of lines) summarizer.add(JSON.parse(l));
    const live = summarizer.result();
    writer.writeSummary(live);
    writer.close();
    const expectedUsd = (3600 * 1.5 * 0.9) / 3.6e6;
    assert.ok(Math.abs(live.points[0].cost.usd - expectedUsd) < 1e-12, `live ${live.points[0].cost.usd}`);

    const reopened = openStoredRun(writer.dir);
    assert.deepEqual(reopened.cost, loaded.config.cost);
    const report = await loadRunReport(writer.dir);
    assert.ok(Math.abs(report.summary.points[0].cost.usd - expectedUsd) < 1e-12, `re-summarised ${report.summary.points[0].cost.usd} vs ${expectedUsd}`);
    assert.equal(report.summary.total.cost.usd, live.total.cost.usd);
  });

  it('keeps only the points it measured, and its config', () => {
    const reopened = openStoredRun(join(root, '.wattbench', 'runs', 'priced-run'));
    assert.equal(reopened.config?.name, 'priced');
    assert.deepEqual(reopened.points.map((p) => p.id), loaded.points.map((p) => p.id));
  });
});

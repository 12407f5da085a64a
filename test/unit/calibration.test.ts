import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import type { AgentEvent } from '../../src/core/protocol/events';
import { createRunRecord } from '../../src/core/run/stored';
import { summarize } from '../../src/core/run/summarize';
import { RunStore } from '../../src/core/store/store';
import { measurementsFromRuns } from '../../src/core/workspace/calibration';

const root = mkdtempSync(join(tmpdir(), 'wb-calibration-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A finished run of one point: 100 tokens in 1 s at 300 W, on simulated GPUs or not. */
function storeRun(store: RunStore, id: string, simulated: boolean): void {
  const configText = 'name: c\nserver: { sim: true }\nmodel: { id: meta-llama/Llama-3.1-8B-Instruct }\ngpus: { type: H100-SXM-80GB, count: 1 }\n';
  const loaded = loadConfig(configText);
  assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
  const { writer } = createRunRecord({ store, agentSource: '', configText, config: loaded.config, points: loaded.points, resolveLocal: (p) => p }, 'h', id);
  const point = loaded.points[0].id;
  const events = [
    { type: 'hello', t: 0, run_id: id, host: 'h', agent_version: 't', pid: 1, telemetry: { source: simulated ? 'sim' : 'nvml', interval_s: 0.1 }, simulated, gpus: [{ index: 0, name: 'H100' }] },
    { type: 'phase', t: 0, phase: 'measure', point },
    { type: 'sample', t: 0, gpus: [{ i: 0, p_w: 300, e_j: 0 }] },
    { type: 'request', t: 1, point, i: 0, ok: true, t_start: 0, t_end: 1, prompt_tokens: 50, output_tokens: 100, latency_s: 1 },
    { type: 'sample', t: 1, gpus: [{ i: 0, p_w: 300, e_j: 300 }] },
    { type: 'phase', t: 1, phase: 'cooldown', point },
    { type: 'point', t: 1, point, state: 'end', status: 'ok' },
    { type: 'done', t: 1, status: 'ok', caps_restored: true },
  ].map((e, seq) => ({ ...e, seq, v: 1 }) as AgentEvent);
  writer.writeSummary(summarize(events));
  writer.updateMeta({ status: 'ok', simulated });
  writer.close();
}

describe('calibration from stored runs', () => {
  const store = RunStore.forWorkspace(root);
  storeRun(store, 'real-run', false);
  storeRun(store, 'sim-run', true);

  it('never learns from simulated runs unless asked', () => {
    const found = measurementsFromRuns(store.list());
    assert.deepEqual(found.measurements.map((m) => m.source), ['run real-run point default']);
    assert.equal(found.simulated, 1);
    assert.ok(found.skipped.some((s) => /^sim-run: simulated GPUs/.test(s)), found.skipped.join('; '));
    const asked = measurementsFromRuns(store.list(), { includeSimulated: true });
    assert.deepEqual(asked.measurements.map((m) => m.source).sort(), ['run real-run point default', 'run sim-run point default']);
    // The measurement is the run's own: 300 J over 100 tokens.
    assert.equal(asked.measurements[0].j_per_output_token, 3);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentEvent } from '../../src/core/run/events';
import { LiveTracker } from '../../src/core/view/live';
import { parseViewMessage } from '../../src/core/view/protocol';

let seq = 0;
const ev = (e: Record<string, unknown>) => ({ v: 1, seq: seq++, ...e }) as unknown as AgentEvent;

describe('the live view state', () => {
  it('keeps every GPU of every node apart, and sends only what is new after a snapshot', () => {
    const tracker = new LiveTracker({ runId: 'r', title: 't', target: 'h', points: [{ id: 'p', label: 'P', status: 'pending' }] });
    tracker.add(ev({ type: 'hello', t: 100, simulated: true, gpus: [{ index: 0 }, { index: 1 }], node: 'n0' }));
    tracker.add(ev({ type: 'hello', t: 100, simulated: true, gpus: [{ index: 0 }], node: 'n1' }));
    tracker.add(ev({ type: 'sample', t: 100.1, node: 'n1', gpus: [{ i: 0, p_w: 70 }] }));
    const snapshot = tracker.snapshot();
    assert.equal(snapshot.type, 'snapshot');
    if (snapshot.type !== 'snapshot') return;
    assert.deepEqual(snapshot.state.gpus, ['n0:0', 'n0:1', 'n1:0']);
    assert.deepEqual(snapshot.state.samples[0].p.map((w) => (Number.isNaN(w) ? null : w)), [null, null, 70]);
    tracker.add(ev({ type: 'point', t: 101, point: 'p', state: 'start' }));
    tracker.add(ev({ type: 'sample', t: 101.1, node: 'n0', gpus: [{ i: 0, p_w: 300 }, { i: 1, p_w: 310 }], inflight: 4 }));
    tracker.add(ev({ type: 'request', t: 101.5, point: 'p', i: 0, ok: true, t_start: 101, t_end: 101.5, prompt_tokens: 10, output_tokens: 20, ttft_s: 0.1, latency_s: 0.5 }));
    tracker.add(ev({ type: 'request', t: 102.5, point: 'p', i: 1, ok: true, t_start: 101, t_end: 102.5, prompt_tokens: 10, output_tokens: 30, ttft_s: 0.1, latency_s: 1.5 }));
    const delta = tracker.delta();
    assert.equal(delta.type, 'append');
    if (delta.type !== 'append') return;
    assert.equal(delta.samples.length, 1, 'only the sample since the snapshot');
    assert.deepEqual(delta.throughput, [{ t: 1.5, tps: 20, inflight: 4 }], 'tokens per second, with the requests in flight the agent reported');
    assert.equal(delta.latency.length, 2);
    assert.equal(delta.points[0].status, 'running');
    const empty = tracker.delta();
    assert.equal(empty.type === 'append' && empty.samples.length + empty.latency.length, 0);
  });

  it('thins the oldest samples so hours of data stay bounded', () => {
    const tracker = new LiveTracker({ runId: 'r', title: 't', target: 'h', points: [] });
    tracker.add(ev({ type: 'hello', t: 0, simulated: false, gpus: [{ index: 0 }] }));
    for (let i = 0; i < 130_000; i++) tracker.add(ev({ type: 'sample', t: i / 10, gpus: [{ i: 0, p_w: i }] }));
    assert.ok(tracker.state.samples.length <= 120_000);
    assert.equal(tracker.state.samples.at(-1)!.p[0], 129_999, 'the newest sample is always kept');
  });

  it('drops messages from a webview that are not in the protocol', () => {
    assert.deepEqual(parseViewMessage({ type: 'ready' }), { type: 'ready' });
    assert.equal(parseViewMessage({ type: 'exportCsv', runId: '../../etc' }), undefined);
    assert.equal(parseViewMessage({ type: 'savePng', name: 'x', dataUrl: 'javascript:alert(1)' }), undefined);
    assert.equal(parseViewMessage('cancel'), undefined);
  });
});

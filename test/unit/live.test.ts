import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentEvent } from '../../src/core/protocol/events';
import { LiveTracker } from '../../src/core/view/live';
import { parseViewMessage } from '../../src/core/protocol/webview';

let seq = 0;
const ev = (e: Record<string, unknown>) => ({ v: 1, seq: seq++, ...e }) as unknown as AgentEvent;

describe('the live view state', () => {
  it('keeps every GPU of every node apart, and sends only what is new after a snapshot', () => {
    const tracker = new LiveTracker({ runId: 'r', title: 't', target: 'h', points: [{ id: 'p', label: 'P', status: 'pending' }] });
    tracker.add(ev({ type: 'hello', t: 100, simulated: true, gpus: [{ index: 0 }, { index: 1 }], node: 'n0' }));
    tracker.add(ev({ type: 'hello', t: 100, simulated: true, gpus: [{ index: 0 }], node: 'n1' }));
    tracker.add(ev({ type: 'sample', t: 100.1, node: 'n1', gpus: [{ i: 0, p_w: 70 }] }));
    tracker.flushHeld();
    const snapshot = tracker.snapshot();
    assert.equal(snapshot.type, 'snapshot');
    if (snapshot.type !== 'snapshot') return;
    assert.deepEqual(snapshot.state.gpus, ['n0:0', 'n0:1', 'n1:0']);
    assert.deepEqual(snapshot.state.samples[0].p.map((w) => (Number.isNaN(w) ? null : w)), [null, null, 70]);
    tracker.add(ev({ type: 'point', t: 101, point: 'p', state: 'start', node: 'n0' }));
    tracker.add(ev({ type: 'sample', t: 101.1, node: 'n0', gpus: [{ i: 0, p_w: 300 }, { i: 1, p_w: 310 }], inflight: 4 }));
    tracker.add(ev({ type: 'request', t: 101.5, point: 'p', i: 0, ok: true, t_start: 101, t_end: 101.5, prompt_tokens: 10, output_tokens: 20, ttft_s: 0.1, latency_s: 0.5, node: 'n0' }));
    tracker.add(ev({ type: 'request', t: 102.5, point: 'p', i: 1, ok: true, t_start: 101, t_end: 102.5, prompt_tokens: 10, output_tokens: 30, ttft_s: 0.1, latency_s: 1.5, node: 'n0' }));
    tracker.add(ev({ type: 'sample', t: 103.6, node: 'n0', gpus: [{ i: 0, p_w: 300 }, { i: 1, p_w: 310 }] }));
    const delta = tracker.delta();
    assert.equal(delta.type, 'append');
    if (delta.type !== 'append') return;
    assert.equal(delta.samples.length, 1, 'only the sample since the snapshot; the newest second is still held');
    assert.equal(delta.samples[0].total, 680, 'n1 reported 1 s earlier: its reading still counts toward the total');
    assert.deepEqual(delta.throughput, [{ t: 1.5, tps: 20, inflight: 4 }], 'tokens per second, with the requests in flight the agent reported');
    assert.equal(delta.latency.length, 2);
    assert.equal(delta.points[0].status, 'running');
    const empty = tracker.delta();
    assert.equal(empty.type === 'append' && empty.samples.length + empty.latency.length, 0);
  });

  it('merges nodes that report in bursts: time runs forward, the total counts every node, a node\'s done does not end the run', () => {
    const tracker = new LiveTracker({ runId: 'r', title: 't', target: 'h', points: [] });
    tracker.add(ev({ type: 'hello', t: 0, simulated: true, gpus: [{ index: 0 }], node: 'a' }));
    tracker.add(ev({ type: 'hello', t: 0, simulated: true, gpus: [{ index: 0 }], node: 'b' }));
    // Each node's follower hands over half a second of events at a time, a after b.
    for (let burst = 0; burst < 10; burst++) {
      for (const [node, watts] of [['a', 100], ['b', 200]] as const) {
        for (let k = 0; k < 5; k++) tracker.add(ev({ type: 'sample', t: burst * 0.5 + k * 0.1, node, gpus: [{ i: 0, p_w: watts }], inflight: 1 }));
      }
    }
    tracker.add(ev({ type: 'done', t: 5, status: 'ok', node: 'a' }));
    assert.equal(tracker.state.status, 'running', 'host a finishing its point does not end the run');
    tracker.setStatus('ok');
    const samples = tracker.state.samples;
    assert.equal(samples.length, 100);
    for (let i = 1; i < samples.length; i++) assert.ok(samples[i].t >= samples[i - 1].t, `time runs back at ${i}: ${samples[i - 1].t} → ${samples[i].t}`);
    assert.deepEqual([...new Set(samples.slice(2).map((s) => s.total))], [300], 'once both have reported, every total is both GPUs');
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

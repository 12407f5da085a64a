import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AgentEvent } from '../../src/core/protocol/events';
import { denoisedFits } from '../../src/core/run/denoised';

describe('denoised runtime of a stored run', () => {
  it('recovers β and the overhead from the fastest of repeated requests', () => {
    // Truth: α(p) = 0.0004·p (HELM's anchor: the smallest prompt costs β per token), β = 0.02, overhead 0.1.
    const events: AgentEvent[] = [];
    let seq = 0;
    const prompts = [16, 64, 128, 256];
    for (let repeat = 0; repeat < 3; repeat++)
      for (const [k, p] of prompts.entries())
        for (const o of [8, 32, 96]) {
          const alpha = p === 16 ? 0.02 * 16 : 0.0004 * p + 0.3;
          const noise = repeat === 0 ? 0 : 0.05 * repeat * ((k + o) % 3);
          events.push({ v: 1, seq: seq++, t: seq, type: 'request', point: 'p', i: k * 3 + o, ok: true, repeat, t_start: 0, t_end: 1, prompt_tokens: p, output_tokens: o, latency_s: alpha + 0.02 * (o - 1) + 0.1 + noise } as AgentEvent);
        }
    const fit = denoisedFits(events).p;
    assert.ok(fit, 'a fit for the repeated point');
    assert.ok(Math.abs(fit.beta_s - 0.02) < 1e-9, `β ${fit.beta_s}`);
    assert.ok(Math.abs(fit.overhead_s - 0.1) < 1e-9, `overhead ${fit.overhead_s}`);
    assert.equal(fit.repeats, 3);
  });

  it('gives nothing for a point measured once', () => {
    const e = { v: 1, seq: 0, t: 0, type: 'request', point: 'q', i: 0, ok: true, t_start: 0, t_end: 1, prompt_tokens: 10, output_tokens: 10, latency_s: 1 } as AgentEvent;
    assert.deepEqual(denoisedFits([e]), {});
  });
});

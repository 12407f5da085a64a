import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import { ENGINE_NAMES, ENGINE_PRESETS, guessEngine, lookupEngine } from '../../src/core/config/engines';
import { parseEventLine, type AgentEvent } from '../../src/core/protocol/events';
import { buildJob } from '../../src/core/run/job';
import { summarize } from '../../src/core/run/summarize';
import { LiveTracker } from '../../src/core/view/live';

/** A config for one engine; `server` lines are YAML under `server:`. */
function config(server: string[], workload: string[] = []): string {
  return [
    'name: engines',
    'model: { id: meta-llama/Llama-3.1-8B-Instruct }',
    'server:',
    ...server.map((l) => `  ${l}`),
    ...(workload.length ? ['workload:', ...workload.map((l) => `  ${l}`)] : []),
  ].join('\n');
}

function jobServer(text: string) {
  const loaded = loadConfig(text);
  assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
  return { server: buildJob('r1', loaded.config, loaded.points, (p) => p).job.server, diagnostics: loaded.diagnostics };
}

const codes = (text: string) => loadConfig(text).diagnostics.map((d) => `${d.severity}:${d.code}`);

describe('engine presets', () => {
  it('vLLM: /health then base_url/models, its /metrics beside the server root, ignore_eos in every request', () => {
    const { server, diagnostics } = jobServer(config(['command: vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8000', 'base_url: http://127.0.0.1:8000/v1']));
    assert.equal(server.engine, 'vllm');
    assert.deepEqual(server.probe_paths, ['/health', 'models']);
    assert.equal(server.metrics_url, 'http://127.0.0.1:8000/metrics');
    assert.deepEqual(server.request_fields, { ignore_eos: true });
    // both spellings of the KV-cache gauge: vLLM 0.10 serves only the new one, 0.7 only the old one
    assert.deepEqual(server.metrics.kv_cache_usage, ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc']);
    assert.deepEqual(server.metrics.running, ['vllm:num_requests_running']);
    assert.deepEqual(diagnostics, []);
  });

  it('sends no length fields when the workload does not ask, and nothing of its own for an unknown engine', () => {
    assert.deepEqual(jobServer(config(['engine: vllm', 'base_url: http://gpu:8000/v1'], ['ignore_eos: false'])).server.request_fields, {});
    const generic = jobServer(config(['base_url: http://gpu:9000/v1']));
    assert.equal(generic.server.engine, 'generic');
    assert.equal('request_fields' in generic.server, false, 'absent: the agent sends the workload\'s ignore_eos as before');
    assert.equal('probe_paths' in generic.server, false);
    assert.equal(generic.server.metrics_url, null);
    assert.deepEqual(generic.server.metrics, {});
  });

  it('SGLang and llama.cpp metrics need a flag: without it on the command line, none are scraped and a note says how', () => {
    const without = loadConfig(config(['command: python -m sglang.launch_server --model-path m --port 30000', 'base_url: http://127.0.0.1:30000/v1']));
    assert.equal(buildJob('r', without.config!, without.points, (p) => p).job.server.metrics_url, null);
    const note = without.diagnostics.find((d) => d.code === 'engine-metrics-off');
    assert.equal(note?.severity, 'info');
    assert.match(note!.message, /--enable-metrics/);
    const withFlag = jobServer(config(['command: python -m sglang.launch_server --model-path m --port 30000 --enable-metrics', 'base_url: http://127.0.0.1:30000/v1']));
    assert.equal(withFlag.server.metrics_url, 'http://127.0.0.1:30000/metrics');
    assert.deepEqual(withFlag.server.metrics, { running: ['sglang:num_running_reqs'], waiting: ['sglang:num_queue_reqs'], kv_cache_usage: ['sglang:token_usage'] });
    // a server already running: its flags are unknown, so it is scraped (the agent says so once if it answers 404)
    assert.equal(jobServer(config(['engine: llama.cpp', 'base_url: http://127.0.0.1:8080/v1'])).server.metrics_url, 'http://127.0.0.1:8080/metrics');
    const llama = jobServer(config(['command: llama-server -m m.gguf --port 8080 --metrics', 'base_url: http://127.0.0.1:8080/v1']));
    assert.equal(llama.server.engine, 'llama.cpp');
    assert.deepEqual(llama.server.probe_paths, ['/health']);
    assert.deepEqual(llama.server.request_fields, { ignore_eos: true });
  });

  it('TGI, Ollama and the OpenAI API cannot generate exactly max_tokens: nothing engine-specific is sent and a warning says so', () => {
    for (const [lines, name] of [
      [['command: text-generation-launcher --model-id m --port 8080', 'base_url: http://127.0.0.1:8080/v1'], 'tgi'],
      [['engine: ollama', 'base_url: http://127.0.0.1:11434/v1'], 'ollama'],
      [['base_url: https://api.openai.com/v1'], 'openai'],
    ] as const) {
      const { server, diagnostics } = jobServer(config([...lines]));
      assert.equal(server.engine, name);
      assert.deepEqual(server.request_fields, {}, `${name}: no ignore_eos`);
      const warning = diagnostics.filter((d) => d.code === 'engine-no-exact-length');
      assert.equal(warning.length, 1, name);
      assert.equal(warning[0].severity, 'warning');
      assert.match(warning[0].message, /lengths vary/);
      // asked not to, it does not warn
      assert.equal(codes(config([...lines], ['ignore_eos: false'])).includes('warning:engine-no-exact-length'), false);
    }
    assert.equal(jobServer(config(['engine: ollama', 'base_url: http://127.0.0.1:11434/v1'])).server.metrics_url, null, 'Ollama has no metrics');
    assert.deepEqual(jobServer(config(['engine: ollama', 'base_url: http://127.0.0.1:11434/v1'])).server.probe_paths, ['/api/version', '/']);
  });

  it('TensorRT-LLM: /health, ignore_eos, and no Prometheus scrape (its /metrics is JSON)', () => {
    const { server } = jobServer(config(['command: trtllm-serve meta-llama/Llama-3.1-8B-Instruct --port 8000', 'base_url: http://127.0.0.1:8000/v1']));
    assert.equal(server.engine, 'trtllm');
    assert.deepEqual(server.probe_paths, ['/health', 'models']);
    assert.equal(server.metrics_url, null);
    assert.deepEqual(server.request_fields, { ignore_eos: true });
  });

  it('the simulated server keeps the agent\'s defaults', () => {
    const { server } = jobServer(config(['sim: true']));
    assert.equal(server.engine, 'sim');
    assert.equal('request_fields' in server, false);
    assert.equal(server.metrics_url, null);
  });

  it('names: free text, aliases, and an unknown one becomes generic with a note naming the presets', () => {
    assert.equal(lookupEngine('vLLM')?.name, 'vllm');
    assert.equal(lookupEngine('llamacpp')?.name, 'llama.cpp');
    assert.equal(lookupEngine('text-generation-inference')?.name, 'tgi');
    assert.equal(lookupEngine('TensorRT-LLM')?.name, 'trtllm');
    assert.equal(lookupEngine('my-engine'), undefined);
    assert.equal(guessEngine('lmdeploy serve api_server m', undefined), 'lmdeploy');
    assert.equal(guessEngine(undefined, 'http://10.0.0.1:8000/v1'), 'generic');
    const loaded = loadConfig(config(['engine: my-engine', 'base_url: http://gpu:8000/v1']));
    assert.equal(loaded.config?.server.engine, 'generic');
    const note = loaded.diagnostics.find((d) => d.code === 'unknown-engine')!;
    assert.equal(note.severity, 'info');
    for (const name of ['vllm', 'sglang', 'tgi', 'llama.cpp', 'ollama', 'trtllm', 'lmdeploy', 'openai', 'generic']) assert.ok(note.message.includes(name), name);
    assert.deepEqual(note.path, ['server', 'engine']);
    for (const name of ENGINE_NAMES) assert.equal(ENGINE_PRESETS[name].name, name);
    for (const name of ENGINE_NAMES) if (name !== 'generic' && name !== 'sim') assert.ok(ENGINE_PRESETS[name].sources.length > 0, `${name} says where its facts come from`);
  });

  it('a base_url without /v1 for an engine whose OpenAI route is there is a warning on base_url', () => {
    const loaded = loadConfig(config(['command: vllm serve m --port 8000', 'base_url: http://127.0.0.1:8000']));
    const warning = loaded.diagnostics.find((d) => d.code === 'base-url-no-v1')!;
    assert.equal(warning.severity, 'warning');
    assert.deepEqual(warning.path, ['server', 'base_url']);
    assert.match(warning.message, /http:\/\/127\.0\.0\.1:8000\/v1/);
    assert.equal(codes(config(['command: vllm serve m', 'base_url: http://127.0.0.1:8000/v1/'])).includes('warning:base-url-no-v1'), false);
    assert.equal(codes(config(['base_url: http://gateway.local/openai'])).includes('warning:base-url-no-v1'), false, 'an unknown server may route anywhere');
  });
});

let seq = 0;
const ev = (e: Record<string, unknown>) => ({ v: 1, seq: seq++, ...e }) as unknown as AgentEvent;

describe('the engine event', () => {
  it('is parsed with its fields checked', () => {
    const good = parseEventLine('{"v":1,"seq":5,"t":10.5,"type":"engine","values":{"running":12,"waiting":3,"kv_cache_usage":0.43},"point":"p1"}');
    assert.ok(good.ok);
    assert.deepEqual(good.ok && good.event.type === 'engine' && good.event.values, { running: 12, waiting: 3, kv_cache_usage: 0.43 });
    const bad = parseEventLine('{"v":1,"seq":6,"t":11,"type":"engine","values":{"running":"many"}}');
    assert.equal(bad.ok, false);
    assert.match(!bad.ok ? bad.problem : '', /values\.running/);
    assert.equal(parseEventLine('{"v":1,"seq":7,"t":11,"type":"engine"}').ok, false);
  });

  it('summary: mean and max in the measure window only, and the preemptions counter\'s rise', () => {
    const events = [
      ev({ type: 'hello', t: 0, run_id: 'r', host: 'h', agent_version: 't', pid: 1, simulated: true, gpus: [{ index: 0, name: 'G' }] }),
      ev({ type: 'point', t: 1, point: 'p', state: 'start' }),
      ev({ type: 'engine', t: 1.5, point: 'p', values: { running: 100, kv_cache_usage: 0.9, preemptions_total: 1 } }), // warm-up: left out
      ev({ type: 'phase', t: 2, phase: 'measure', point: 'p' }),
      ev({ type: 'engine', t: 2.5, point: 'p', values: { running: 4, waiting: 2, kv_cache_usage: 0.2, preemptions_total: 3 } }),
      ev({ type: 'engine', t: 3, point: 'p', values: { running: 8, waiting: 0, kv_cache_usage: 0.6, preemptions_total: 3 } }),
      ev({ type: 'engine', t: 3.5, point: 'p', values: { running: 6, kv_cache_usage: 0.4, preemptions_total: 7 } }),
      ev({ type: 'phase', t: 4, phase: 'cooldown', point: 'p' }),
      ev({ type: 'engine', t: 4.5, point: 'p', values: { running: 0, kv_cache_usage: 0, preemptions_total: 9 } }), // drain: left out
      ev({ type: 'point', t: 5, point: 'p', state: 'end', status: 'ok', requests: 0, errors: 0 }),
      ev({ type: 'done', t: 5, status: 'ok', caps_restored: true }),
    ];
    const point = summarize(events).points[0];
    assert.equal(point.engine?.scrapes, 3);
    assert.deepEqual(point.engine?.running, { mean: 6, max: 8 });
    assert.deepEqual(point.engine?.waiting, { mean: 1, max: 2 });
    assert.equal(point.engine?.kv_cache_usage?.max, 0.6);
    assert.ok(Math.abs(point.engine!.kv_cache_usage!.mean - 0.4) < 1e-12);
    assert.equal(point.engine?.preemptions, 4);
    const without = summarize(events.filter((e) => e.type !== 'engine')).points[0];
    assert.equal('engine' in without, false);
  });

  it('live view: running requests and KV-cache usage reach the snapshot and the deltas', () => {
    const tracker = new LiveTracker({ runId: 'r', title: 't', target: 'h', points: [] });
    tracker.add(ev({ type: 'hello', t: 100, simulated: false, gpus: [{ index: 0 }] }));
    tracker.add(ev({ type: 'engine', t: 101, values: { running: 3, kv_cache_usage: 0.25 } }));
    const snapshot = tracker.snapshot();
    assert.deepEqual(snapshot.type === 'snapshot' && snapshot.state.engine, [{ t: 1, running: 3, kv: 0.25 }]);
    tracker.add(ev({ type: 'engine', t: 102.5, values: { waiting: 1 } })); // nothing to draw
    tracker.add(ev({ type: 'engine', t: 103, values: { running: 5 } }));
    const delta = tracker.delta();
    assert.deepEqual(delta.type === 'append' && delta.engine, [{ t: 3, running: 5 }]);
    const empty = tracker.delta();
    assert.equal(empty.type === 'append' && empty.engine, undefined);
  });
});

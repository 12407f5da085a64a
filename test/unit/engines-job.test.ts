/**
 * The job's `server` each engine preset produces, as `buildJob` writes it for the agent. With
 * WATTBENCH_ENGINE_JOBS_DIR set, each job is also written there as `<engine>-<api>.json`: the agent's
 * test/agent/test_engine_replay.py runs those jobs against replayed engine streams.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import { buildJob, type AgentJob } from '../../src/core/run/job';

/** The engines test/fixtures/sse has transcripts of, and the APIs those transcripts were recorded on. */
const REPLAYED: [engine: string, api: 'completions' | 'chat' | 'generate'][] = [
  ['vllm', 'chat'], ['vllm', 'completions'], ['sglang', 'chat'], ['tgi', 'chat'], ['tgi', 'generate'],
  ['llama.cpp', 'chat'], ['ollama', 'chat'], ['trtllm', 'chat'], ['trtllm', 'completions'], ['openai', 'chat'],
];

function configText(engine: string, api: string, baseUrl = 'http://127.0.0.1:8000/v1'): string {
  return [
    'name: replay',
    'model: { id: m }',
    `server: { engine: ${JSON.stringify(engine)}, base_url: ${JSON.stringify(baseUrl)}, api: ${api} }`,
    // ignore_eos (the default) on: each preset decides whether the engine gets a field for it
    'workload: { num_prompts: 1, max_tokens: 16, concurrency: 1, warmup: 0, input_tokens: 8, output_tokens: 16 }',
  ].join('\n');
}

function job(engine: string, api: string, baseUrl?: string): { job: AgentJob; codes: string[] } {
  const loaded = loadConfig(configText(engine, api, baseUrl));
  assert.ok(loaded.config, JSON.stringify(loaded.diagnostics));
  return { job: buildJob('replay', loaded.config, loaded.points, (p) => p).job, codes: loaded.diagnostics.map((d) => d.code) };
}

const codesOf = (text: string) => loadConfig(text).diagnostics.map((d) => `${d.severity}:${d.code}`);

describe('engine presets in the job', () => {
  it('every replayed engine gets its preset in the job (written out for the agent test when asked)', () => {
    const out = process.env.WATTBENCH_ENGINE_JOBS_DIR;
    for (const [engine, api] of REPLAYED) {
      const { job: built } = job(engine, api);
      assert.equal(built.server.engine, engine);
      assert.equal(built.server.api, api);
      assert.ok(built.server.request_fields, `${engine}: a preset always says which fields it sends`);
      if (out) writeFileSync(join(out, `${engine}-${api}.json`), JSON.stringify(built));
    }
  });

  it('a hosted API\'s key is named, never given: OPENAI_API_KEY for the OpenAI API, server.api_key_env over it', () => {
    assert.equal(job('openai', 'chat', 'https://api.openai.com/v1').job.server.api_key_env, 'OPENAI_API_KEY');
    assert.equal(job('vllm', 'chat').job.server.api_key_env, undefined);
    const named = loadConfig(configText('vllm', 'chat').replace('api: chat }', 'api: chat, api_key_env: GATEWAY_KEY }'));
    assert.ok(named.config, JSON.stringify(named.diagnostics));
    const built = buildJob('replay', named.config, named.points, (p) => p).job;
    assert.equal(built.server.api_key_env, 'GATEWAY_KEY');
    assert.ok(!JSON.stringify(built).includes('sk-'), 'no key in the job');
    assert.ok(codesOf(configText('vllm', 'chat').replace('api: chat }', 'api: chat, api_key_env: "not a name" }')).some((c) => c.startsWith('error:')));
  });

  it('ignore_eos goes only to the engines whose docs have it, never to TGI, Ollama or the OpenAI API', () => {
    const sent = (engine: string, api = 'chat') => job(engine, api).job.server.request_fields?.ignore_eos === true;
    for (const engine of ['vllm', 'sglang', 'llama.cpp', 'trtllm']) assert.equal(sent(engine), true, engine);
    for (const engine of ['tgi', 'ollama', 'openai']) assert.equal(sent(engine), false, engine);
    assert.equal(sent('tgi', 'generate'), false);
  });

  it('api generate: TGI\'s native route, on the server root (no /v1 warning), not for the sim, tools or other engines', () => {
    const root = job('tgi', 'generate', 'http://127.0.0.1:8080');
    assert.equal(root.job.server.api, 'generate');
    assert.equal(root.codes.includes('base-url-no-v1'), false);
    assert.equal(job('tgi', 'chat', 'http://127.0.0.1:8080').codes.includes('base-url-no-v1'), true);
    assert.ok(codesOf(configText('vllm', 'generate')).includes('error:api-generate-not-tgi'));
    assert.ok(!codesOf(configText('generic', 'generate')).some((c) => c.startsWith('error:')));
    assert.ok(codesOf('name: s\nmodel: { id: m }\nserver: { sim: true, api: generate }').includes('error:api-generate-sim'));
    const tool = 'name: t\nmodel: { id: m }\nserver: { engine: tgi, base_url: "http://h:8080", api: generate }\nworkload: { tool: vllm-bench }';
    assert.ok(codesOf(tool).includes('error:api-generate-tool'));
  });

  it('the schema takes generate and nothing else new', () => {
    assert.ok(codesOf(configText('tgi', 'messages')).some((c) => c.startsWith('error:')));
  });
});

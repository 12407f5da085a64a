import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../../src/core/config';
import { schemaFileText } from '../../src/core/config/schema-file';
import { starterConfig } from '../../src/core/config/starter';
import {
  SWEEPABLE_KEYS,
  type ConfigInput,
  type SlurmTargetInput,
  type SweepPointInput,
  type WorkloadInput,
} from '../../src/core/config/schema';

const root = join(__dirname, '..', '..');
const schemaFile = JSON.parse(readFileSync(join(root, 'schemas', 'wattbench.schema.json'), 'utf8'));

type Props = { properties: Record<string, Props>; anyOf?: Props[] };
const propertiesOf = (node: Props) => Object.keys(node.properties).sort();

// Each record must name every key of its type and nothing else, or this file does not compile;
// the test then checks the JSON Schema has exactly the same keys. Together: types and schema agree.
const configKeys: Record<keyof ConfigInput, true> = {
  $schema: true, name: true, description: true, target: true, server: true, model: true, gpus: true,
  workload: true, sweep: true, telemetry: true, repeats: true, cost: true, slo: true,
};
const workloadKeys: Record<keyof WorkloadInput, true> = {
  dataset: true, format: true, input_tokens: true, output_tokens: true, num_prompts: true, max_tokens: true,
  concurrency: true, request_rate: true, warmup: true, temperature: true, top_p: true, ignore_eos: true,
  time_limit: true, command: true, tool: true, tool_args: true, seed: true, client_processes: true,
};
const serverKeys: Record<keyof NonNullable<ConfigInput['server']>, true> = {
  sim: true, command: true, base_url: true, api: true, served_model: true, engine: true, ready_timeout: true, env: true,
  api_key_env: true,
};
const modelKeys: Record<keyof ConfigInput['model'], true> = {
  id: true, params_b: true, layers: true, hidden: true, heads: true, kv_heads: true, intermediate: true, vocab: true,
  dtype: true, experts: true, experts_per_token: true, active_params_b: true, config: true, head_dim: true,
  kv_lora_rank: true, q_lora_rank: true, qk_rope_head_dim: true, qk_nope_head_dim: true, v_head_dim: true,
  shared_experts: true, moe_intermediate: true, dense_layers: true, sliding_window: true, sliding_layers: true,
  tied_embeddings: true,
};
const slurmKeys: Record<keyof SlurmTargetInput, true> = {
  login: true, partition: true, nodes: true, gpus_per_node: true, time_limit: true, account: true,
  sbatch_options: true, setup: true, workdir: true,
};
const sweepPointKeys: Record<keyof SweepPointInput, true> = {
  concurrency: true, request_rate: true, max_tokens: true, num_prompts: true, input_tokens: true, output_tokens: true,
  temperature: true, dataset: true, power_cap_w: true, gpu_count: true, slo: true,
};

describe('schema and types', () => {
  it('the committed schemas/wattbench.schema.json is generated from src/core/config/schema.ts', () => {
    assert.equal(readFileSync(join(root, 'schemas', 'wattbench.schema.json'), 'utf8'), schemaFileText(), 'run `npm run gen:schema`');
  });

  it('the JSON Schema has exactly the keys of the TypeScript types', () => {
    const p = schemaFile.properties;
    assert.deepEqual(propertiesOf(schemaFile), Object.keys(configKeys).sort());
    assert.deepEqual(propertiesOf(p.workload), Object.keys(workloadKeys).sort());
    assert.deepEqual(propertiesOf(p.server), Object.keys(serverKeys).sort());
    assert.deepEqual(propertiesOf(p.model), Object.keys(modelKeys).sort());
    const slurm = (p.target.anyOf as Props[]).find((b) => b.properties?.slurm)!.properties.slurm;
    assert.deepEqual(propertiesOf(slurm), Object.keys(slurmKeys).sort());
    assert.deepEqual(propertiesOf(p.sweep.properties.points.items), Object.keys(sweepPointKeys).sort());
  });

  it('every sweepable key can be listed in a sweep, and nothing else besides points', () => {
    assert.deepEqual(propertiesOf(schemaFile.properties.sweep), [...SWEEPABLE_KEYS, 'points'].sort());
    // An explicit point also takes its own `slo`: what it is judged by, not a value to sweep.
    assert.deepEqual([...SWEEPABLE_KEYS, 'slo'].sort(), Object.keys(sweepPointKeys).sort());
  });

  it('forbids unknown keys everywhere, so misspellings are caught by editors too', () => {
    const open: string[] = [];
    const visit = (node: unknown, path: string) => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.type === 'object' && n.properties && n.additionalProperties !== false) open.push(path);
      for (const [k, v] of Object.entries(n)) visit(v, `${path}/${k}`);
    };
    visit(schemaFile, '');
    assert.deepEqual(open, []);
  });

  it('every example config validates', () => {
    const dir = join(root, 'examples');
    const files = readdirSync(dir).filter((f) => /\.wattbench\.(ya?ml|json)$/.test(f));
    assert.ok(files.length >= 3);
    for (const f of files) {
      const loaded = loadConfig(readFileSync(join(dir, f), 'utf8'));
      assert.deepEqual(loaded.diagnostics.filter((d) => d.severity === 'error'), [], f);
      assert.ok(loaded.points.length >= 1, f);
    }
  });

  it('the starter config written by "New Benchmark Config" validates, simulated or not', () => {
    for (const simulated of [true, false]) {
      const text = starterConfig('starter', { simulated });
      const loaded = loadConfig(text);
      assert.deepEqual(loaded.diagnostics, [], text);
      assert.equal(loaded.points.length, 3);
      assert.ok(parse(text).name === 'starter');
    }
  });
});

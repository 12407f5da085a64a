import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDiagnostic, loadConfig } from '../../src/core/config';

const VALID = `name: t
server: { sim: true }
model:
  id: meta-llama/Llama-3.1-8B-Instruct
`;

interface Case {
  name: string;
  text: string;
  /** 1-based line:col, as printed. */
  at: string;
  message: RegExp;
  fix?: string;
}

// Each broken config, the place its error must point at, the message, and the Quick Fix text if any.
const CASES: Case[] = [
  { name: 'misspelt top-level key', text: `${VALID}worklaod:\n  concurrency: 4\n`, at: '5:1', message: /Unknown key `worklaod`\. Did you mean `workload`\?/, fix: 'workload' },
  { name: 'misspelt nested key', text: `${VALID}workload:\n  concurency: 4\n`, at: '6:3', message: /Unknown key `concurency` in `workload`\. Did you mean `concurrency`\?/, fix: 'concurrency' },
  { name: 'transposed letters', text: `${VALID}workload:\n  input_tokens: { mean: 10, sdt: 3 }\n`, at: '6:29', message: /Did you mean `std`\?/, fix: 'std' },
  { name: 'unknown key, nothing close', text: `${VALID}zzz: 1\n`, at: '5:1', message: /Unknown key `zzz`\. Allowed keys: name, description, target/ },
  { name: 'missing name', text: `server: { sim: true }\nmodel: { id: m }\n`, at: '1:1', message: /missing the required key `name`, e\.g\. `name: llama-8b-h100`/ },
  { name: 'missing model id', text: `name: t\nserver: { sim: true }\nmodel: { dtype: bf16 }\n`, at: '3:1', message: /`model` is missing the required key `id`/ },
  { name: 'enum value with suggestion', text: `${VALID}telemetry:\n  source: nvml2\n`, at: '6:11', message: /must be one of auto, nvml, nvidia-smi, amd-smi, sim; got "nvml2"\. Did you mean `nvml`\?/, fix: 'nvml' },
  { name: 'duration in words', text: `${VALID}workload:\n  time_limit: 10 minutes\n`, at: '6:15', message: /duration such as 30s, 10m.*Got "10 minutes"\. Did you mean `10m`\?/, fix: '10m' },
  { name: 'power in words', text: `${VALID}gpus:\n  power_cap_w: 250 watts\n`, at: '6:16', message: /power such as 250W.*Did you mean `250W`\?/, fix: '250W' },
  { name: 'unparseable duration', text: `${VALID}telemetry:\n  interval: soon\n`, at: '6:13', message: /Expected a duration such as 30s, 10m, 1h or 100ms/ },
  { name: 'integer below minimum', text: `${VALID}gpus:\n  count: 0\n`, at: '6:10', message: /`gpus\.count` must be at least 1, got 0/ },
  { name: 'wrong type in a sweep list', text: `${VALID}sweep:\n  concurrency: [1, "x"]\n`, at: '6:20', message: /`sweep\.concurrency\[1\]` must be a whole number ≥ 1, got "x"/ },
  { name: 'empty sweep list', text: `${VALID}sweep:\n  concurrency: []\n`, at: '6:16', message: /needs at least 1 item/ },
  { name: 'temperature above maximum', text: `${VALID}workload:\n  temperature: 3\n`, at: '6:16', message: /at most 2, got 3/ },
  { name: 'base_url without scheme', text: `name: t\nserver: { base_url: localhost:8000 }\nmodel: { id: m }\n`, at: '2:21', message: /server\.base_url/ },
  { name: 'target of the wrong shape', text: `${VALID}target: 42\n`, at: '5:9', message: /Expected "local", an SSH host, a list of hosts, or \{ slurm/ },
  { name: 'slurm without login', text: `${VALID}target:\n  slurm: { partition: gpu }\n`, at: '6:3', message: /`target\.slurm` is missing the required key `login`/ },
  { name: 'concurrency and rate together', text: `${VALID}workload:\n  concurrency: 4\n  request_rate: 2\n`, at: '7:3', message: /either `workload\.concurrency` or `workload\.request_rate`, not both/ },
  { name: 'sweep of concurrency and rate', text: `${VALID}sweep:\n  concurrency: [1]\n  request_rate: [1]\n`, at: '5:1', message: /may vary `concurrency` or `request_rate`, not both/ },
  { name: 'no server at all', text: `name: t\nmodel:\n  id: m\n`, at: '2:1', message: /No `server` given: add `server: \{ sim: true \}`/ },
  { name: 'sim server with a command', text: `name: t\nserver:\n  sim: true\n  command: vllm serve m\nmodel: { id: m }\n`, at: '4:3', message: /`server\.sim: true` starts the built-in simulated server/ },
  { name: 'sim server with real telemetry', text: `${VALID}telemetry:\n  source: nvml\n`, at: '6:3', message: /use `telemetry\.source: sim`/ },
  { name: 'indices and count disagree', text: `${VALID}gpus:\n  count: 2\n  indices: [0]\n`, at: '7:3', message: /lists 1 GPU\(s\) but `gpus\.count` is 2/ },
  { name: 'duplicate key', text: `name: t\nname: u\nserver: { sim: true }\nmodel: { id: m }\n`, at: '2:1', message: /Map keys must be unique/ },
  { name: 'unclosed flow mapping', text: `name: t\nserver: { sim: true\nmodel: { id: m }\n`, at: '3:1', message: /YAML syntax: .*end with a \}.*opened above left unclosed/ },
  { name: 'empty file', text: ``, at: '1:1', message: /The config is empty/ },
  { name: 'a list instead of a mapping', text: `- a\n- b\n`, at: '1:1', message: /The config must be a mapping/ },
  { name: 'JSON config with misspelt key', text: `{"name": "t", "server": {"sim": true}, "model": {"idd": "m", "id": "m"}}`, at: '1:50', message: /Unknown key `idd` in `model`\. Did you mean `id`\?/, fix: '"id"' },
];

describe('config validation: located messages with fixes', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const loaded = loadConfig(c.text);
      const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
      const hit = errors.find((d) => c.message.test(d.message));
      assert.ok(hit, `expected an error matching ${c.message}; got:\n${errors.map((d) => formatDiagnostic('f', d)).join('\n')}`);
      const at = `${hit.range.start.line + 1}:${hit.range.start.col + 1}`;
      assert.equal(at, c.at, `position of "${hit.message}"`);
      assert.equal(hit.fix?.newText, c.fix, 'quick fix text');
      assert.equal(loaded.config, undefined, 'a config with errors is not resolved');
    });
  }

  it('applying a fix yields a valid config', () => {
    const text = `${VALID}workload:\n  concurency: 4\n`;
    const fix = loadConfig(text).diagnostics[0].fix!;
    const lines = text.split('\n');
    const line = lines[fix.range.start.line];
    lines[fix.range.start.line] = line.slice(0, fix.range.start.col) + fix.newText + line.slice(fix.range.end.col);
    const fixed = loadConfig(lines.join('\n'));
    assert.deepEqual(fixed.diagnostics, []);
    assert.equal(fixed.config?.workload.concurrency, 4);
  });

  it('warns, without failing, when output_tokens exceed max_tokens', () => {
    const loaded = loadConfig(`${VALID}workload:\n  max_tokens: 100\n  output_tokens: 200\n`);
    const warning = loaded.diagnostics.find((d) => d.code === 'output-over-max');
    assert.equal(warning?.severity, 'warning');
    assert.ok(loaded.config, 'warnings do not block');
  });

  it('reports a dataset file that does not exist, relative to the config', () => {
    const loaded = loadConfig(`${VALID}workload:\n  dataset: data/nope.jsonl\n`, { fileExists: (p) => p === 'data/yes.jsonl' });
    const error = loaded.diagnostics.find((d) => d.code === 'dataset-missing');
    assert.match(error?.message ?? '', /`data\/nope\.jsonl` not found/);
    assert.equal(error?.range.start.line, 5);
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CliIO } from '../../src/cli/io';
import { main } from '../../src/cli/main';

const root = join(__dirname, '..', '..');
const REFERENCE = join(root, 'src', 'core', 'estimate', 'data', 'published', 'mlenergy-v3-sample.csv');

async function cli(cwd: string, ...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), cwd, isTTY: false };
  const code = await main(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function rows(): { hf_id: string; batch: number; j: number }[] {
  const [header, ...lines] = readFileSync(REFERENCE, 'utf8').trim().split('\n');
  const cols = header.split(',');
  return lines.map((l) => {
    const cells = l.split(',');
    const get = (name: string) => cells[cols.indexOf(name)];
    return { hf_id: get('hf_id'), batch: Number(get('batch')), j: Number(get('j_per_output_token')) };
  });
}

/** The ML.ENERGY setting as a config: batch as concurrency, 256 input and 717 output tokens. */
function config(model: string, batches: number[]): string {
  return `name: mlenergy
target: gpu-h100
server: { command: vllm serve ${model}, engine: vllm }
model: { id: ${model} }
gpus: { type: H100-SXM-80GB, count: 1 }
workload: { input_tokens: 256, output_tokens: 717, max_tokens: 717, num_prompts: 4096 }
sweep:
  concurrency: [${batches.join(', ')}]
`;
}

describe('wattbench estimate and calibrate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wb-est-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('estimate --json gives every point a prediction and an idealized runtime', async () => {
    const r = await cli(root, 'estimate', 'examples/words-to-watts-llama-65b-powercap.wattbench.yaml', '--json');
    assert.equal(r.code, 0, r.err);
    const parsed = JSON.parse(r.out);
    assert.equal(parsed.points.length, 9);
    for (const p of parsed.points) {
      for (const key of ['runtime_s', 'output_tokens_per_s', 'avg_power_w', 'energy_j', 'j_per_output_token', 'j_per_response']) assert.ok(p.prediction[key] > 0, `${p.id} ${key}`);
      assert.ok(p.prediction.low.j_per_output_token < p.prediction.j_per_output_token && p.prediction.j_per_output_token < p.prediction.high.j_per_output_token);
      assert.equal(p.prediction.basis, 'prior');
      assert.ok(p.idealized.runtime_s > 0 && p.idealized.cost_usd > 0);
    }
    // Words to Watts: the 175 W cap costs time and saves energy.
    const at = (id: string) => parsed.points.find((p: { id: string }) => p.id === id).prediction;
    assert.ok(at('max_tokens-512_cap-175W').runtime_s > at('max_tokens-512_cap-250W').runtime_s);
    assert.ok(at('max_tokens-512_cap-175W').energy_j < at('max_tokens-512_cap-250W').energy_j);
  });

  it('with the prior alone, comes within 25% of every published ML.ENERGY J/token in the reference', async () => {
    for (const model of [...new Set(rows().map((r) => r.hf_id))]) {
      const published = rows().filter((r) => r.hf_id === model);
      const file = join(dir, `${model.replace('/', '_')}.wattbench.yaml`);
      writeFileSync(file, config(model, published.map((r) => r.batch)));
      const r = await cli(dir, 'estimate', file, '--json');
      assert.equal(r.code, 0, r.err);
      const points = JSON.parse(r.out).points as { params: { concurrency: number }; prediction: { j_per_output_token: number } }[];
      for (const row of published) {
        const predicted = points.find((p) => p.params.concurrency === row.batch)!.prediction.j_per_output_token;
        assert.ok(Math.abs(predicted / row.j - 1) <= 0.25, `${model} batch ${row.batch}: predicted ${predicted.toFixed(3)}, published ${row.j}`);
      }
    }
  });

  it('calibrating on two of a model\'s points predicts its other points within 10%', async () => {
    const llama = rows().filter((r) => r.hf_id === 'meta-llama/Llama-3.1-8B-Instruct');
    const [header, ...lines] = readFileSync(REFERENCE, 'utf8').trim().split('\n');
    const batchCol = header.split(',').indexOf('batch');
    const training = lines.filter((l) => l.includes('Llama-3.1-8B') && ['8', '512'].includes(l.split(',')[batchCol]));
    writeFileSync(join(dir, 'two.csv'), [header, ...training].join('\n') + '\n');
    const cal = await cli(dir, 'calibrate', '--from-csv', 'two.csv', '-o', 'profile.json');
    assert.equal(cal.code, 0, cal.err);
    assert.match(cal.out, /H100-SXM-80GB +meta-llama\/Llama-3\.1-8B/);
    const file = join(dir, 'llama.wattbench.yaml');
    writeFileSync(file, config('meta-llama/Llama-3.1-8B-Instruct', llama.map((r) => r.batch)));
    const r = await cli(dir, 'estimate', file, '--profile', 'profile.json', '--json');
    const points = JSON.parse(r.out).points as { params: { concurrency: number }; prediction: { j_per_output_token: number; basis: string } }[];
    for (const row of llama.filter((x) => x.batch !== 8 && x.batch !== 512)) {
      const p = points.find((q) => q.params.concurrency === row.batch)!.prediction;
      assert.equal(p.basis, 'calibrated');
      assert.ok(Math.abs(p.j_per_output_token / row.j - 1) <= 0.1, `batch ${row.batch}: ${p.j_per_output_token} vs ${row.j}`);
    }
  });

  it('says clearly when a model is not in the catalog and has no shape', async () => {
    const file = join(dir, 'unknown.wattbench.yaml');
    writeFileSync(file, 'name: u\nserver: { sim: true }\nmodel: { id: acme/mystery-13b }\n');
    // --offline: the test never reaches for the network; the message says the Hub was not asked.
    const r = await cli(dir, 'estimate', file, '--offline');
    assert.equal(r.code, 1);
    assert.match(r.err, /cannot estimate: .*acme\/mystery-13b.*give model\.params_b, layers, hidden and heads/s);
    assert.match(r.err, /the Hugging Face Hub: \S+acme\/mystery-13b\S* \(not asked: (offline|HF_HUB_OFFLINE is set)\)/);
  });
});

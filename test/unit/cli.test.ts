import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { CliIO } from '../../src/cli/io';
import { main } from '../../src/cli/main';
import { RunStore } from '../../src/core/store/store';

const root = join(__dirname, '..', '..');

async function cli(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = { out: (l) => out.push(l), err: (l) => err.push(l), cwd: root, isTTY: false };
  const code = await main(argv, io);
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('wattbench CLI: validate and expand', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wb-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('validate exits 0 for every example', async () => {
    const r = await cli('validate', 'examples/demo-sim.wattbench.yaml', 'examples/llama-3.1-8b-h100-vllm.wattbench.yaml', 'examples/words-to-watts-llama-65b-powercap.wattbench.yaml');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /words-to-watts-llama-65b-powercap\.wattbench\.yaml: ok \(9 points\)/);
  });

  it('validate exits 1 with file:line:col: error: lines for a broken config', async () => {
    const file = join(dir, 'broken.wattbench.yaml');
    writeFileSync(file, 'name: b\nserver: { sim: true }\nmodel: { id: m }\nworkload:\n  concurency: 4\n');
    const r = await cli('validate', file);
    assert.equal(r.code, 1);
    assert.equal(r.err, `${file}:5:3: error: Unknown key \`concurency\` in \`workload\`. Did you mean \`concurrency\`?`);
  });

  it('validate says which file it cannot read', async () => {
    const r = await cli('validate', 'nope.wattbench.yaml');
    assert.equal(r.code, 1);
    assert.match(r.err, /^nope\.wattbench\.yaml:1:1: error: cannot read the file: ENOENT/);
  });

  it('validate checks dataset paths relative to the config', async () => {
    const file = join(dir, 'data.wattbench.yaml');
    writeFileSync(file, 'name: d\nserver: { sim: true }\nmodel: { id: m }\nworkload:\n  dataset: prompts.jsonl\n');
    assert.equal((await cli('validate', file)).code, 1);
    writeFileSync(join(dir, 'prompts.jsonl'), '{"prompt": "hi"}\n');
    assert.equal((await cli('validate', file)).code, 0);
  });

  it('expand --json prints every point with id, label and parameters', async () => {
    const r = await cli('expand', 'examples/words-to-watts-llama-65b-powercap.wattbench.yaml', '--json');
    assert.equal(r.code, 0, r.err);
    const parsed = JSON.parse(r.out);
    assert.equal(parsed.points.length, 9);
    assert.deepEqual(parsed.points[4].params, { power_cap_w: '175W', max_tokens: 512 });
    assert.equal(parsed.points[4].id, 'max_tokens-512_cap-175W');
    assert.equal(parsed.points[4].power_cap_w, 175);
    assert.equal(parsed.points[4].workload.concurrency, 64);
  });

  it('report re-summarises a stored run priced with the cost settings it ran with', async () => {
    const store = RunStore.forWorkspace(dir);
    const writer = store.create(
      { run_id: 'priced', config_name: 'p', target: 'local', status: 'ok', started: new Date().toISOString(), points: [{ id: 'default', label: 'single point', params: {} }], remotes: [], notes: [] },
      'name: p\nserver: { sim: true }\nmodel: { id: m }\ncost: { usd_per_kwh: 3.6, pue: 2 }\n',
    );
    const line = (seq: number, e: object) => JSON.stringify({ v: 1, seq, ...e });
    writer.appendLines([
      line(0, { t: 0, type: 'phase', phase: 'measure', point: 'default' }),
      line(1, { t: 0, type: 'sample', gpus: [{ i: 0, p_w: 1000, e_j: 0 }] }),
      line(2, { t: 3.6, type: 'sample', gpus: [{ i: 0, p_w: 1000, e_j: 3600 }] }),
      line(3, { t: 3.6, type: 'phase', phase: 'cooldown', point: 'default' }),
    ]);
    writer.close();
    const r = await cli('report', writer.dir, '--json');
    assert.equal(r.code, 0, r.err);
    // 3600 J = 1 Wh; × PUE 2 × $3.6/kWh = $0.0072.
    assert.ok(Math.abs(JSON.parse(r.out).points[0].cost.usd - 0.0072) < 1e-12, r.out.slice(0, 300));
  });

  it('unknown commands and missing arguments are usage errors (exit 2)', async () => {
    assert.equal((await cli('frobnicate')).code, 2);
    const r = await cli('expand');
    assert.equal(r.code, 2);
    assert.match(r.err, /expand needs exactly one config file/);
  });
});

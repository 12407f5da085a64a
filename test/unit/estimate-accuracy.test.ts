import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import { estimateConfig } from '../../src/core/estimate/config-estimate';
import { PRIOR, PRIOR_LOG_SIGMA, isScored, parseLeaderboardCsv, priorLoss } from '../../src/core/estimate';
import { readDatasetStats } from '../../src/core/workspace/datasets';

const DATA = join(__dirname, '..', '..', 'src', 'core', 'estimate', 'data');
const csv = readFileSync(join(DATA, 'published', 'mlenergy-v3-leaderboard.csv'), 'utf8');
const recorded = JSON.parse(readFileSync(join(DATA, 'prior.json'), 'utf8')) as {
  fit: { rows: number; loss: number };
  loo: { sigma: number; families: number };
};

describe('the prior against the ML.ENERGY leaderboard', () => {
  const points = parseLeaderboardCsv(csv);

  it('reads every leaderboard row, each with a catalog shape and its source', () => {
    // The CSV's own line count, not the reader's: one header line.
    assert.equal(points.length, csv.trim().split('\n').length - 1);
    for (const p of points) assert.match(p.measurement.source!, /ml-energy\/leaderboard@[0-9a-f]{12}/);
    assert.ok(points.some((p) => p.model.mla), 'DeepSeek (MLA) rows');
    assert.ok(points.some((p) => p.model.stateLayers), 'hybrid Mamba rows');
  });

  it('scores chat and H100 GPQA rows, and keeps fill-in-the-middle and B200 GPQA as context', () => {
    // Counted from the CSV's own cells (task is column 1, gpu column 5), not through the reader.
    const cells = csv.trim().split('\n').slice(1).map((l) => l.split(','));
    const expected = cells.filter(([task, , , , gpu]) => task === 'lm-arena-chat' || (task === 'gpqa' && gpu !== 'B200')).length;
    const scored = points.filter(isScored);
    assert.equal(scored.length, expected);
    assert.ok(cells.some(([task]) => task === 'sourcegraph-fim') && cells.some(([task, , , , gpu]) => task === 'gpqa' && gpu === 'B200'));
    assert.equal(scored.length, recorded.fit.rows);
  });

  it('ships the numbers data/prior.json describes, and takes its band from the out-of-sample error', () => {
    // The recorded loss was computed by the fit; recomputing it here from the shipped PRIOR checks the two agree.
    const loss = priorLoss(points.filter(isScored).map((p) => p.measurement), PRIOR);
    assert.ok(Math.abs(loss - recorded.fit.loss) < 1e-3, `loss ${loss} vs recorded ${recorded.fit.loss}`);
    assert.equal(PRIOR_LOG_SIGMA, recorded.loo.sigma);
    assert.ok(recorded.loo.families >= 15);
  });
});

describe('dataset files in estimates', () => {
  it('uses the file’s prompt lengths, measured without a tokenizer, and says so', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wb-ds-'));
    // Three alpaca records of 400, 800 and 1200 characters: 100, 200 and 300 tokens at 4 characters each.
    const lines = [400, 800, 1200].map((n) => JSON.stringify({ instruction: 'x'.repeat(n) }));
    writeFileSync(join(dir, 'data.jsonl'), lines.join('\n') + '\n');
    const stats = readDatasetStats(join(dir, 'data.jsonl'))!;
    assert.equal(stats.prompts, 3);
    assert.equal(stats.meanPromptTokens, 200);
    const loaded = loadConfig('name: ds\nserver: { base_url: "http://127.0.0.1:8000/v1" }\nmodel: { id: meta-llama/Llama-3.1-8B }\ngpus: { type: H100-SXM-80GB }\nworkload: { dataset: data.jsonl, max_tokens: 128, num_prompts: 10 }\n');
    const withFile = estimateConfig(loaded.config!, loaded.points, { datasets: (p) => readDatasetStats(join(dir, p)) });
    assert.ok(withFile.assumptions.some((a) => /data\.jsonl: 3 prompts, mean ≈ 200 input tokens \(characters \/ 4/.test(a)), withFile.assumptions.join('; '));
    const unread = estimateConfig(loaded.config!, loaded.points, { datasets: () => undefined });
    assert.ok(unread.assumptions.some((a) => /could not be read/.test(a)));
    // Longer prompts than the default cost more prefill: the estimates differ.
    assert.notEqual(withFile.points[0]!.prediction!.ttft_s, unread.points[0]!.prediction!.ttft_s);
  });
});

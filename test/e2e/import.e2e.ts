import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Frame } from 'playwright-core';
import { ROOT, SMALL_SIM_CONFIG, VSCodeSession, webviewFrame } from './harness';

/** An ML.ENERGY benchmark results.json (see its SOURCE.md): it carries energy, so J/token can be checked. */
const FIXTURE = 'test/fixtures/import/mlenergy/results.json';
const IMPORTED = 'imports/mlenergy/results.json';

interface MlEnergyResult {
  model_id: string;
  total_output_tokens: number;
  output_throughput: number;
  steady_state_energy_per_token: number;
  entire_benchmark_measurement: { gpu_energy: Record<string, number> };
}

/** The figures the views should show, worked out from the file itself, as the views round them (3 digits). */
function expectedFromFixture() {
  const r = JSON.parse(readFileSync(join(ROOT, FIXTURE), 'utf8')) as MlEnergyResult;
  const energyJ = Object.values(r.entire_benchmark_measurement.gpu_energy).reduce((a, b) => a + b, 0);
  const three = (v: number) => String(Number(v.toPrecision(3)));
  return {
    model: r.model_id.split('/').pop()!,
    jPerToken: three(energyJ / r.total_output_tokens),
    steadyJPerToken: three(r.steady_state_energy_per_token),
    tokPerS: three(r.output_throughput),
    outTokens: r.total_output_tokens.toLocaleString('en-US'),
  };
}

const SLO_CONFIG = `${SMALL_SIM_CONFIG}slo:\n  ttft: 10s\n  itl: 1s\n`;
const POINT_LABELS = ['concurrency 1', 'concurrency 4'];

/** A table's rows as cell texts, the heading row first. */
async function tableCells(frame: Frame, selector: string): Promise<string[][]> {
  return frame.$$eval(`${selector} tr`, (rows) => rows.map((row) => Array.from(row.querySelectorAll('th,td'), (c) => (c as HTMLElement).innerText.trim())));
}

describe('import → compare → recommend in a real VS Code', () => {
  let vscode: VSCodeSession;
  const expected = expectedFromFixture();
  before(async () => {
    vscode = await VSCodeSession.start({ files: { 'slo.wattbench.yaml': SLO_CONFIG, [IMPORTED]: `copy:${FIXTURE}` } });
  });
  after(async () => {
    await vscode?.screenshot('import-final');
    await vscode?.stop();
  });

  it('imports a result file through the open dialog and shows it in the Runs tree', async () => {
    const page = vscode.page;
    // The palette lists the extension's commands once it has loaded: its estimate CodeLens says it has.
    await vscode.openFile('slo.wattbench.yaml');
    await page.locator('.codelens-decoration', { hasText: 'J/token' }).first().waitFor({ timeout: 30_000 });
    await vscode.runCommand('Wattbench: Import Results…');
    // code-server's open dialog is VS Code's own quick input. It fills in its starting folder once it has
    // listed it, which would overwrite a path typed earlier: wait for the listing first.
    await page.locator('.quick-input-list .monaco-list-row').first().waitFor({ timeout: 15_000 });
    await page.locator('.quick-input-widget input').fill(join(vscode.workspace, IMPORTED));
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'results.json' }).first().waitFor({ timeout: 15_000 });
    await page.keyboard.press('Enter');
    await page.locator('.notifications-toasts', { hasText: `Wattbench: imported ` }).filter({ hasText: expected.model }).first().waitFor({ timeout: 30_000 });

    const runsDir = join(vscode.workspace, '.wattbench', 'runs');
    const imported = readdirSync(runsDir).map((d) => JSON.parse(readFileSync(join(runsDir, d, 'meta.json'), 'utf8')));
    assert.equal(imported.length, 1);
    assert.equal(imported[0].imported.tool, 'mlenergy');
    // The file as it was is kept beside the run, byte for byte.
    assert.equal(readFileSync(join(runsDir, imported[0].run_id, 'source-results.json'), 'utf8'), readFileSync(join(ROOT, FIXTURE), 'utf8'));

    await page.locator('.activitybar .action-label[aria-label^="Wattbench"]').click();
    const row = page.locator('.pane-body .monaco-list-row', { hasText: 'imported' }).filter({ hasText: 'J/token' });
    await row.first().waitFor({ timeout: 30_000 });
    assert.match(await row.first().innerText(), new RegExp(`imported · ${expected.jPerToken} J/token · ${expected.tokPerS} tok/s`));
    await vscode.screenshot('import-runs-tree');
  });

  it('runs the sim config, then compares both runs with the imported figures', async () => {
    const page = vscode.page;
    await vscode.openFile('slo.wattbench.yaml');
    await page.locator('.codelens-decoration a', { hasText: 'Run on local' }).first().click({ timeout: 30_000 });
    const live = await webviewFrame(page, '#title', 60_000, 'e2e-sim');
    await live.waitForFunction(() => document.querySelector('#status')?.textContent === 'ok', undefined, { timeout: 90_000 });
    const runsDir = join(vscode.workspace, '.wattbench', 'runs');
    const simRun = readdirSync(runsDir).find((d) => d.includes('e2e-sim'))!;
    for (let i = 0; i < 100 && JSON.parse(readFileSync(join(runsDir, simRun, 'meta.json'), 'utf8')).status === 'running'; i++) await page.waitForTimeout(200);

    await vscode.runCommand('Wattbench: Compare Runs');
    for (const name of ['e2e-sim', expected.model]) await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().click({ timeout: 15_000 });
    await page.locator('.quick-input-widget', { hasText: '2 Selected' }).waitFor({ timeout: 5_000 });
    await page.keyboard.press('Enter');
    const compare = await webviewFrame(page, '#summary-table', 30_000, expected.model);
    const [head, ...rows] = await tableCells(compare, '#summary-table');
    const col = (name: string) => head.indexOf(name);
    const sim = rows.filter((r) => r[0].startsWith('e2e-sim · '));
    assert.deepEqual(sim.map((r) => r[col('point')]), POINT_LABELS, 'both points of the sim run');
    const theirs = rows.filter((r) => r[0].includes(expected.model));
    assert.equal(theirs.length, 1, JSON.stringify(rows.map((r) => r[0])));
    assert.equal(theirs[0][col('J/token')], expected.jPerToken);
    assert.equal(theirs[0][col('steady J/token')], expected.steadyJPerToken);
    assert.equal(theirs[0][col('tok/s')], expected.tokPerS);
    assert.equal(theirs[0][col('out tok')], expected.outTokens);
    await vscode.screenshot('import-compare');
  });

  it('recommends from the CodeLens: names a point and says whether it is predicted or measured', async () => {
    const page = vscode.page;
    // The config's tab sits behind the compare view: bring it back as a user would, by its tab.
    await page.locator('.tabs-container .tab', { hasText: 'slo.wattbench.yaml' }).first().click();
    await page.locator('.codelens-decoration a', { hasText: 'Recommend' }).first().click({ timeout: 30_000 });
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'j_per_token' }).first().click({ timeout: 15_000 });
    const preview = await webviewFrame(page, 'h1', 60_000, 'Wattbench recommendation');
    const text = await preview.locator('body').innerText();
    // The run above is of this config: the measured section comes from it; the prediction needs no run.
    assert.match(text, /measured \(stored runs of this config\), by j_per_token, over 2 point\(s\)/);
    assert.match(text, /predicted \(no run needed\), by j_per_token, over \d+ point\(s\)/);
    const measured = text.slice(text.indexOf('measured (stored'));
    const named = /(?:best|closest): +(.+?)(?: \(run [^)]*\))?:/.exec(measured)?.[1];
    assert.ok(named && POINT_LABELS.includes(named), `the measured recommendation names a point of the run: ${measured.slice(0, 300)}`);
    // Reading a recommendation leaves nothing to save: no unsaved editor that closing the window asks about.
    assert.equal(await page.locator('.tabs-container .tab.dirty').count(), 0, 'no unsaved editor');
    await vscode.screenshot('import-recommend');
  });
});

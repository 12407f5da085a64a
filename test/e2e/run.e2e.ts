import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { copyFileSync, mkdirSync } from 'node:fs';
import { SMALL_SIM_CONFIG, VSCodeSession, webviewFrame } from './harness';
import { startSshLab, type SshLab } from '../integration/sshd';

const LONG_CONFIG = SMALL_SIM_CONFIG.replace('name: e2e-sim', 'name: e2e-long').replace('num_prompts: 8', 'num_prompts: 400').replace('concurrency: [1, 4]', 'concurrency: [1]');

/**
 * Runs a config from its CodeLens, reloads the window once it measures, waits for the extension's
 * toast that it follows the run again, then for the run to end; returns the run's stored meta.
 */
async function reloadMidRun(vscode: VSCodeSession, run: { file: string; lens: string; name: string; toast: string; resume?: boolean }) {
  const page = vscode.page;
  await vscode.openFile(run.file);
  await page.locator('.codelens-decoration a', { hasText: run.lens }).first().click({ timeout: 30_000 });
  const live = await webviewFrame(page, '#title', 60_000, run.name);
  await live.waitForFunction(() => document.querySelector('#phase')?.textContent === 'measure', undefined, { timeout: 60_000 });
  await vscode.runCommand('Developer: Reload Window');
  await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
  await page.locator('.notifications-toasts', { hasText: run.toast }).first().waitFor({ timeout: 60_000 });
  if (run.resume) {
    // Starting points nobody started runs commands on the hosts: the extension asks first.
    const asked = page.locator('.notifications-toasts .notification-list-item', { hasText: /had not started yet/ });
    await asked.first().waitFor({ timeout: 60_000 });
    await asked.first().locator('.monaco-button', { hasText: 'Resume' }).click();
  }
  const runsDir = join(vscode.workspace, '.wattbench', 'runs');
  const runId = readdirSync(runsDir).find((d) => d.includes(run.name))!;
  const meta = () => JSON.parse(readFileSync(join(runsDir, runId, 'meta.json'), 'utf8'));
  for (let i = 0; i < 600 && meta().status === 'running'; i++) await page.waitForTimeout(200);
  return { runsDir, runId, meta };
}

const FOREIGN_META = '.wattbench/runs/20250101-000000-copied-0000/meta.json';
const FOREIGN_RUN = JSON.stringify({
  run_id: '20250101-000000-copied-0000', config_name: 'copied', target: 'local', status: 'running', started: '2025-01-01T00:00:00.000Z',
  points: [{ id: 'default', label: 'default', params: {} }], remotes: [{ host: 'local', runDir: '/nonexistent/run', pid: 1, offset: 0, nextSeq: 0 }], notes: [],
});

describe('running a config in a real VS Code', () => {
  let vscode: VSCodeSession;
  before(async () => {
    vscode = await VSCodeSession.start({ files: { 'sim.wattbench.yaml': SMALL_SIM_CONFIG, 'long.wattbench.yaml': LONG_CONFIG, [FOREIGN_META]: FOREIGN_RUN } });
  });
  after(async () => {
    await vscode?.screenshot('run-final');
    await vscode?.stop();
  });

  it('opening a workspace that holds a run marked running elsewhere runs nothing: the record is left as it was', async () => {
    // A committed or copied .wattbench/runs/*/meta.json must not make activation install an agent or kill a pid.
    await vscode.openFile('sim.wattbench.yaml');
    await vscode.page.locator('.codelens-decoration', { hasText: 'J/token' }).first().waitFor({ timeout: 30_000 });
    await vscode.page.waitForTimeout(3000);
    assert.equal(readFileSync(join(vscode.workspace, FOREIGN_META), 'utf8'), FOREIGN_RUN);
    assert.ok(!existsSync(join(vscode.workspace, '.wattbench', 'runs', '20250101-000000-copied-0000', 'agent.log')));
  });

  it('shows the estimate as a CodeLens above the config', async () => {
    await vscode.openFile('sim.wattbench.yaml');
    const lens = vscode.page.locator('.codelens-decoration', { hasText: 'J/token' });
    await lens.first().waitFor({ timeout: 30_000 });
    const text = await lens.first().innerText();
    assert.match(text, /Run on local · 2 points/);
    assert.match(text, /≈ \d.* · .*(J|Wh) · [\d.]+ J\/token · \$[\d.]+ \(prior\)/);
    await vscode.screenshot('estimate-codelens');
  });

  it('runs from the CodeLens: live chart grows, status bar shows watts, the run lands in the tree and the result shows its summary', async () => {
    const page = vscode.page;
    await page.locator('.codelens-decoration a', { hasText: 'Run on local' }).first().click();
    const live = await webviewFrame(page, '#title', 60_000, 'e2e-sim');
    await live.waitForFunction(() => Number(document.querySelector('#sample-count')?.textContent) > 5, undefined, { timeout: 60_000 });
    const first = Number(await live.locator('#sample-count').innerText());
    const status = page.locator('.statusbar-item', { hasText: / W · \d\/2/ });
    await status.first().waitFor({ timeout: 30_000 });
    assert.match(await status.first().innerText(), /\d+ W · \d\/2/);
    await live.waitForFunction((n) => Number(document.querySelector('#sample-count')?.textContent) > n + 10, first, { timeout: 60_000 });
    await vscode.screenshot('live-view');
    await live.waitForFunction(() => document.querySelector('#status')?.textContent === 'ok', undefined, { timeout: 120_000 });
    assert.equal(await live.locator('#sim').innerText(), 'SIMULATED GPUs');

    const runs = readdirSync(join(vscode.workspace, '.wattbench', 'runs')).filter((d) => d.includes('e2e-sim'));
    assert.equal(runs.length, 1);
    const summaryFile = join(vscode.workspace, '.wattbench', 'runs', runs[0], 'summary.json');
    for (let i = 0; i < 100 && !existsSync(summaryFile); i++) await page.waitForTimeout(200);
    const summary = JSON.parse(readFileSync(join(vscode.workspace, '.wattbench', 'runs', runs[0], 'summary.json'), 'utf8'));
    assert.equal(summary.points.length, 2);

    await page.locator('.activitybar .action-label[aria-label^="Wattbench"]').click();
    const row = page.locator('.pane-body .monaco-list-row', { hasText: 'J/token' });
    await row.first().waitFor({ timeout: 30_000 });
    assert.match(await row.first().innerText(), /local · [\d.]+ J\/token · [\d.]+ tok\/s/);
    await row.first().click();
    const result = await webviewFrame(page, '#summary-table', 30_000);
    const table = await result.locator('#summary-table').innerText();
    assert.match(table, /concurrency 1/);
    assert.match(table, /concurrency 4/);
    assert.ok(existsSync(join(vscode.workspace, '.wattbench', 'runs', runs[0], 'events.ndjson')));
    await vscode.screenshot('result-view');
  });

  it('cancels a run and reports it cancelled', async () => {
    const page = vscode.page;
    await vscode.openFile('long.wattbench.yaml');
    await page.locator('.codelens-decoration a', { hasText: 'Run on local' }).first().click();
    const live = await webviewFrame(page, '#title', 60_000, 'e2e-long');
    await live.waitForFunction(() => document.querySelector('#phase')?.textContent === 'measure', undefined, { timeout: 60_000 });
    await vscode.runCommand('Wattbench: Cancel Run');
    await live.waitForFunction(() => document.querySelector('#status')?.textContent === 'cancelled', undefined, { timeout: 90_000 });
    const metas = () => readdirSync(join(vscode.workspace, '.wattbench', 'runs')).map((d) => JSON.parse(readFileSync(join(vscode.workspace, '.wattbench', 'runs', d, 'meta.json'), 'utf8')));
    for (let i = 0; i < 100 && !metas().some((m) => m.config_name === 'e2e-long' && m.status !== 'running'); i++) await page.waitForTimeout(200);
    assert.ok(metas().some((m) => m.config_name === 'e2e-long' && m.status === 'cancelled'), JSON.stringify(metas().map((m) => m.status)));
    await vscode.screenshot('cancelled');
  });

  it('calibrates on the finished run: the profile is written and the CodeLens says calibrated', async () => {
    const page = vscode.page;
    await vscode.runCommand('Wattbench: Calibrate from Runs');
    // Every run here measured simulated GPUs: the extension fits to them only when told to.
    const asked = page.locator('.notifications-toasts .notification-list-item', { hasText: /measured simulated GPUs/ });
    await asked.first().waitFor({ timeout: 30_000 });
    await asked.first().locator('.monaco-button', { hasText: 'Include Simulated Runs' }).click();
    await page.locator('.notifications-toasts', { hasText: /calibrated on 2 measured points \(1 profile entry\)/ }).first().waitFor({ timeout: 30_000 });
    const profile = JSON.parse(readFileSync(join(vscode.workspace, '.wattbench', 'calibration.json'), 'utf8'));
    assert.deepEqual(profile.entries.map((e: { key: { gpu: string }; n: number }) => [e.key.gpu, e.n]), [['H100-SXM-80GB', 2]]);
    await vscode.openFile('sim.wattbench.yaml');
    await page.locator('.codelens-decoration', { hasText: 'J/token' }).filter({ hasText: '(calibrated)' }).first().waitFor({ timeout: 30_000 });
    await vscode.screenshot('calibrated-codelens');
  });

  it('names a broken calibration file and falls back to the prior', async () => {
    const page = vscode.page;
    const file = join(vscode.workspace, '.wattbench', 'calibration.json');
    const profile = JSON.parse(readFileSync(file, 'utf8'));
    profile.entries[0].params.power = -1;
    writeFileSync(file, JSON.stringify(profile));
    await page.locator('.notifications-toasts', { hasText: /calibration\.json is ignored, predictions use the prior: entries\[0\]\.params\.power must be a positive number/ }).first().waitFor({ timeout: 30_000 });
    await page.locator('.codelens-decoration', { hasText: 'J/token' }).filter({ hasText: '(prior)' }).first().waitFor({ timeout: 30_000 });
  });

  it('compares both runs side by side and exports one as CSV', async () => {
    const page = vscode.page;
    await vscode.runCommand('Wattbench: Compare Runs');
    for (const name of ['e2e-sim', 'e2e-long']) await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().click({ timeout: 15_000 });
    await page.locator('.quick-input-widget', { hasText: '2 Selected' }).waitFor({ timeout: 5_000 });
    await page.keyboard.press('Enter');
    const compare = await webviewFrame(page, '#summary-table', 30_000, 'e2e-long');
    const table = await compare.locator('#summary-table').innerText();
    assert.match(table, /e2e-sim · \d{4}-\d\d-\d\d \d\d:\d\d/);
    assert.match(table, /e2e-long · \d{4}-\d\d-\d\d \d\d:\d\d/);
    assert.match(await compare.locator('#prediction-table').innerText(), /e2e-sim · [^\n]*\tconcurrency 4\t/, 'each predicted-against-measured row names its run');
    await vscode.screenshot('compare-view');

    await vscode.runCommand('Wattbench: Export CSV');
    // :visible: the Compare Runs picker's rows stay in the DOM, hidden, until the new picker replaces them
    await page.locator('.quick-input-list .monaco-list-row:visible', { hasText: 'e2e-sim' }).first().click({ timeout: 15_000 });
    // code-server's save dialog is VS Code's own quick input, prefilled with the run's folder.
    await page.waitForFunction(() => document.querySelector<HTMLInputElement>('.quick-input-widget input')?.value.endsWith('.csv'), undefined, { timeout: 15_000 });
    await page.keyboard.press('Enter');
    const wrote = page.locator('.notifications-toasts', { hasText: /wrote \.wattbench\/runs\/[^/]+\/[^/]+\.csv/ });
    await wrote.first().waitFor({ timeout: 15_000 });
    const [, runId] = /runs\/([^/]+)\//.exec(await wrote.first().innerText())!;
    const csv = readFileSync(join(vscode.workspace, '.wattbench', 'runs', runId, `${runId}.csv`), 'utf8').trim().split('\n');
    assert.match(csv[0], /j_per_output_token/);
    assert.equal(csv.length, 3, 'a header and one row per point');
  });
});

describe('a run outlives the extension host', () => {
  let vscode: VSCodeSession;
  before(async () => {
    vscode = await VSCodeSession.start({ files: { 'long.wattbench.yaml': LONG_CONFIG.replace('num_prompts: 400', 'num_prompts: 24') } });
  });
  after(async () => {
    await vscode?.screenshot('reattach-final');
    await vscode?.stop();
  });

  it('is reattached after the extension host restarts, losing nothing', async () => {
    const { runsDir, runId, meta } = await reloadMidRun(vscode, { file: 'long.wattbench.yaml', lens: 'Run on local', name: 'e2e-long', toast: 'reattached to e2e-long on local' });
    assert.equal(meta().status, 'ok');
    assert.ok(meta().notes.some((n: string) => /reattached at byte \d+/.test(n)), JSON.stringify(meta().notes));
    const seqs = readFileSync(join(runsDir, runId, 'events.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).seq);
    assert.deepEqual(seqs, seqs.map((_: number, i: number) => i), 'no event lost or doubled across the restart');
    const summary = JSON.parse(readFileSync(join(runsDir, runId, 'summary.json'), 'utf8'));
    assert.equal(summary.points[0].requests.ok, 24);
  });
});

describe('an untrusted workspace', () => {
  let vscode: VSCodeSession;
  before(async () => {
    vscode = await VSCodeSession.start({ files: { 'sim.wattbench.yaml': SMALL_SIM_CONFIG }, trustEnabled: true });
  });
  after(async () => {
    await vscode?.screenshot('untrusted-final');
    await vscode?.stop();
  });

  it('still shows the estimate, but Run refuses', async () => {
    const page = vscode.page;
    // The trust dialog: stay in restricted mode.
    const restricted = page.locator('.monaco-dialog-box .monaco-button', { hasText: /Don't Trust|No, I don't trust/ });
    // The modal comes a moment after the workbench; wait for it (isVisible would not).
    if (await restricted.first().waitFor({ state: 'visible', timeout: 20_000 }).then(() => true, () => false)) await restricted.first().click();
    await vscode.openFile('sim.wattbench.yaml');
    await page.locator('.codelens-decoration', { hasText: 'J/token' }).first().waitFor({ timeout: 30_000 });
    await page.locator('.codelens-decoration a', { hasText: 'Run on local' }).first().click();
    const refusal = page.locator('.notifications-toasts', { hasText: 'does not run benchmarks in an untrusted workspace' });
    await refusal.first().waitFor({ timeout: 15_000 });
    await vscode.screenshot('untrusted-refused');
    assert.equal(existsSync(join(vscode.workspace, '.wattbench', 'runs')), false, 'nothing ran');
  });
});

describe('running on a loopback SSH host from VS Code', () => {
  let vscode: VSCodeSession;
  let lab: SshLab;
  before(async () => {
    lab = await startSshLab([
      { alias: 'gpu-lab', address: '127.0.0.7' },
      { alias: 'gpu-lab2', address: '127.0.0.8' },
    ]);
    vscode = await VSCodeSession.start({
      files: {
        'ssh.wattbench.yaml': SMALL_SIM_CONFIG.replace('name: e2e-sim', 'name: e2e-ssh').replace('target: local', 'target: gpu-lab'),
        'multi.wattbench.yaml': SMALL_SIM_CONFIG.replace('name: e2e-sim', 'name: e2e-multi')
          .replace('target: local', 'target: [gpu-lab, gpu-lab2]')
          .replace('num_prompts: 8', 'num_prompts: 16')
          .replace('concurrency: [1, 4]', 'concurrency: [1, 2, 3, 4]'),
      },
      prepareHome: (home) => {
        mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
        copyFileSync(lab.sshConfig, join(home, '.ssh', 'config'));
      },
    });
  });
  after(async () => {
    await vscode?.screenshot('ssh-final');
    await vscode?.stop();
    await lab?.stop();
  });

  it('runs on the host from ~/.ssh/config, and Test Host Connection says what it found there', async () => {
    const page = vscode.page;
    await vscode.openFile('ssh.wattbench.yaml');
    await page.locator('.codelens-decoration a', { hasText: 'Run on gpu-lab' }).first().click({ timeout: 30_000 });
    const live = await webviewFrame(page, '#title', 60_000, 'e2e-ssh');
    await live.waitForFunction(() => document.querySelector('#status')?.textContent === 'ok', undefined, { timeout: 120_000 });
    assert.ok(Number(await live.locator('#sample-count').innerText()) > 10);
    await vscode.runCommand('Wattbench: Test Host Connection');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'gpu-lab' }).first().click();
    // This machine has no GPU: the probe reaches the host and says so, rather than pretending.
    const found = page.locator('.notifications-toasts', { hasText: /gpu-lab: reachable, Python 3\.\d+\.\d+, but no GPU telemetry: no GPU telemetry found/ });
    await found.first().waitFor({ timeout: 60_000 });
    await vscode.screenshot('ssh-host-tested');
  });

  it('resumes a sweep over two hosts after the window reloads, measuring each point once', async () => {
    const page = vscode.page;
    const { runsDir, runId, meta } = await reloadMidRun(vscode, { file: 'multi.wattbench.yaml', lens: 'Run on 2 hosts', name: 'e2e-multi', toast: 'resumed e2e-multi on gpu-lab, gpu-lab2', resume: true });
    assert.equal(meta().status, 'ok', JSON.stringify(meta().notes));
    const summary = JSON.parse(readFileSync(join(runsDir, runId, 'summary.json'), 'utf8'));
    assert.deepEqual(summary.points.map((p: { requests: { ok: number } }) => p.requests.ok), [16, 16, 16, 16]);
    assert.equal(readdirSync(join(runsDir, runId, 'attempts')).length, 4, 'no point was started twice');
    // The live view came back with the window, and ends when the run does, not when one host's point does.
    const resumedLive = await webviewFrame(page, '#title', 30_000, 'e2e-multi');
    await resumedLive.waitForFunction(() => document.querySelector('#status')?.textContent === 'ok', undefined, { timeout: 15_000 });
    await vscode.screenshot('multihost-resumed');
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { VSCodeSession } from './harness';

const EXAMPLES = readdirSync(join(__dirname, '..', '..', 'examples')).filter((f) => f.endsWith('.wattbench.yaml'));

const BROKEN = `name: broken
server: { sim: true }
model:
  id: meta-llama/Llama-3.1-8B-Instruct
workload:
  concurency: 4
`;

describe('config diagnostics in a real VS Code', () => {
  let vscode: VSCodeSession;
  before(async () => {
    vscode = await VSCodeSession.start({
      files: {
        'broken.wattbench.yaml': BROKEN,
        ...Object.fromEntries(EXAMPLES.map((f) => [f, `copy:examples/${f}`])),
        data: 'copy:examples/data',
      },
    });
  });
  after(async () => {
    await vscode?.screenshot('config-diagnostics-final');
    await vscode?.stop();
  });

  it('underlines a misspelt key and fixes it through its Quick Fix', async () => {
    const page = vscode.page;
    await vscode.openFile('broken.wattbench.yaml');
    await page.locator('.squiggly-error').first().waitFor({ timeout: 30_000 });
    await vscode.screenshot('config-diagnostics-squiggle');

    // The Problems view shows the located message.
    await page.keyboard.press('Control+Shift+M');
    const problem = page.locator('.markers-panel .monaco-list-row', { hasText: 'Did you mean `concurrency`?' });
    await problem.first().waitFor({ timeout: 15_000 });
    assert.match(await problem.first().innerText(), /Unknown key `concurency` in `workload`/);
    assert.match(await problem.first().innerText(), /\[Ln 6, Col 3\]/);

    await vscode.goTo(6, 4);
    await page.keyboard.press('Control+.');
    const fix = page.locator('.action-widget .monaco-list-row', { hasText: 'Change `concurency` to `concurrency`' });
    await fix.first().waitFor({ timeout: 15_000 });
    await vscode.screenshot('config-diagnostics-quickfix');
    await page.keyboard.press("Enter");

    await page.waitForFunction(() => !document.querySelector('.monaco-editor .squiggly-error'), undefined, { timeout: 15_000 });
    assert.match(await vscode.editorText(), /^\s+concurrency: 4$/m);
  });

  it('shows an estimate CodeLens on every example config', async () => {
    for (const file of EXAMPLES) {
      await vscode.openFile(file);
      const lens = vscode.page.locator('.codelens-decoration', { hasText: 'J/token' });
      await lens.first().waitFor({ timeout: 30_000 });
      assert.match(await lens.first().innerText(), /≈ .* · [\d.]+ J\/token · \$[\d.]+ \((prior|calibrated)\)/, file);
    }
  });
});

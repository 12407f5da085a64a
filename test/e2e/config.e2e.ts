import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { VSCodeSession } from './harness';

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
    vscode = await VSCodeSession.start({ files: { 'broken.wattbench.yaml': BROKEN } });
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
});

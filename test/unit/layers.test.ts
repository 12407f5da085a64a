import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const root = join(__dirname, '..', '..');
const load = () => import(join(root, 'scripts', 'layers.mjs')) as Promise<{ findViolations(root: string): string[] }>;

describe('layer rules', () => {
  it('src/core imports no vscode and nothing above it; the webview no Node or extension code', async () => {
    const { findViolations } = await load();
    assert.deepEqual(findViolations(root), []);
  });

  it('catches a core file that imports vscode', async () => {
    const { findViolations } = await load();
    const fake = mkdtempSync(join(tmpdir(), 'wb-layers-'));
    try {
      mkdirSync(join(fake, 'src', 'core', 'x'), { recursive: true });
      writeFileSync(join(fake, 'src', 'core', 'x', 'bad.ts'), "const a = 1;\nimport * as vscode from 'vscode';\n");
      writeFileSync(join(fake, 'src', 'core', 'x', 'worse.ts'), "const v = require('vscode');\n");
      assert.deepEqual(findViolations(fake).sort(), [
        'src/core/x/bad.ts:2: imports "vscode" (src/core must run in plain Node)',
        'src/core/x/worse.ts:1: imports "vscode" (src/core must run in plain Node)',
      ]);
    } finally {
      rmSync(fake, { recursive: true, force: true });
    }
  });
});

/**
 * 7. Extension activation time, read from a real VS Code (code-server) extension host, and the sizes
 * of the bundles that ship. Neither has a target: both are tracked in bench/history.jsonl.
 */
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { VSCodeSession } from '../test/e2e/harness';
import { median, round, spread, type Figure } from './figure';

const ROOT = join(__dirname, '..');
const WINDOW_LOADS = 5;
const BUNDLES = ['extension', 'webview', 'cli'] as const;

/**
 * "Developer: Show Running Extensions" prints, per extension, `Activation: N ms` where N is the
 * extension host's own codeLoadingTime + activateCallTime: the time to load dist/extension.js and run
 * activate() until it returns.
 */
async function activationTimes(session: VSCodeSession): Promise<{ wattbench: number; others: Record<string, number> }> {
  await session.runCommand('Developer: Show Running Extensions');
  const page = session.page;
  await page.locator('.extension', { hasText: 'Wattbench' }).locator('.activation-time', { hasText: /\d+ms/ }).first().waitFor({ timeout: 60_000 });
  const rows = await page.locator('.extension').evaluateAll((elements) =>
    elements.map((e) => [e.querySelector('.name')?.textContent ?? '', e.querySelector('.activation-time')?.textContent ?? ''] as const),
  );
  const others: Record<string, number> = {};
  let wattbench = NaN;
  for (const [name, text] of rows) {
    const ms = /(\d+)ms/.exec(text);
    if (!ms) continue;
    if (name === 'Wattbench') wattbench = Number(ms[1]);
    else others[name] = Number(ms[1]);
  }
  return { wattbench, others };
}

export async function activation(): Promise<Figure> {
  // A config in the workspace: the extension activates at start-up (workspaceContains), as for a user.
  const session = await VSCodeSession.start({ files: { 'bench.wattbench.yaml': 'copy:examples/demo-sim.wattbench.yaml' } });
  const times: number[] = [];
  let others: Record<string, number> = {};
  try {
    for (let load = 0; load < WINDOW_LOADS; load++) {
      if (load > 0) {
        // A reload connects a new extension host, which activates the extension again.
        await session.page.reload();
        await session.page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
      }
      const read = await activationTimes(session);
      times.push(read.wattbench);
      others = read.others;
    }
  } finally {
    await session.stop();
  }
  if (times.some((t) => !Number.isFinite(t))) throw new Error(`no activation time for Wattbench in Running Extensions: ${times.join(', ')}`);
  return {
    title: 'Extension activation (code-server extension host)',
    value: median(times),
    unit: 'ms',
    method:
      'code-server 4.100.3 (VS Code 1.100.3) with dist/wattbench.vsix installed, opened in headless Chromium by test/e2e/harness.ts on a workspace holding a *.wattbench.yaml (activation at start-up). ' +
      '"Developer: Show Running Extensions" reports the extension host\'s codeLoadingTime + activateCallTime (require of dist/extension.js and activate() until it returns). ' +
      `Median over ${WINDOW_LOADS} window loads (the first right after install, then reloads, each with a new extension host).`,
    details: { per_load_ms: times, spread: spread(times), other_extensions_last_load_ms: others },
  };
}

export function bundleSizes(): Figure[] {
  const vsix = statSync(join(ROOT, 'dist', 'wattbench.vsix'), { throwIfNoEntry: false });
  return BUNDLES.map((name) => {
    const file = join(ROOT, 'dist', `${name}.js`);
    const bytes = readFileSync(file);
    return {
      title: `Bundle dist/${name}.js`,
      value: round(bytes.length / 1024, 4),
      unit: 'KiB',
      method: `Size of dist/${name}.js as \`node esbuild.mjs\` builds it for the package (bundled, not minified; its source map is a separate file). Gzipped size in details.`,
      details: { bytes: bytes.length, gzip_kib: round(gzipSync(bytes).length / 1024, 4), ...(name === 'extension' && vsix && { vsix_kib: round(vsix.size / 1024, 4) }) },
    };
  });
}

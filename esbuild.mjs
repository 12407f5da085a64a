// Bundles the extension (node), the CLI (node) and the webview (browser), and builds the agent's archive
// (dist/wattbench_agent.pyz, from agent/wattbench_agent/). `--watch` rebuilds the bundles on change; the archive is
// rebuilt by findAgentSource (src/core/run/agent-path.ts) once it is older than the agent's sources.
import * as esbuild from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** @type {esbuild.BuildOptions} */
const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'info', legalComments: 'none' };

const builds = [
  {
    ...common,
    entryPoints: ['src/extension.ts'],
    outfile: 'dist/extension.js',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // ssh2 falls back to pure JS without its optional native addons.
    external: ['vscode', 'cpu-features', '*.node'],
  },
  {
    ...common,
    entryPoints: ['src/cli.ts'],
    outfile: 'dist/cli.js',
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external: ['cpu-features', '*.node'],
    banner: { js: '#!/usr/bin/env node' },
  },
  {
    ...common,
    entryPoints: ['webview/main.ts'],
    outfile: 'dist/webview.js',
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
  },
];

mkdirSync('dist', { recursive: true });
// Deterministic (the same sources give the same bytes), so the agent's install hash on a host changes only with it.
execFileSync('python3', ['scripts/build_agent.py', 'dist/wattbench_agent.pyz'], { stdio: 'inherit' });
if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
  chmodSync('dist/cli.js', 0o755);
}

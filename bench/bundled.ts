/**
 * Runs a bench function in a child Node built the way the extension ships (esbuild.mjs: bundled, no
 * keepNames). Timing through tsx would measure tsx: it compiles with keepNames, which wraps every
 * closure the hot paths create in a `__name(...)` call (Object.defineProperty per closure) that the
 * shipped bundle does not have.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as esbuild from 'esbuild';

export async function bundle(entryContents: string, name: string): Promise<{ file: string; dispose(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'wb-bench-'));
  const file = join(dir, `${name}.js`);
  await esbuild.build({
    stdin: { contents: entryContents, resolveDir: __dirname, loader: 'ts', sourcefile: `${name}-entry.ts` },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    outfile: file,
    external: ['vscode', 'cpu-features', '*.node', 'esbuild', 'playwright-core'],
    logLevel: 'warning',
  });
  return { file, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Output of a child process; rejects with its stderr when it fails. */
export function runNode(file: string, args: string[] = [], nodeArgs: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`${file} exited with ${code}: ${stderr.trim().slice(-2000)}`))));
  });
}

/** Calls `exported(...args)` of bench/`module`.ts in a bundled child and returns what it resolves to. */
export async function runBundled<T>(module: string, exported: string, args: unknown[] = [], nodeArgs: string[] = []): Promise<T> {
  const built = await bundle(
    `import { ${exported} } from './${module}';\n` +
      `Promise.resolve(${exported}(...JSON.parse(process.argv[2]))).then((r) => process.stdout.write('\\n' + JSON.stringify(r) + '\\n'), (e) => { console.error(e); process.exit(1); });`,
    module,
  );
  try {
    const out = await runNode(built.file, [JSON.stringify(args)], nodeArgs);
    return JSON.parse(out.trim().split('\n').pop()!) as T;
  } finally {
    built.dispose();
  }
}

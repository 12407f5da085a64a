// The layer rules of DESIGN.md §3: the core never imports vscode nor anything above it; the webview
// never imports the extension side. `npm run lint` and a unit test both run this.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const RULES = [
  { layer: 'src/core', forbidden: [/^vscode$/, /(^|\/)vscode\//, /(^|\/)cli(\/|$)/, /(^|\/)extension$/], why: 'src/core must run in plain Node' },
  { layer: 'webview', forbidden: [/^vscode$/, /^node:/, /(^|\/)src\/vscode\//], why: 'the webview runs in a browser' },
];
const IMPORT = /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]\s*\)|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function* sourceFiles(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|tsx|mts|js|mjs)$/.test(name)) yield path;
  }
}

export function findViolations(root) {
  const violations = [];
  for (const rule of RULES) {
    for (const file of sourceFiles(join(root, rule.layer))) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(IMPORT)) {
        const spec = match[1] ?? match[2] ?? match[3];
        if (rule.forbidden.some((re) => re.test(spec))) {
          const line = text.slice(0, match.index).split('\n').length;
          violations.push(`${relative(root, file).split(sep).join('/')}:${line}: imports "${spec}" (${rule.why})`);
        }
      }
    }
  }
  return violations;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const violations = findViolations(process.cwd());
  for (const v of violations) console.error(v);
  if (violations.length) process.exit(1);
  console.log('layers: ok');
}

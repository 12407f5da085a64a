/**
 * CPU profiles of a figure's candidate work, reduced to the functions that spent the most time
 * themselves, each named with the source module it came from (esbuild marks every module in a
 * bundle with a `// path` line, so a bundle line maps back to its module).
 */
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector';

/** The part of a V8 / DevTools CPU profile this reads. */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

export interface Hotspot {
  function: string;
  module: string;
  self_ms: number;
  share: number;
}

/** For each line of a bundle, the module esbuild put there. */
function moduleMarkers(bundleText: string): (line: number) => string {
  const starts: { line: number; module: string }[] = [];
  bundleText.split('\n').forEach((text, line) => {
    const marker = /^\s*\/\/ ((?:src|webview|bench|node_modules)\/\S+)$/.exec(text);
    if (marker) starts.push({ line, module: marker[1] });
  });
  return (line) => {
    let found = '?';
    for (const s of starts) {
      if (s.line > line) break;
      found = s.module;
    }
    return found;
  };
}

export function hotspots(profile: CpuProfile, bundles: Record<string, string> = {}, top = 8): Hotspot[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const markers = new Map<string, (line: number) => string>();
  const moduleOf = (url: string, line: number) => {
    const file = url.replace(/^file:\/\//, '');
    const text = bundles[file];
    if (!text) return file.split('/').slice(-2).join('/') || '(native)';
    if (!markers.has(file)) markers.set(file, moduleMarkers(text));
    return markers.get(file)!(line);
  };
  const self = new Map<string, { function: string; module: string; us: number }>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)' || functionName === '(program)') return;
    // A sample stands for the time until the next one (as DevTools counts it), not since the previous.
    const us = profile.timeDeltas[i + 1] ?? 0;
    total += us;
    const name = functionName || '(anonymous)';
    const module = url ? moduleOf(url, lineNumber) : '(native)';
    const key = `${name} ${module}`;
    const entry = self.get(key) ?? { function: name, module, us: 0 };
    entry.us += us;
    self.set(key, entry);
  });
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ function: e.function, module: e.module, self_ms: Math.round(e.us / 100) / 10, share: Math.round((e.us / total) * 1000) / 1000 }));
}

/** Profiles `work` in this process (a bundled child: its own file is the bundle to map back). */
export async function profileHere(work: () => void): Promise<Hotspot[]> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) => session.post(method, params ?? {}, (error, result) => (error ? reject(error) : resolve(result))));
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
  await post('Profiler.start');
  work();
  const { profile } = (await post('Profiler.stop')) as { profile: CpuProfile };
  session.disconnect();
  const bundle = process.argv[1];
  return hotspots(profile, { [bundle]: readFileSync(bundle, 'utf8') });
}

/**
 * The fuzz part of the fault campaign: deterministic (a seeded PRNG; the seed is printed and settable)
 * structured fuzzing of the three places where untrusted bytes enter the pure core.
 *
 *   npx tsx faults/fuzz.ts [--configs N] [--streams N] [--seed S (default 20261202)] [--out FILE] [--no-shell]
 *   npx tsx faults/fuzz.ts --seed S --case config:I     # print the I-th generated config (to reproduce)
 *   npx tsx faults/fuzz.ts --seed S --case stream:I     # print the I-th generated event stream
 *
 * - Configs: the real examples and test fixtures, mutated structurally and textually, through
 *   `loadConfig` and `loadWorkspaceConfig`. Never throws; every diagnostic located inside the text;
 *   no errors ⇒ a resolved config whose points expand, whose numbers are numbers, and whose job file
 *   says what the config said.
 * - Event streams: a realistic agent stream, mutated as events and as bytes, fed in random chunks to
 *   `EventStream` → `Summarizer.result()`. Never throws; every problem located at a line start;
 *   every summary number a number, finite (or NaN / null where the format says so), no negative
 *   energies or durations, no infinite J/token.
 * - Shell: hostile strings through `shq` and a real /bin/sh and bash, byte for byte; and through every
 *   remote-bound string a config can set, by building the job and the sbatch script, checking the
 *   script with `bash -n`, running it and the remote command lines in a sandbox with stand-ins, and
 *   checking no payload's marker file appears and Wattbench's own commands get exactly their arguments.
 *
 * Each case has its own PRNG, seeded from (seed, kind, index), so one case reproduces alone. Findings
 * are grouped by signature; the first case of each is minimised to a short reproducer.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { hasErrors, loadConfig, type ConfigDiagnostic, type LoadedConfig, type ResolvedConfig, type ResolvedPoint, type SourceRange } from '../src/core/config';
import { ConfigSchema } from '../src/core/config/schema';
import { starterConfig } from '../src/core/config/starter';
import type { EnergySummary, Percentiles, RunSummary } from '../src/core/protocol/summary';
import { buildJob, JobError } from '../src/core/run/job';
import { prepareRunDir } from '../src/core/run/launch';
import { AgentError, fetchText, readEventsFrom, startAgent, stopLeftoverServer, tailEvents, type InstalledAgent } from '../src/core/run/remote';
import { EventStream, type StreamProblem } from '../src/core/run/stream';
import { Summarizer } from '../src/core/run/summarize';
import { sbatchScript } from '../src/core/slurm/sbatch';
import { newRunId } from '../src/core/store/store';
import { LocalTransport } from '../src/core/transport/local';
import { shq } from '../src/core/transport/shell';
import type { ExecOptions, ExecResult, StreamingExec, Transport } from '../src/core/transport/types';
import { loadWorkspaceConfig } from '../src/core/workspace/configs';

const ROOT = resolve(__dirname, '..');

// ------------------------------------------------------------------------------------------ report

/** One kind of finding: every case that showed it, and a short reproducer of the first. */
export interface FindingGroup {
  signature: string;
  count: number;
  /** Case indices (the first 20), each reproducible alone with `--seed S --case KIND:INDEX`. */
  indices: number[];
  first: Record<string, unknown>;
  /** The first case cut down to what still shows the same signature. */
  reproducer?: string;
}

export interface ShellFinding {
  field: string;
  layer: 'shq' | 'shell' | 'sbatch-directive' | 'setup-isolation' | 'job-file';
  value: string;
  why: string;
  reproducer?: string;
}

export interface ShellRefusal {
  field: string;
  by: string;
  value: string;
  message: string;
}

export interface FuzzReport {
  seed: number;
  configs: {
    total: number;
    valid: number;
    invalid: number;
    crashes: FindingGroup[];
    unlocated: FindingGroup[];
    /** No error diagnostics, yet no config or no points (or errors, yet a config). */
    unresolved: FindingGroup[];
    /** Accepted configs whose resolved numbers or job file are not what the config said (NaN, Infinity, lost). */
    nonFinite: FindingGroup[];
    /** Configs that took over 2 s to load (or were killed for time or memory in a child process). */
    slow: FindingGroup[];
    seeds: string[];
    mutations: Record<string, number>;
    /** Fixed measurements beside the random cases. */
    probes: Record<string, unknown>;
    notes: string[];
    duration_s: number;
  };
  streams: {
    total: number;
    events: number;
    problems: number;
    crashes: FindingGroup[];
    unlocated: FindingGroup[];
    badNumbers: FindingGroup[];
    slow: FindingGroup[];
    mutations: Record<string, number>;
    probes: Record<string, unknown>;
    duration_s: number;
  };
  shell: {
    total: number;
    safe: number;
    refused: number;
    /** The findings of the unsafe cases (one case may have several). */
    unsafe: ShellFinding[];
    /** Cases with at least one finding: total = safe + refused + unsafeCases. */
    unsafeCases: number;
    refusals: ShellRefusal[];
    byField: Record<string, { safe: number; refused: number; unsafe: number }>;
    notes: string[];
    duration_s: number;
  };
  duration_s: number;
}

export interface FuzzOptions {
  configs: number;
  streams: number;
  seed: number;
  /** Run the shell part (default true). */
  shell?: boolean;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

class Groups {
  private readonly map = new Map<string, FindingGroup>();
  constructor(private readonly cap = 200) {}

  /** Returns true the first time a signature is seen (the caller may then minimise it). */
  add(signature: string, index: number, first: () => Record<string, unknown>): FindingGroup | undefined {
    let group = this.map.get(signature);
    if (group) {
      group.count++;
      if (group.indices.length < 20) group.indices.push(index);
      return undefined;
    }
    if (this.map.size >= this.cap) signature = 'other signatures (cap reached)';
    group = this.map.get(signature);
    if (group) {
      group.count++;
      return undefined;
    }
    group = { signature, count: 1, indices: [index], first: first() };
    this.map.set(signature, group);
    return group;
  }

  list(): FindingGroup[] {
    return [...this.map.values()].sort((a, b) => b.count - a.count || a.signature.localeCompare(b.signature));
  }
}

// ------------------------------------------------------------------------------------------ PRNG

/** mulberry32, as faults/campaign.ts uses: small, fast, reproducible. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed | 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
  weighted<T extends string>(weights: Record<T, number>): T {
    const entries = Object.entries(weights) as [T, number][];
    let r = this.next() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) if ((r -= w) < 0) return k;
    return entries[entries.length - 1][0];
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

/** A case's own seed: the run's seed, the kind of case and its index, hashed (FNV-1a, then mixed). */
export function caseSeed(seed: number, kind: string, index: number): number {
  let h = 0x811c9dc5;
  for (const c of `${seed}:${kind}:${index}`) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

// ------------------------------------------------------------------------------------------ helpers

function describeValue(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  try {
    const text = JSON.stringify(v);
    return text.length > 80 ? `${text.slice(0, 77)}...` : text;
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function firstLines(text: string, n = 6, width = 160): string[] {
  return text
    .split('\n')
    .slice(0, n)
    .map((l) => (l.length > width ? `${l.slice(0, width)}… (${l.length} chars)` : l));
}

function errorSignature(error: unknown): { name: string; message: string; at: string } {
  const e = error instanceof Error ? error : new Error(String(error));
  const at = (e.stack ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .find((l) => l.includes('/src/core/') || l.includes('node_modules/yaml')) ?? '';
  const short = at.replace(/^at /, '').replace(/\(?\/.*?\/(src\/core\/|node_modules\/)/, '$1').replace(/\)$/, '');
  return { name: e.constructor?.name ?? 'Error', message: e.message.split('\n')[0].slice(0, 160), at: short };
}

/** Numbers in messages vary per case; a signature should not. */
function generalise(message: string): string {
  return message
    .replace(/"[^"]{0,80}"/g, '"…"')
    .replace(/`[^`]{0,80}`/g, '`…`')
    .replace(/(the anchor must be set before the alias\)): .*/, '$1: …')
    .replace(NUMBER, 'N')
    .slice(0, 140);
}

/** A number standing alone (not the 2 of gco2 or the 0 of node-0). */
const NUMBER = /(?<![A-Za-z_-])-?\d+(\.\d+)?(e[+-]?\d+)?/gi;

/** Greedy delta debugging over items: the smallest subset (by chunk removal) for which `keeps` holds. */
function minimise<T>(items: T[], keeps: (subset: T[]) => boolean, budget = 300, ms = 700): T[] {
  let current = items;
  let chunk = Math.max(1, Math.floor(current.length / 2));
  let calls = 0;
  const deadline = performance.now() + ms;
  const more = () => calls < budget && performance.now() < deadline;
  while (chunk >= 1 && more()) {
    let removed = false;
    for (let start = 0; start < current.length && more(); ) {
      const candidate = [...current.slice(0, start), ...current.slice(start + chunk)];
      calls++;
      if (candidate.length < current.length && keeps(candidate)) {
        current = candidate;
        removed = true;
      } else start += chunk;
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return current;
}

// ========================================================================================== CONFIGS

interface ConfigSeed {
  name: string;
  text: string;
}

/** The real configs: examples/*.wattbench.yaml, the starters, and config texts in the unit tests. */
export function configSeeds(): ConfigSeed[] {
  const seeds: ConfigSeed[] = [];
  const examples = join(ROOT, 'examples');
  for (const file of readdirSync(examples).filter((f) => /\.wattbench\.(ya?ml|json)$/.test(f)).sort())
    seeds.push({ name: `examples/${file}`, text: readFileSync(join(examples, file), 'utf8') });
  seeds.push({ name: 'starter (simulated)', text: starterConfig('fuzz-sim', { simulated: true, schemaPath: '../schemas/wattbench.schema.json' }) });
  seeds.push({ name: 'starter (real)', text: starterConfig('fuzz-real', { simulated: false }) });
  const tests = join(ROOT, 'test', 'unit');
  for (const file of readdirSync(tests).filter((f) => /^config-.*\.test\.ts$/.test(f)).sort()) {
    const source = readFileSync(join(tests, file), 'utf8');
    let n = 0;
    for (const match of source.matchAll(/`([^`]*)`/g)) {
      const body = match[1];
      if (body.includes('${') || !/(^|\n)\s*name:|"name"\s*:/.test(body) || body.length < 20) continue;
      const text = body.replace(/\\n/g, '\n').replace(/\\t/g, '\t').replace(/\\\\/g, '\\');
      seeds.push({ name: `test/unit/${file}#${n++}`, text });
    }
  }
  return seeds;
}

/** Every property name the schema knows, for renames that land on real keys. */
function schemaKeys(): string[] {
  const keys = new Set<string>();
  const walk = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach(walk);
    const record = node as Record<string, unknown>;
    if (record.properties && typeof record.properties === 'object') for (const k of Object.keys(record.properties)) keys.add(k);
    for (const v of Object.values(record)) walk(v);
  };
  walk(JSON.parse(JSON.stringify(ConfigSchema)));
  return [...keys].sort();
}

type Tree = unknown;
interface NodeRef {
  path: (string | number)[];
  value: unknown;
  parent?: Record<string, unknown> | unknown[];
  key?: string | number;
}

function nodes(tree: Tree): NodeRef[] {
  const out: NodeRef[] = [];
  const seen = new Set<unknown>();
  const walk = (value: unknown, path: (string | number)[], parent?: NodeRef['parent'], key?: string | number) => {
    out.push({ path, value, parent, key });
    if (!value || typeof value !== 'object' || seen.has(value) || path.length > 40) return;
    seen.add(value);
    if (Array.isArray(value)) value.slice(0, 50).forEach((v, i) => walk(v, [...path, i], value, i));
    else for (const [k, v] of Object.entries(value)) walk(v, [...path, k], value as Record<string, unknown>, k);
  };
  walk(tree, []);
  return out;
}

function setAt(ref: NodeRef, value: unknown): void {
  if (!ref.parent || ref.key === undefined) return;
  (ref.parent as Record<string | number, unknown>)[ref.key] = value;
}

const UNIT_STRINGS = ['10 W', '5xs', '250 watts', '0.3kW', '0kW', '1e3W', '300w', '30S', '10 minutes', '100 ms', ' 30s ', '1h', '1.5h', '2d', '-5s', '5s5', '.5s', '5.s', '1_000', '0x10', '+5', '∞', '5 W ', '250Ｗ', '１０s'];
const NUMBER_EXTREMES = [0, -0, -1, -1e-300, 0.5, 1.5, 2.0000001, 3, 255, 256, 1e6, 2 ** 31, 2 ** 32 + 1, 2 ** 53 + 1, 1e21, 1e308, -1e308, 5e-324, 9.999999999999999e22];
const NON_FINITE = [NaN, Infinity, -Infinity];
const UNICODE = ['ünïcødé', '😀🔥', '\u202edesrever', 'zero\u200bwidth', '\u0000nul', 'a\u0085b', 'line\u2028sep', 'ＡＢＣ', 'ǅ', '\uD800', '\uFEFFbom', 'e\u0301', 'ﷺ'.repeat(20)];
const BAD_YAML = [':', '{', '}', '[', ']', '&', '*', '!', '|', '>', "'", '"', '%', '@', '`', '#', ',', '?', '- ', ': :', '{a: [}', '"\\x"', "'''", '!!int x', '&a &b', '*', '<<: *x', '\\', '\t'];

const CONFIG_MUTATIONS = {
  'drop-key': 4,
  'rename-key': 4,
  'swap-type': 5,
  'out-of-range': 4,
  'non-finite': 3,
  'unit-string': 4,
  'benign-number': 5,
  'add-unknown-key': 1,
  'deep-nesting': 1,
  'long-string': 1,
  'huge-sweep': 2,
  'sweep-points': 2,
  unicode: 2,
  reorder: 2,
  'duplicate-list-item': 2,
  'move-subtree': 1,
  'valid-sweep': 3,
  'non-finite-field': 3,
};
type ConfigMutation = keyof typeof CONFIG_MUTATIONS;

const TEXT_MUTATIONS = {
  truncate: 3,
  'tab-indent': 2,
  'duplicate-line': 3,
  'delete-line': 2,
  'swap-lines': 2,
  'syntax-garbage': 3,
  unclosed: 2,
  crlf: 2,
  'cr-only': 1,
  bom: 1,
  anchors: 3,
  tags: 2,
  'complex-key': 1,
  'multi-doc': 1,
  comments: 2,
  'non-finite-text': 3,
  'control-chars': 2,
  'deep-text': 1,
  'long-line': 1,
  'empty-doc': 1,
};
type TextMutation = keyof typeof TEXT_MUTATIONS;

function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(0, depth > 2 ? 5 : 8)) {
    case 0:
      return rng.pick(['', 'x', 'synthetic', 'local', 'true', 'null', '~', 'yes', 'no', '1', '-1', 'NaN', 'Infinity']);
    case 1:
      return rng.pick(NUMBER_EXTREMES);
    case 2:
      return rng.pick([true, false]);
    case 3:
      return null;
    case 4:
      return rng.pick(UNIT_STRINGS);
    case 5:
      return rng.pick(UNICODE);
    case 6:
      return [];
    case 7:
      return Array.from({ length: rng.int(1, 3) }, () => randomValue(rng, depth + 1));
    default:
      return Object.fromEntries(Array.from({ length: rng.int(0, 3) }, () => [rng.pick(['mean', 'std', 'x', 'id', 'slurm', 'sim']), randomValue(rng, depth + 1)]));
  }
}

function typo(rng: Rng, key: string, known: string[]): string {
  switch (rng.int(0, 6)) {
    case 0:
      if (key.length < 2) return `${key}x`;
      {
        const i = rng.int(0, key.length - 2);
        return key.slice(0, i) + key[i + 1] + key[i] + key.slice(i + 2);
      }
    case 1:
      return key.slice(0, -1);
    case 2:
      return key.toUpperCase();
    case 3:
      return `${key}s`;
    case 4:
      return key.replace(/_/g, '-');
    case 5:
      return rng.pick(known);
    default:
      return ` ${key}`;
  }
}

function mutateTree(rng: Rng, tree: Tree, kind: ConfigMutation, known: string[]): Tree {
  const all = nodes(tree);
  const maps = all.filter((n) => n.value && typeof n.value === 'object' && !Array.isArray(n.value)) as (NodeRef & { value: Record<string, unknown> })[];
  const lists = all.filter((n) => Array.isArray(n.value)) as (NodeRef & { value: unknown[] })[];
  const leaves = all.filter((n) => n.parent && (n.value === null || typeof n.value !== 'object'));
  const numbers = leaves.filter((n) => typeof n.value === 'number');
  const strings = leaves.filter((n) => typeof n.value === 'string');
  const root = tree && typeof tree === 'object' && !Array.isArray(tree) ? (tree as Record<string, unknown>) : undefined;
  switch (kind) {
    case 'drop-key': {
      const map = maps.length ? rng.pick(maps) : undefined;
      const keys = map ? Object.keys(map.value) : [];
      if (map && keys.length) delete map.value[rng.pick(keys)];
      return tree;
    }
    case 'rename-key': {
      const map = maps.length ? rng.pick(maps) : undefined;
      const keys = map ? Object.keys(map.value) : [];
      if (!map || !keys.length) return tree;
      const key = rng.pick(keys);
      const renamed = typo(rng, key, known);
      const entries = Object.entries(map.value).map(([k, v]) => [k === key ? renamed : k, v] as const);
      for (const k of Object.keys(map.value)) delete map.value[k];
      for (const [k, v] of entries) map.value[k] = v;
      return tree;
    }
    case 'swap-type': {
      const target = all.filter((n) => n.parent);
      if (!target.length) return randomValue(rng);
      setAt(rng.pick(target), randomValue(rng));
      return tree;
    }
    case 'out-of-range':
      if (numbers.length) setAt(rng.pick(numbers), rng.pick(NUMBER_EXTREMES));
      return tree;
    case 'non-finite': {
      const target = numbers.length && rng.chance(0.7) ? rng.pick(numbers) : leaves.length ? rng.pick(leaves) : undefined;
      if (target) setAt(target, rng.pick(NON_FINITE));
      return tree;
    }
    case 'unit-string': {
      const target = numbers.length || strings.length ? rng.pick([...numbers, ...strings]) : undefined;
      if (target) setAt(target, rng.pick(UNIT_STRINGS));
      return tree;
    }
    case 'benign-number':
      if (numbers.length) {
        const n = rng.pick(numbers);
        const v = n.value as number;
        setAt(n, Number.isInteger(v) ? Math.max(1, v + rng.int(-2, 8)) : Math.max(0.01, v * (0.5 + rng.next())));
      }
      return tree;
    case 'add-unknown-key': {
      const map = maps.length ? rng.pick(maps) : undefined;
      if (map) map.value[rng.pick(['extra', 'Name', 'comment', '__proto__', 'constructor', 'toString', '', ' ', '0', 'sweep', 'server'])] = randomValue(rng);
      return tree;
    }
    case 'deep-nesting': {
      let deep: unknown = rng.pick([1, 'x', null]);
      const depth = rng.int(20, 400);
      for (let i = 0; i < depth; i++) deep = rng.chance(0.5) ? [deep] : { k: deep };
      const target = all.filter((n) => n.parent);
      if (target.length) setAt(rng.pick(target), deep);
      return tree;
    }
    case 'long-string': {
      const target = strings.length ? rng.pick(strings) : leaves.length ? rng.pick(leaves) : undefined;
      if (target) setAt(target, rng.pick(['a', 'é', '😀', 'ab cd ', "'", '"']).repeat(rng.int(1000, 60000)));
      return tree;
    }
    case 'huge-sweep': {
      if (!root) return tree;
      const sweep = (root.sweep && typeof root.sweep === 'object' && !Array.isArray(root.sweep) ? root.sweep : (root.sweep = {})) as Record<string, unknown>;
      if (rng.chance(0.8)) {
        const n = rng.int(1000, 6000);
        sweep[rng.pick(['concurrency', 'max_tokens', 'num_prompts', 'input_tokens'])] = Array.from({ length: n }, (_, i) => i + 1);
      } else {
        // A Cartesian product past MAX_POINTS (10 000): validation must say so, not run out of memory.
        const per = rng.int(30, 110);
        for (const key of ['max_tokens', 'num_prompts', rng.pick(['input_tokens', 'output_tokens'])])
          sweep[key] = Array.from({ length: per }, (_, i) => i + 1);
      }
      return tree;
    }
    case 'sweep-points': {
      if (!root) return tree;
      const sweep = (root.sweep && typeof root.sweep === 'object' && !Array.isArray(root.sweep) ? root.sweep : (root.sweep = {})) as Record<string, unknown>;
      sweep.points = Array.from({ length: rng.int(0, 4) }, () =>
        rng.chance(0.6)
          ? { [rng.pick(['concurrency', 'max_tokens', 'power_cap_w', 'gpu_count', 'temperature', 'request_rate', 'dataset'])]: rng.chance(0.7) ? rng.int(1, 300) : randomValue(rng) }
          : randomValue(rng),
      );
      return tree;
    }
    case 'unicode': {
      const target = strings.length ? rng.pick(strings) : undefined;
      if (target) setAt(target, rng.pick(UNICODE) + (rng.chance(0.5) ? String(target.value) : ''));
      return tree;
    }
    case 'reorder': {
      const map = maps.length ? rng.pick(maps) : undefined;
      if (!map) return tree;
      const entries = rng.shuffle(Object.entries(map.value));
      for (const k of Object.keys(map.value)) delete map.value[k];
      for (const [k, v] of entries) map.value[k] = v;
      return tree;
    }
    case 'duplicate-list-item': {
      const list = lists.length ? rng.pick(lists) : undefined;
      if (list && list.value.length) list.value.push(list.value[rng.int(0, list.value.length - 1)]);
      return tree;
    }
    case 'move-subtree': {
      const target = all.filter((n) => n.parent);
      if (target.length < 2) return tree;
      const from = rng.pick(target);
      const to = rng.pick(target);
      if (!to.path.join('.').startsWith(from.path.join('.'))) setAt(to, structuredCloneSafe(from.value));
      return tree;
    }
    case 'non-finite-field': {
      // NaN and ±Infinity where the schema has a number (not an integer), a duration or a power.
      if (!root) return tree;
      const [section, key] = rng.pick([
        ['workload', 'temperature'], ['workload', 'top_p'], ['workload', 'request_rate'], ['workload', 'time_limit'], ['cost', 'usd_per_kwh'], ['cost', 'pue'], ['cost', 'gco2_per_kwh'],
        ['model', 'params_b'], ['server', 'ready_timeout'], ['telemetry', 'interval'], ['telemetry', 'idle_baseline'], ['gpus', 'power_cap_w'],
      ] as const);
      const map = (root[section] && typeof root[section] === 'object' && !Array.isArray(root[section]) ? root[section] : (root[section] = {})) as Record<string, unknown>;
      map[key] = rng.pick(NON_FINITE);
      if (key === 'request_rate') delete map.concurrency;
      return tree;
    }
    case 'valid-sweep': {
      if (!root) return tree;
      const sweep = (root.sweep && typeof root.sweep === 'object' && !Array.isArray(root.sweep) ? root.sweep : (root.sweep = {})) as Record<string, unknown>;
      const key = rng.pick(['concurrency', 'max_tokens', 'num_prompts', 'temperature', 'power_cap_w', 'gpu_count']);
      const values: Record<string, () => unknown> = {
        concurrency: () => rng.int(1, 512),
        max_tokens: () => rng.int(1, 4096),
        num_prompts: () => rng.int(1, 1000),
        temperature: () => Math.round(rng.next() * 200) / 100,
        power_cap_w: () => (rng.chance(0.5) ? rng.int(100, 700) : `${rng.int(100, 700)}W`),
        gpu_count: () => rng.int(1, 8),
      };
      delete sweep.request_rate;
      sweep[key] = Array.from({ length: rng.int(1, 6) }, values[key]);
      return tree;
    }
  }
}

function structuredCloneSafe(v: unknown): unknown {
  try {
    return structuredClone(v);
  } catch {
    return v;
  }
}

function mutateText(rng: Rng, text: string, kind: TextMutation): string {
  const lines = text.split('\n');
  const line = () => rng.int(0, Math.max(0, lines.length - 1));
  const at = () => rng.int(0, text.length);
  switch (kind) {
    case 'truncate':
      return text.slice(0, at());
    case 'tab-indent': {
      const i = line();
      lines[i] = lines[i].replace(/^( *)/, (s) => (rng.chance(0.5) ? '\t' : `\t${s}`));
      return lines.join('\n');
    }
    case 'duplicate-line': {
      const i = line();
      lines.splice(rng.chance(0.7) ? i + 1 : line(), 0, lines[i]);
      return lines.join('\n');
    }
    case 'delete-line':
      lines.splice(line(), 1);
      return lines.join('\n');
    case 'swap-lines': {
      const a = line();
      const b = line();
      [lines[a], lines[b]] = [lines[b], lines[a]];
      return lines.join('\n');
    }
    case 'syntax-garbage': {
      const p = at();
      return text.slice(0, p) + rng.pick(BAD_YAML) + text.slice(p);
    }
    case 'unclosed':
      return `${text}\n${rng.pick(['extra: [1, 2', 'extra: {a: 1', "extra: 'open", 'extra: "open', 'extra: |\n  block\n bad', 'extra: >-\n', '- item\nmixed: 1'])}\n`;
    case 'crlf':
      return text.replace(/\n/g, '\r\n');
    case 'cr-only':
      return text.replace(/\n/g, '\r');
    case 'bom':
      return `\uFEFF${text}`;
    case 'anchors': {
      switch (rng.int(0, 5)) {
        case 0: // a harmless anchor and alias
          return `${text.replace(/^(name:\s*)(.*)$/m, '$1&nm $2')}\ndescription: *nm\n`;
        case 1: // billion laughs
          return `${text}\nx1: &a [l, l, l, l, l, l, l, l, l]\nx2: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nx3: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nx4: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n`;
        case 2: // an alias before its anchor
          return `${text}\ndescription: *nowhere\n`;
        case 3: // an alias to itself (circular)
          return `${text}\ndescription: &self [ *self ]\n`;
        case 4: // merge key
          return `${text}\nbase: &base { concurrency: 4 }\nworkload:\n  <<: *base\n`;
        default: // anchor on a mapping reused as another mapping
          return text.replace(/^server:/m, 'server: &srv').concat('\ngpus: *srv\n');
      }
    }
    case 'tags': {
      const i = line();
      lines[i] = lines[i].replace(/:\s+(\S)/, (_m, c: string) => `: ${rng.pick(['!!binary', '!!set', '!!omap', '!!timestamp', '!!int', '!!str', '!!float', '!!null', '!custom', '!<tag:yaml.org,2002:str>'])} ${c}`);
      return lines.join('\n');
    }
    case 'complex-key':
      return `${text}\n? [a, b]\n: 1\n? {k: v}\n: 2\n`;
    case 'multi-doc':
      return rng.chance(0.5) ? `${text}\n---\nname: second\n` : `---\n${text}\n...\n---\n`;
    case 'comments': {
      const i = line();
      lines[i] = `${lines[i]} # ${rng.pick(['comment', '#', "'", '"', ': x', '&a', 'é😀'])}`;
      return lines.join('\n');
    }
    case 'non-finite-text': {
      const numbersAt = [...text.matchAll(/:\s*(-?\d+(\.\d+)?)\s*$/gm)];
      if (!numbersAt.length) return text;
      const m = rng.pick(numbersAt);
      const start = m.index! + m[0].indexOf(m[1]);
      return text.slice(0, start) + rng.pick(['.nan', '.NaN', '.inf', '-.inf', '+.inf', '1e400', '-1e400', '0x1F', '0o17', '1_000', '.5', '1e-400', '00012', '+12', '12.0', '1.0e+2']) + text.slice(start + m[1].length);
    }
    case 'control-chars': {
      const p = at();
      return text.slice(0, p) + rng.pick(['\u0000', '\u0001', '\u0007', '\u001b', '\u007f', '\u0085', '\u2028', '\u2029', '\uFFFE', '\uD800', '\r']) + text.slice(p);
    }
    case 'deep-text': {
      // Past the yaml parser's stack (about 1000); deeper costs more time, not more coverage (see yamlErrorFlood).
      const depth = rng.int(500, 3000);
      const [open, close] = rng.pick([['[', ']'], ['{a: ', '}'], ['- ', '']] as const);
      const deep = open === '- ' ? Array.from({ length: Math.min(depth, 600) }, (_, i) => `${' '.repeat(i * 2)}- `).join('\n') + 'x' : open.repeat(depth) + '1' + close.repeat(depth);
      return `${text}\ndeep: ${open === '- ' ? '\n' : ''}${deep}\n`;
    }
    case 'long-line':
      return `${text}\n# ${'x'.repeat(rng.int(10000, 200000))}\nlong: ${'y'.repeat(rng.int(1000, 100000))}\n`;
    case 'empty-doc':
      return rng.pick(['', ' ', '\n', '\n\n\n', '---', '---\n...\n', '# only a comment', '~', 'null', '[]', '{}', '"str"', '42', '---\na: 1\n---\nb: 2\n', '\uFEFF', '%YAML 1.2\n---\n', '%TAG ! tag:x,2000:\n---\n!a b', '- a\n- b\n', 'name:', ':']);
  }
}

interface GeneratedConfig {
  text: string;
  seed: string;
  mutations: string[];
  /** Cross product of the sweep lists, when the generator can tell (to isolate the huge ones). */
  sweepProduct: number;
}

export function generateConfig(seed: number, index: number, seeds: ConfigSeed[], known: string[]): GeneratedConfig {
  const rng = new Rng(caseSeed(seed, 'config', index));
  const base = rng.pick(seeds);
  const mutations: string[] = [];
  let text: string;
  if (rng.chance(0.2)) {
    text = base.text;
  } else {
    let tree: Tree;
    try {
      tree = parseYaml(base.text);
    } catch {
      tree = {};
    }
    const count = rng.weighted({ 0: 1, 1: 4, 2: 3, 3: 2, 5: 1 });
    for (let i = 0; i < Number(count); i++) {
      const kind = rng.weighted(CONFIG_MUTATIONS);
      mutations.push(kind);
      tree = mutateTree(rng, tree, kind, known);
    }
    const style = rng.weighted({ yaml: 6, json: 2, 'json-compact': 1, flow: 1 });
    if (style !== 'yaml') mutations.push(`as-${style}`);
    try {
      text =
        style === 'yaml'
          ? stringifyYaml(tree, { lineWidth: 0 })
          : style === 'flow'
            ? stringifyYaml(tree, { collectionStyle: 'flow', lineWidth: 0 })
            : style === 'json'
              ? JSON.stringify(tree, null, 2)
              : JSON.stringify(tree);
    } catch {
      text = base.text;
      mutations.push('serialise-failed');
    }
    text ??= 'null';
  }
  if (rng.chance(0.4)) {
    const count = rng.int(1, 2);
    for (let i = 0; i < count; i++) {
      const kind = rng.weighted(TEXT_MUTATIONS);
      mutations.push(`text:${kind}`);
      text = mutateText(rng, text, kind);
    }
  }
  return { text, seed: base.name, mutations, sweepProduct: sweepProduct(text) };
}

function sweepProduct(text: string): number {
  try {
    const tree = parseYaml(text, { maxAliasCount: -1, uniqueKeys: false }) as Record<string, unknown> | null;
    const sweep = tree && typeof tree === 'object' ? (tree.sweep as Record<string, unknown> | undefined) : undefined;
    if (!sweep || typeof sweep !== 'object') return 1;
    let product = 1;
    for (const [k, v] of Object.entries(sweep)) if (Array.isArray(v)) product *= k === 'points' ? Math.max(1, v.length) : v.length;
    return product;
  } catch {
    return 1;
  }
}

// ------------------------------------------------------------------------------------------ config invariants

/** Positions are 0-based lines (split on \n, as the yaml LineCounter counts) and 0-based UTF-16 columns. */
export function rangeProblem(range: SourceRange | undefined, text: string): string | undefined {
  if (!range || !range.start || !range.end) return 'no range';
  const lines = text.split('\n');
  for (const [name, p] of [['start', range.start], ['end', range.end]] as const) {
    if (!Number.isInteger(p.line) || !Number.isInteger(p.col)) return `${name} not integers (${describeValue(p)})`;
    if (p.line < 0 || p.col < 0) return `${name} negative`;
    if (p.line >= lines.length) return `${name} line ${p.line} past the last line (${lines.length - 1})`;
    if (p.col > lines[p.line].length) return `${name} col ${p.col} past the end of line ${p.line} (${lines[p.line].length} chars)`;
  }
  if (range.end.line < range.start.line || (range.end.line === range.start.line && range.end.col < range.start.col)) return 'end before start';
  return undefined;
}

function diagnosticProblems(diagnostics: ConfigDiagnostic[], text: string): { code: string; problem: string; d: ConfigDiagnostic }[] {
  const out: { code: string; problem: string; d: ConfigDiagnostic }[] = [];
  for (const d of diagnostics) {
    if (typeof d.message !== 'string' || !d.message.trim()) out.push({ code: d.code, problem: 'no message', d });
    if (!['error', 'warning', 'info'].includes(d.severity)) out.push({ code: d.code, problem: `severity ${describeValue(d.severity)}`, d });
    const r = rangeProblem(d.range, text);
    if (r) out.push({ code: d.code, problem: r, d });
    if (d.fix) {
      const f = rangeProblem(d.fix.range, text);
      if (f) out.push({ code: d.code, problem: `fix range: ${f}`, d });
    }
  }
  return out;
}

/** What a resolved config promises as numbers: required ones finite, optional ones finite when given. */
function resolvedNumberProblems(loaded: LoadedConfig): string[] {
  const out: string[] = [];
  const config = loaded.config!;
  const source = loaded.source;
  const need = (what: string, v: unknown, opts: { min?: number; positive?: boolean; optionalPath?: (string | number)[] } = {}) => {
    if (v === undefined && opts.optionalPath && !source.has(opts.optionalPath)) return;
    if (typeof v !== 'number' || !Number.isFinite(v)) return void out.push(`${what} is ${describeValue(v)}`);
    if (opts.positive && !(v > 0)) out.push(`${what} is ${v}, not > 0`);
    if (opts.min !== undefined && v < opts.min) out.push(`${what} is ${v}, below ${opts.min}`);
  };
  need('telemetry.intervalS', config.telemetry.intervalS, { min: 0 });
  need('telemetry.idleBaselineS', config.telemetry.idleBaselineS, { min: 0 });
  need('server.readyTimeoutS', config.server.readyTimeoutS, { min: 0 });
  for (const [k, v] of Object.entries(config.cost)) need(`cost.${k}`, v, { min: 0 });
  need('gpus.count', config.gpus.count, { positive: true });
  need('gpus.powerCapW', config.gpus.powerCapW, { positive: true, optionalPath: ['gpus', 'power_cap_w'] });
  need('repeats', config.repeats, { positive: true });
  const m = config.model;
  for (const [k, path] of [['paramsB', 'params_b'], ['activeParamsB', 'active_params_b']] as const)
    need(`model.${k}`, m[k], { positive: true, optionalPath: ['model', path] });
  if (config.target.kind === 'slurm') need('slurm.timeLimitS', config.target.slurm.timeLimitS, { min: 0, optionalPath: ['target', 'slurm', 'time_limit'] });
  const seen = new Set<string>();
  for (const p of loaded.points.slice(0, 50)) {
    const w = p.workload;
    const check = (what: string, v: unknown, opts: Parameters<typeof need>[2] = {}) => {
      const before = out.length;
      need(what, v, opts);
      for (const line of out.splice(before))
        if (!seen.has(line)) {
          out.push(line);
          seen.add(line);
        }
    };
    check('point.gpuCount', p.gpuCount, { positive: true });
    if (p.powerCapW !== undefined || source.has(['gpus', 'power_cap_w']) || source.has(['sweep', 'power_cap_w'])) check('point.powerCapW', p.powerCapW, { positive: true });
    check('workload.numPrompts', w.numPrompts, { positive: true });
    check('workload.maxTokens', w.maxTokens, { positive: true });
    check('workload.warmup', w.warmup, { min: 0 });
    check('workload.temperature', w.temperature, { min: 0 });
    check('workload.seed', w.seed);
    check('workload.inputTokens.mean', w.inputTokens.mean, { positive: true });
    check('workload.outputTokens.mean', w.outputTokens.mean, { positive: true });
    if (w.concurrency !== undefined || w.requestRate === undefined) check('workload.concurrency', w.concurrency, { positive: true });
    if (w.requestRate !== undefined) check('workload.requestRate', w.requestRate, { positive: true });
    if (w.topP !== undefined || source.has(['workload', 'top_p'])) check('workload.topP', w.topP, { positive: true });
    check('workload.timeLimitS', w.timeLimitS, { min: 0, optionalPath: ['workload', 'time_limit'] });
  }
  return out;
}

/** The job file as the agent reads it (JSON) must equal what was built: no NaN → null, no key lost. */
function jobProblems(config: ResolvedConfig, points: ResolvedPoint[]): string[] {
  let built: ReturnType<typeof buildJob>;
  try {
    built = buildJob('20260101-000000-fuzz-0000', config, points.slice(0, 200), (p) => p);
  } catch (error) {
    if (error instanceof JobError) return [];
    throw error;
  }
  const out: string[] = [];
  const diff = (a: unknown, b: unknown, path: string): void => {
    if (out.length > 5) return;
    if (a && typeof a === 'object') {
      if (!b || typeof b !== 'object') return void out.push(`job ${path}: ${describeValue(a)} reads back as ${describeValue(b)}`);
      const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
      for (const k of keys) {
        const where = path ? `${path}.${k}` : k;
        if (!(k in b)) out.push(`job ${where.replace(/\.\d+\./g, '[].')}: ${describeValue((a as Record<string, unknown>)[k])} is left out of job.json`);
        else diff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], where);
      }
      return;
    }
    if (!Object.is(a, b) && !(a === 0 && b === 0)) out.push(`job ${path.replace(/\.\d+\./g, '[].')}: ${describeValue(a)} reads back as ${describeValue(b)}`);
  };
  const back = JSON.parse(JSON.stringify(built.job)) as unknown;
  if (!isDeepStrictEqual(back, built.job)) diff(built.job, back, '');
  return out;
}

interface ConfigOutcome {
  valid: boolean;
  crash?: { fn: string; error: ReturnType<typeof errorSignature> };
  unlocated: { fn: string; code: string; problem: string; message: string; range: unknown }[];
  unresolved: string[];
  nonFinite: string[];
  ms: number;
}

function checkConfigText(text: string, base: string): ConfigOutcome {
  const outcome: ConfigOutcome = { valid: false, unlocated: [], unresolved: [], nonFinite: [], ms: 0 };
  const started = performance.now();
  const runs: [string, () => LoadedConfig][] = [
    ['loadConfig', () => loadConfig(text)],
    ['loadWorkspaceConfig', () => loadWorkspaceConfig(text, base)],
  ];
  for (const [fn, load] of runs) {
    let loaded: LoadedConfig;
    try {
      loaded = load();
    } catch (error) {
      outcome.crash ??= { fn, error: errorSignature(error) };
      continue;
    }
    for (const p of diagnosticProblems(loaded.diagnostics, text))
      outcome.unlocated.push({ fn, code: p.code, problem: p.problem, message: p.d.message, range: p.d.range });
    const errors = hasErrors(loaded.diagnostics);
    if (!errors && !loaded.config) outcome.unresolved.push(`${fn}: no error diagnostics but no config`);
    if (!errors && loaded.config && loaded.points.length === 0) outcome.unresolved.push(`${fn}: no error diagnostics but no points`);
    if (errors && loaded.config) outcome.unresolved.push(`${fn}: error diagnostics but a config`);
    if (fn === 'loadConfig') outcome.valid = !errors;
    if (!errors && loaded.config && fn === 'loadConfig') {
      try {
        outcome.nonFinite.push(...resolvedNumberProblems(loaded));
        outcome.nonFinite.push(...jobProblems(loaded.config, loaded.points));
      } catch (error) {
        outcome.crash ??= { fn: 'buildJob', error: errorSignature(error) };
      }
    }
  }
  outcome.ms = performance.now() - started;
  return outcome;
}

/** A config whose sweep multiplies out past this is loaded in a child process with a memory and time limit. */
const ISOLATE_PRODUCT = 200_000;

function checkConfigIsolated(text: string, base: string): ConfigOutcome {
  const started = performance.now();
  const child = spawnSync(process.execPath, ['--max-old-space-size=256', '--import', 'tsx', __filename, '--child-config', base], {
    input: text,
    timeout: 3000,
    encoding: 'utf8',
    cwd: ROOT,
    maxBuffer: 64 << 20,
  });
  const ms = performance.now() - started;
  if (child.status === 0) {
    try {
      return { ...(JSON.parse(child.stdout) as ConfigOutcome), ms };
    } catch {
      /* fall through */
    }
  }
  const why = child.error ? `killed after ${Math.round(ms)} ms (${child.error.message})` : child.signal ? `killed by ${child.signal} after ${Math.round(ms)} ms` : `exited ${child.status}: ${(child.stderr || '').split('\n').find((l) => /heap|memory|Error/.test(l)) ?? ''}`;
  return { valid: false, crash: { fn: 'loadConfig (child process)', error: { name: 'ResourceExhaustion', message: why.slice(0, 200), at: '' } }, unlocated: [], unresolved: [], nonFinite: [], ms };
}

async function fuzzConfigs(options: FuzzOptions, report: FuzzReport): Promise<void> {
  const seeds = configSeeds();
  const known = schemaKeys();
  const base = join(ROOT, 'examples');
  report.configs.seeds = seeds.map((s) => s.name);
  const crashes = new Groups();
  const unlocated = new Groups();
  const unresolved = new Groups();
  const nonFinite = new Groups();
  const slow = new Groups();
  for (let i = 0; i < options.configs; i++) {
    const caseStart = performance.now();
    const g = generateConfig(options.seed, i, seeds, known);
    for (const m of g.mutations) report.configs.mutations[m] = (report.configs.mutations[m] ?? 0) + 1;
    const isolated = g.sweepProduct > ISOLATE_PRODUCT;
    const outcome = isolated ? checkConfigIsolated(g.text, base) : checkConfigText(g.text, base);
    report.configs.total++;
    if (outcome.valid) report.configs.valid++;
    else report.configs.invalid++;
    const context = () => ({ index: i, caseSeed: caseSeed(options.seed, 'config', i), from: g.seed, mutations: g.mutations, chars: g.text.length, firstLines: firstLines(g.text) });
    if (outcome.crash) {
      const c = outcome.crash;
      const sig = `${c.fn}: ${c.error.name}: ${generalise(c.error.message)}${c.error.at ? ` at ${c.error.at}` : ''}`;
      const group = crashes.add(sig, i, () => ({ ...context(), error: `${c.error.name}: ${c.error.message}`, at: c.error.at }));
      if (group && !isolated) group.reproducer = minimiseConfig(g.text, base, (o) => !!o.crash && o.crash.error.name === c.error.name && generalise(o.crash.error.message) === generalise(c.error.message));
      else if (group) group.reproducer = `sweep product ${g.sweepProduct}: ${firstLines(g.text, 12).join('\n')}`;
    }
    for (const u of outcome.unlocated) {
      const sig = `${u.fn}: ${u.code}: ${u.problem.replace(/\d+/g, 'N')}`;
      const group = unlocated.add(sig, i, () => ({ ...context(), code: u.code, problem: u.problem, message: u.message, range: u.range }));
      if (group) group.reproducer = minimiseConfig(g.text, base, (o) => o.unlocated.some((x) => x.code === u.code && x.problem.replace(/\d+/g, 'N') === u.problem.replace(/\d+/g, 'N')));
    }
    for (const u of outcome.unresolved) unresolved.add(u, i, () => ({ ...context() }));
    for (const n of outcome.nonFinite) {
      const sig = n.replace(NUMBER, 'N');
      const group = nonFinite.add(sig, i, () => ({ ...context(), problem: n }));
      if (group) group.reproducer = minimiseConfig(g.text, base, (o) => o.nonFinite.some((x) => x.replace(NUMBER, 'N') === sig));
    }
    if (outcome.ms > 2000) slow.add(`load took over 2 s (${isolated ? 'child process' : 'in process'})`, i, () => ({ ...context(), ms: Math.round(outcome.ms), sweepProduct: g.sweepProduct }));
    if (process.env.FUZZ_PROFILE && performance.now() - caseStart > 300) console.error(`config ${i}: ${Math.round(performance.now() - caseStart)} ms (check ${Math.round(outcome.ms)} ms) ${g.mutations.join(',')}`);
    if (options.log && (i + 1) % 250 === 0) options.log(`configs: ${i + 1}/${options.configs}`);
  }
  const flood = yamlErrorFlood();
  report.configs.probes.syntaxErrorFlood = flood;
  if (flood.diagnostics > 1000) slow.add(`a ${flood.chars}-character invalid config gives ${flood.diagnostics} diagnostics in ${flood.ms} ms (syntax errors are not capped)`, -1, () => ({ ...flood }));
  report.configs.notes.push(
    'Ranges are checked as src/core/config/diagnostics.ts and source.ts define them: 0-based lines counted by \\n (as yaml\'s LineCounter counts), 0-based UTF-16 columns, a column at most the line\'s length, start ≤ end; fix ranges too.',
    'Not checked: a file with bare CR line endings is one line to yaml but several to VS Code, so its ranges are valid here and misplaced in the editor.',
    `Configs whose sweep multiplies out past ${ISOLATE_PRODUCT} points are loaded in a child process (256 MB heap, 3 s): a crash there is the whole product being built before MAX_POINTS is checked.`,
    'An accepted config is also checked for finite resolved numbers (a key given but resolved to undefined counts) and for a job file that reads back (JSON) exactly as built.',
  );
  report.configs.crashes = crashes.list();
  report.configs.unlocated = unlocated.list();
  report.configs.unresolved = unresolved.list();
  report.configs.nonFinite = nonFinite.list();
  report.configs.slow = slow.list();
}

/** Flow mappings opened after a complete document: every token is an error, and each becomes a diagnostic. */
function yamlErrorFlood(): { chars: number; diagnostics: number; ms: number; text: string } {
  const text = `{}\ndeep: ${'{a: '.repeat(2000)}1${'}'.repeat(2000)}\n`;
  const started = performance.now();
  const loaded = loadConfig(text);
  return { chars: text.length, diagnostics: loaded.diagnostics.length, ms: Math.round(performance.now() - started), text: "`{}\\ndeep: ${'{a: '.repeat(2000)}1${'}'.repeat(2000)}\\n`" };
}

function minimiseConfig(text: string, base: string, keeps: (o: ConfigOutcome) => boolean): string {
  if (text.length > 300_000) return firstLines(text, 12).join('\n');
  const lines = text.split('\n');
  const still = (subset: string[]) => {
    try {
      return keeps(checkConfigText(subset.join('\n'), base));
    } catch {
      return false;
    }
  };
  const kept = minimise(lines, still, 300);
  const shortened = kept.map((l) => (l.length > 200 ? `${l.slice(0, 200)}…(${l.length} chars)` : l));
  return shortened.join('\n');
}

// ========================================================================================== STREAMS

type Ev = Record<string, unknown>;

/** A stream shaped as the agent writes one (docs/protocol.md): every event type, in the agent's order. */
export function realisticStream(rng: Rng): Ev[] {
  const events: Ev[] = [];
  const gpuCount = rng.int(1, 4);
  const counter = rng.chance(0.6);
  const node = rng.chance(0.15) ? rng.pick(['node-0', 'node-1']) : undefined;
  let t = 1.76e9 + rng.next() * 1e6;
  const dt = rng.pick([0.05, 0.1, 0.1, 0.25]);
  const idle = rng.int(40, 90);
  const tdp = rng.pick([300, 400, 700]);
  const energy = Array.from({ length: gpuCount }, () => rng.next() * 1e7);
  let load = 0;
  let cap: number | undefined;
  const emit = (e: Ev) => events.push({ v: 1, seq: 0, t: Number(t.toFixed(6)), ...e, ...(node && { node }) });
  const sample = (point?: string) => {
    t += dt * (0.9 + 0.2 * rng.next());
    const gpus = [];
    const missing: number[] = [];
    for (let i = 0; i < gpuCount; i++) {
      if (rng.chance(0.01)) {
        missing.push(i);
        continue;
      }
      const demand = idle + load * (tdp - idle) * (0.9 + 0.2 * rng.next());
      const p = cap !== undefined ? Math.min(cap, demand) : demand;
      energy[i] += p * dt;
      gpus.push({ i, p_w: Number(p.toFixed(2)), ...(counter && { e_j: Number(energy[i].toFixed(3)) }), util: Math.round(load * 100), mem_util: 30, sm_mhz: 1980, temp_c: 40 + Math.round(load * 30), limit_w: cap ?? tdp, ...(rng.chance(0.3) && { p_avg_w: Number((p * 0.98).toFixed(2)) }) });
    }
    if (gpus.length) emit({ type: 'sample', gpus, ...(missing.length && { missing }), ...(point && { point }), dt_s: dt, ...(load > 0 && { inflight: rng.int(0, 64) }) });
  };
  emit({
    type: 'hello', run_id: `20260101-000000-fuzz-${rng.int(1000, 9999)}`, host: 'gpu-host', agent_version: '0.1.0', python: '3.11.4', pid: rng.int(100, 99999), pgid: rng.int(100, 99999), driver: '550.54.15',
    telemetry: { source: rng.pick(['nvml', 'nvidia-smi', 'sim']), interval_s: dt, power_reading: rng.pick(['instant', 'interval_average']), ...(rng.chance(0.3) && { power_average_window_s: 1, warnings: ['GPU 0 reports a 1 s average'] }) },
    simulated: rng.chance(0.5), capabilities: rng.chance(0.5) ? ['power_instant'] : [],
    gpus: Array.from({ length: gpuCount }, (_, i) => ({ index: i, name: 'NVIDIA H100 80GB HBM3', uuid: `GPU-${i}`, memory_mb: 81559, power_limit_w: tdp, default_limit_w: tdp, min_limit_w: 200, max_limit_w: tdp, energy_counter: counter, mig: rng.chance(0.1) ? true : null })),
  });
  emit({ type: 'phase', phase: 'baseline' });
  for (let k = rng.int(5, 25); k > 0; k--) sample();
  emit({ type: 'phase', phase: 'server_start' });
  emit({ type: 'log', level: 'info', msg: 'starting vllm serve', source: 'agent' });
  for (let k = rng.int(2, 10); k > 0; k--) sample();
  emit({ type: 'phase', phase: 'server_ready' });
  const points = Array.from({ length: rng.int(1, 3) }, (_, i) => `concurrency-${2 ** (i + rng.int(0, 4))}`);
  const repeats = rng.int(1, 2);
  let capped = false;
  for (const point of points)
    for (let repeat = 0; repeat < repeats; repeat++) {
      emit({ type: 'point', point, repeat, state: 'start' });
      if (rng.chance(0.4)) {
        const to = rng.int(200, tdp);
        emit({ type: 'phase', phase: 'cap', point, repeat });
        emit({ type: 'cap', action: 'set', gpus: Array.from({ length: gpuCount }, (_, i) => ({ i, from_w: cap ?? tdp, to_w: to })) });
        cap = to;
        capped = true;
      }
      let i = 0;
      const request = (warmup: boolean) => {
        const latency = 0.2 + rng.next() * 3;
        const out = rng.int(1, 1024);
        const ok = warmup || rng.chance(0.95);
        emit({
          type: 'request', point, repeat, i: i++, ok, warmup, t_start: Number((t - latency).toFixed(6)), t_end: Number(t.toFixed(6)), prompt_tokens: rng.int(1, 2048), output_tokens: ok ? out : 0,
          ttft_s: ok ? Number((latency * 0.1).toFixed(4)) : null, latency_s: Number(latency.toFixed(4)), itl_s: ok ? Array.from({ length: rng.int(0, 5) }, () => Number((rng.next() * 0.05).toFixed(4))) : [],
          ...(ok ? { tokens_from: rng.pick(['usage', 'chunks']) } : { error: rng.pick(['HTTP 503: overloaded', 'aborted (point time limit reached): timeout', 'connection reset']), ...(rng.chance(0.5) && { http_status: 503 }) }),
        });
      };
      emit({ type: 'phase', phase: 'warmup', point, repeat });
      load = 0.3;
      for (let k = rng.int(0, 3); k > 0; k--) {
        sample(point);
        request(true);
      }
      sample(point);
      emit({ type: 'phase', phase: 'measure', point, repeat });
      load = 0.5 + rng.next() * 0.5;
      let errors = 0;
      let requests = 0;
      for (let k = rng.int(5, 40); k > 0; k--) {
        sample(point);
        if (rng.chance(0.6)) {
          request(false);
          requests++;
          if (!events[events.length - 1].ok) errors++;
        }
        if (rng.chance(0.03)) emit({ type: 'log', level: rng.pick(['debug', 'info', 'warn']), msg: rng.pick(['GPU 1 stopped reading', 'retrying after 429', 'server: INFO: 200 OK']), source: rng.pick(['agent', 'server']) });
      }
      load = 0.05;
      sample(point);
      emit({ type: 'phase', phase: 'cooldown', point, repeat });
      for (let k = rng.int(1, 5); k > 0; k--) sample(point);
      if (rng.chance(0.1)) emit({ type: 'error', where: rng.pick(['cap', 'sampler', 'workload']), message: 'could not set the power limit: insufficient permissions', fatal: false, point, detail: 'nvmlDeviceSetPowerManagementLimit: NVML_ERROR_NO_PERMISSION' });
      emit({ type: 'point', point, repeat, state: 'end', status: rng.pick(['ok', 'ok', 'ok', 'error', 'timeout']), requests, errors, throttled: 0, ...(requests > errors && { tokens_from: 'usage' }) });
    }
  load = 0;
  if (capped) {
    emit({ type: 'phase', phase: 'restore' });
    emit({ type: 'cap', action: 'restore', gpus: Array.from({ length: gpuCount }, (_, i) => ({ i, from_w: cap ?? tdp, to_w: tdp })) });
    cap = undefined;
  }
  emit({ type: 'phase', phase: 'server_stop' });
  sample();
  emit({ type: 'done', status: rng.pick(['ok', 'ok', 'error', 'cancelled']), caps_restored: true, ...(rng.chance(0.2) && { reason: 'cancelled by the user' }) });
  events.forEach((e, seq) => (e.seq = seq));
  return events;
}

/** A value that JSON.stringify cannot write (1e400, NaN, Infinity), spliced into the line as raw text. */
const RAW = '\u0000RAW:';
const raw = (text: string) => `${RAW}${text}`;
const BAD_FIELD_VALUES: unknown[] = ['12', '', 'NaN', null, [], {}, [1, 2], { x: 1 }, -1, -1e9, 0, -0.5, 1.5, 1e308, -1e308, 2 ** 53 + 2, true, false, raw('1e400'), raw('-1e400'), 'x'.repeat(300)];

const STREAM_MUTATIONS = {
  'wrong-type': 8,
  'drop-field': 4,
  'null-entry': 3,
  'seq-chaos': 3,
  't-chaos': 4,
  'drop-events': 3,
  'duplicate-events': 3,
  'reorder-events': 3,
  'negative-values': 4,
  'counter-chaos': 3,
  'unknown-type': 1,
  version: 1,
  'extra-fields': 1,
  'point-chaos': 2,
  'cap-chaos': 2,
  'huge-numbers': 2,
  'hello-chaos': 2,
};
type StreamMutation = keyof typeof STREAM_MUTATIONS;

const BYTE_MUTATIONS = {
  truncate: 3,
  'flip-bytes': 3,
  garbage: 3,
  crlf: 2,
  'blank-lines': 1,
  'long-line': 1,
  'split-line': 2,
  'join-lines': 2,
  bom: 1,
  'bad-utf8': 2,
};
type ByteMutation = keyof typeof BYTE_MUTATIONS;

function mutateEvents(rng: Rng, events: Ev[], kind: StreamMutation): Ev[] {
  if (!events.length) return events;
  const pick = () => events[rng.int(0, events.length - 1)];
  const ofType = (...types: string[]) => {
    const matching = events.filter((e) => types.includes(e.type as string));
    return matching.length ? rng.pick(matching) : pick();
  };
  /** A field of the event, or of one of its list entries (gpus[i].p_w, itl_s, telemetry.interval_s). */
  const fieldRef = (e: Ev): [Record<string, unknown>, string] => {
    const nested: [Record<string, unknown>, string][] = [];
    for (const [k, v] of Object.entries(e)) {
      nested.push([e, k]);
      if (Array.isArray(v)) for (const item of v.slice(0, 4)) if (item && typeof item === 'object') for (const kk of Object.keys(item)) nested.push([item as Record<string, unknown>, kk]);
      if (v && typeof v === 'object' && !Array.isArray(v)) for (const kk of Object.keys(v)) nested.push([v as Record<string, unknown>, kk]);
    }
    return rng.pick(nested);
  };
  switch (kind) {
    case 'wrong-type': {
      const [obj, key] = fieldRef(ofType('sample', 'request', 'hello', 'cap', 'point', 'phase', 'done', 'error', 'log'));
      obj[key] = rng.pick(BAD_FIELD_VALUES);
      return events;
    }
    case 'drop-field': {
      const [obj, key] = fieldRef(pick());
      delete obj[key];
      return events;
    }
    case 'null-entry': {
      const e = ofType('sample', 'cap', 'hello');
      if (Array.isArray(e.gpus)) e.gpus.splice(rng.int(0, e.gpus.length), 0, rng.pick([null, 0, 'gpu', [], [1], true]));
      else e.gpus = rng.pick([null, 'gpus', 5, {}]);
      return events;
    }
    case 'seq-chaos': {
      const e = pick();
      e.seq = rng.pick([(e.seq as number) + rng.pick([1, 2, 1000, 1e6, 2 ** 31, 2 ** 53]), -1, 1.5, '7', null, raw('1e400'), (e.seq as number) - 1, 0]);
      return events;
    }
    case 't-chaos': {
      const e = pick();
      e.t = rng.pick([(e.t as number) - rng.pick([0.001, 1, 100, 1e9]), (e.t as number) + rng.pick([0.001, 1, 1e6, 1e12]), 0, -1, 1e300, -1e300, '1760000000', null, raw('1e400'), raw('NaN')]);
      return events;
    }
    case 'drop-events': {
      const start = rng.int(0, events.length - 1);
      events.splice(start, rng.int(1, Math.min(20, events.length - start)));
      return events;
    }
    case 'duplicate-events': {
      const start = rng.int(0, events.length - 1);
      const copy = events.slice(start, start + rng.int(1, 10)).map((e) => structuredCloneSafe(e) as Ev);
      events.splice(rng.chance(0.5) ? start : rng.int(0, events.length), 0, ...copy);
      return events;
    }
    case 'reorder-events': {
      const a = rng.int(0, events.length - 1);
      const b = rng.chance(0.6) ? Math.min(events.length - 1, a + 1) : rng.int(0, events.length - 1);
      [events[a], events[b]] = [events[b], events[a]];
      return events;
    }
    case 'negative-values': {
      const e = ofType('sample', 'request');
      if (e.type === 'sample' && Array.isArray(e.gpus) && e.gpus.length) {
        const g = rng.pick(e.gpus) as Record<string, unknown>;
        if (g && typeof g === 'object') g[rng.pick(['p_w', 'e_j', 'p_avg_w'])] = -rng.pick([1, 100, 1e6]);
      } else e[rng.pick(['latency_s', 'ttft_s', 'output_tokens', 'prompt_tokens', 't_start', 't_end'])] = -rng.pick([1, 100, 1e6]);
      return events;
    }
    case 'counter-chaos': {
      const samples = events.filter((e) => e.type === 'sample' && Array.isArray(e.gpus));
      if (!samples.length) return events;
      const from = rng.int(0, samples.length - 1);
      const how = rng.pick(['reset', 'jump', 'backwards']);
      for (const s of samples.slice(from, from + rng.int(1, 50)))
        for (const g of s.gpus as Record<string, unknown>[])
          if (g && typeof g === 'object' && typeof g.e_j === 'number') g.e_j = how === 'reset' ? g.e_j % 1000 : how === 'jump' ? g.e_j + 1e15 : g.e_j - 1e5;
      return events;
    }
    case 'unknown-type': {
      const e = pick();
      e.type = rng.pick(['bogus', '', null, 5, 'Sample', 'constructor', '__proto__', 'toString']);
      return events;
    }
    case 'version': {
      const e = pick();
      e.v = rng.pick([2, 0, '1', null, 1.0]);
      return events;
    }
    case 'extra-fields': {
      const e = pick();
      const key = rng.pick(['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'node', 'extra']);
      e[key] = rng.pick([{ type: 'done' }, 'x', null, 1]);
      return events;
    }
    case 'point-chaos': {
      const e = ofType('request', 'point', 'phase', 'sample');
      if (rng.chance(0.6)) e.point = rng.pick(['', 'x'.repeat(5000), 5, null, {}, ['a'], 'constructor', '__proto__', 'toString', '😀']);
      else e.repeat = rng.pick([-1, 1.5, '0', null, 1e9, raw('1e400')]);
      return events;
    }
    case 'cap-chaos': {
      const e = ofType('cap');
      if (e.type !== 'cap') return events;
      if (rng.chance(0.3)) e.gpus = rng.pick([[], null, 'all', [{}]]);
      else if (Array.isArray(e.gpus) && e.gpus.length) {
        const g = rng.pick(e.gpus) as Record<string, unknown>;
        if (g && typeof g === 'object') g.to_w = rng.pick([-5, 0, 1e9, '300', null, raw('1e400'), undefined]);
      }
      if (rng.chance(0.2)) e.action = rng.pick(['unset', null, 5]);
      return events;
    }
    case 'huge-numbers': {
      const e = ofType('request', 'sample');
      if (e.type === 'request') e[rng.pick(['output_tokens', 'prompt_tokens', 'latency_s', 'ttft_s'])] = rng.pick([1e308, 2 ** 53, 1e20, raw('1e400')]);
      else if (Array.isArray(e.gpus) && e.gpus.length) {
        const g = rng.pick(e.gpus) as Record<string, unknown>;
        if (g && typeof g === 'object') g[rng.pick(['p_w', 'e_j'])] = rng.pick([1e308, 1e20, raw('1e400')]);
      }
      return events;
    }
    case 'hello-chaos': {
      const e = ofType('hello');
      if (e.type !== 'hello') return events;
      const what = rng.pick(['telemetry', 'gpus', 'run_id', 'simulated', 'host']);
      e[what] = rng.pick([undefined, null, 'x', 5, [], {}, [null]]);
      return events;
    }
  }
}

function serialiseEvents(events: Ev[]): Buffer {
  const text = events
    .map((e) => JSON.stringify(e))
    .join('\n')
    .replace(/"\\u0000RAW:([^"]*)"/g, '$1');
  return Buffer.from(`${text}\n`, 'utf8');
}

function mutateBytes(rng: Rng, data: Buffer, kind: ByteMutation): Buffer {
  if (!data.length) return data;
  const at = () => rng.int(0, data.length - 1);
  switch (kind) {
    case 'truncate':
      return data.subarray(0, at());
    case 'flip-bytes': {
      const out = Buffer.from(data);
      for (let k = rng.int(1, 20); k > 0; k--) out[at()] ^= 1 << rng.int(0, 7);
      return out;
    }
    case 'garbage': {
      const p = at();
      const junk = rng.pick([
        () => Buffer.from(Array.from({ length: rng.int(1, 200) }, () => rng.int(0, 255))),
        () => Buffer.from(rng.pick(['{"seq":', '{"v":1,"seq":1e999,"t":1,"type":"done","status":"ok"}', ']]]', '\u0000\u0000\u0000', 'null', '[]', '{}', '"string"', '123', '{"seq":0,"t":0,"type":"hello"}', '{"seq":99999999,"t":1,"type":"log","msg":"x"}\n'])),
        () => Buffer.alloc(rng.int(1, 5000), 0),
      ])();
      return Buffer.concat([data.subarray(0, p), junk, data.subarray(p)]);
    }
    case 'crlf': {
      const all = rng.chance(0.5);
      const out: number[] = [];
      for (const b of data) {
        if (b === 10 && (all || rng.chance(0.3))) out.push(13);
        out.push(b);
      }
      return Buffer.from(out);
    }
    case 'blank-lines': {
      const p = data.indexOf(10, at());
      if (p < 0) return data;
      return Buffer.concat([data.subarray(0, p + 1), Buffer.from(rng.pick(['\n', '\n\n\n', '\r\n', '   \n', '\t\n', '\r\r\n'])), data.subarray(p + 1)]);
    }
    case 'long-line': {
      const p = data.indexOf(10, at());
      const size = rng.int(100_000, 1_500_000);
      const line = rng.chance(0.5)
        ? Buffer.from(`${JSON.stringify({ v: 1, seq: 0, t: 1, type: 'log', level: 'warn', msg: 'm'.repeat(size) })}\n`)
        : Buffer.concat([Buffer.alloc(size, 0x41), Buffer.from('\n')]);
      return p < 0 ? Buffer.concat([data, line]) : Buffer.concat([data.subarray(0, p + 1), line, data.subarray(p + 1)]);
    }
    case 'split-line': {
      const p = at();
      return Buffer.concat([data.subarray(0, p), Buffer.from('\n'), data.subarray(p)]);
    }
    case 'join-lines': {
      const p = data.indexOf(10, at());
      return p < 0 ? data : Buffer.concat([data.subarray(0, p), data.subarray(p + 1)]);
    }
    case 'bom':
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), data]);
    case 'bad-utf8': {
      const p = at();
      return Buffer.concat([data.subarray(0, p), Buffer.from(rng.pick([[0xff], [0xfe, 0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf]])), data.subarray(p)]);
    }
  }
}

interface GeneratedStream {
  bytes: Buffer;
  chunks: number[];
  mutations: string[];
  options: { pointsPerNode: boolean; cost?: { usdPerKwh: number; gco2PerKwh: number; pue: number; usdPerGpuHour: number } };
}

export function generateStream(seed: number, index: number): GeneratedStream {
  const rng = new Rng(caseSeed(seed, 'stream', index));
  let events = realisticStream(rng);
  const mutations: string[] = [];
  const count = rng.weighted({ 0: 1, 1: 4, 2: 3, 4: 2, 8: 1 });
  for (let i = 0; i < Number(count); i++) {
    const kind = rng.weighted(STREAM_MUTATIONS);
    mutations.push(kind);
    events = mutateEvents(rng, events, kind);
  }
  let bytes = serialiseEvents(events);
  const byteCount = rng.weighted({ 0: 4, 1: 3, 2: 2, 3: 1 });
  for (let i = 0; i < Number(byteCount); i++) {
    const kind = rng.weighted(BYTE_MUTATIONS);
    mutations.push(`bytes:${kind}`);
    bytes = mutateBytes(rng, bytes, kind);
  }
  // Tiny chunks of a megabyte are not what a transport delivers (see partialLineCost for that cost alone).
  const mode = rng.weighted({ whole: 2, tiny: bytes.length < 60_000 ? 1 : 0, small: bytes.length < 300_000 ? 2 : 0, medium: 3, ssh: 3 });
  mutations.push(`chunks:${mode}`);
  const chunks: number[] = [];
  for (let left = bytes.length; left > 0; ) {
    const size = mode === 'whole' ? left : mode === 'tiny' ? rng.int(1, 3) : mode === 'small' ? rng.int(1, 64) : mode === 'medium' ? rng.int(1, 4096) : rng.int(16_000, 32_768);
    chunks.push(Math.min(size, left));
    left -= size;
  }
  const cost = rng.chance(0.3) ? { usdPerKwh: rng.pick([0, 0.12, 0.3]), gco2PerKwh: rng.pick([0, 400]), pue: rng.pick([1, 1.2, 1.6]), usdPerGpuHour: 2.5 } : undefined;
  return { bytes, chunks, mutations, options: { pointsPerNode: rng.chance(0.2), ...(cost && { cost }) } };
}

// ------------------------------------------------------------------------------------------ stream invariants

interface BadNumber {
  path: string;
  value: string;
  why: string;
}

const nonNegative = (v: unknown) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

/** Every number RunSummary promises, against what docs/protocol.md and summary.ts say it may be. */
export function summaryNumberProblems(s: RunSummary): BadNumber[] {
  const out: BadNumber[] = [];
  const bad = (path: string, v: unknown, why: string) => out.push({ path, value: describeValue(v), why });
  const nn = (path: string, v: unknown) => {
    if (typeof v !== 'number') bad(path, v, 'not a number');
    else if (!Number.isFinite(v)) bad(path, v, 'not finite');
    else if (v < 0) bad(path, v, 'negative');
  };
  const fin = (path: string, v: unknown) => {
    if (typeof v !== 'number') bad(path, v, 'not a number');
    else if (!Number.isFinite(v)) bad(path, v, 'not finite');
  };
  const int = (path: string, v: unknown) => {
    nn(path, v);
    if (nonNegative(v) && !Number.isInteger(v)) bad(path, v, 'not a whole number');
  };
  /** J/token, J/response: NaN where there is nothing to divide by (documented), else finite ≥ 0. */
  const ratio = (path: string, v: unknown) => {
    if (typeof v !== 'number') bad(path, v, 'not a number');
    else if (!Number.isNaN(v) && !nonNegative(v)) bad(path, v, Number.isFinite(v) ? 'negative' : 'infinite');
  };
  const energy = (path: string, e: EnergySummary) => {
    if (!e || typeof e !== 'object') return bad(path, e, 'no energy summary');
    if (!['counter', 'integral', 'mixed', 'none'].includes(e.method)) bad(`${path}.method`, e.method, 'unknown method');
    for (const k of ['total_j', 'idle_j', 'dynamic_j', 'avg_power_w', 'peak_power_w'] as const) nn(`${path}.${k}`, e[k]);
    for (const g of e.per_gpu ?? []) for (const k of ['energy_j', 'avg_power_w', 'peak_power_w'] as const) nn(`${path}.per_gpu[].${k}`, g[k]);
  };
  const percentiles = (path: string, p: Percentiles | undefined) => {
    if (p === undefined) return;
    int(`${path}.n`, p.n);
    for (const k of ['mean', 'min', 'max', 'p50', 'p90', 'p99'] as const) nn(`${path}.${k}`, p[k]);
  };
  const cost = (path: string, c: { usd: number; gco2: number }) => {
    nn(`${path}.usd`, c?.usd);
    nn(`${path}.gco2`, c?.gco2);
  };
  if (typeof s.telemetry.interval_s !== 'number' || (!Number.isNaN(s.telemetry.interval_s) && !nonNegative(s.telemetry.interval_s))) bad('telemetry.interval_s', s.telemetry.interval_s, 'not a number ≥ 0 (NaN when no hello)');
  if (s.telemetry.achieved_interval_s !== null) nn('telemetry.achieved_interval_s', s.telemetry.achieved_interval_s);
  int('telemetry.samples', s.telemetry.samples);
  if (s.idle_baseline !== null) {
    nn('idle_baseline.duration_s', s.idle_baseline.duration_s);
    fin('idle_baseline.total_w', s.idle_baseline.total_w);
    for (const v of Object.values(s.idle_baseline.per_gpu_w)) fin('idle_baseline.per_gpu_w[]', v);
  }
  for (const p of s.points) {
    const at = 'points[]';
    fin(`${at}.window.start`, p.window.start);
    fin(`${at}.window.end`, p.window.end);
    nn(`${at}.window.duration_s`, p.window.duration_s);
    if (p.steady !== null) {
      fin(`${at}.steady.start`, p.steady.start);
      fin(`${at}.steady.end`, p.steady.end);
      nn(`${at}.steady.duration_s`, p.steady.duration_s);
      nn(`${at}.steady.output_tokens_per_s`, p.steady.output_tokens_per_s);
      nn(`${at}.steady.avg_power_w`, p.steady.avg_power_w);
      ratio(`${at}.steady.j_per_output_token`, p.steady.j_per_output_token);
    }
    for (const k of ['ok', 'errors', 'warmup'] as const) int(`${at}.requests.${k}`, p.requests[k]);
    nn(`${at}.tokens.input`, p.tokens.input);
    nn(`${at}.tokens.output`, p.tokens.output);
    for (const k of ['output_tokens_per_s', 'total_tokens_per_s', 'requests_per_s'] as const) nn(`${at}.throughput.${k}`, p.throughput[k]);
    percentiles(`${at}.latency.ttft_s`, p.latency.ttft_s);
    percentiles(`${at}.latency.itl_s`, p.latency.itl_s);
    percentiles(`${at}.latency.e2e_s`, p.latency.e2e_s);
    energy(`${at}.energy`, p.energy);
    ratio(`${at}.j_per_output_token`, p.j_per_output_token);
    ratio(`${at}.j_per_response`, p.j_per_response);
    cost(`${at}.cost`, p.cost);
    if (p.idealized !== null) {
      fin(`${at}.idealized.alpha_s`, p.idealized.alpha_s);
      fin(`${at}.idealized.beta_s`, p.idealized.beta_s);
      int(`${at}.idealized.n`, p.idealized.n);
    }
    if (p.power_cap_w !== undefined && !(finite(p.power_cap_w) && p.power_cap_w > 0)) bad(`${at}.power_cap_w`, p.power_cap_w, 'not a power > 0');
    for (const r of p.repeats ?? []) {
      nn(`${at}.repeats[].duration_s`, r.duration_s);
      nn(`${at}.repeats[].energy_j`, r.energy_j);
      int(`${at}.repeats[].requests`, r.requests);
      nn(`${at}.repeats[].output_tokens`, r.output_tokens);
      nn(`${at}.repeats[].output_tokens_per_s`, r.output_tokens_per_s);
      ratio(`${at}.repeats[].j_per_output_token`, r.j_per_output_token);
    }
    if (p.spread)
      for (const [k, v] of Object.entries(p.spread))
        if (v !== null) for (const f of ['min', 'max', 'relative'] as const) fin(`${at}.spread.${k}.${f}`, v[f]);
  }
  nn('total.duration_s', s.total.duration_s);
  int('total.requests', s.total.requests);
  nn('total.output_tokens', s.total.output_tokens);
  energy('total.energy', s.total.energy);
  ratio('total.j_per_output_token', s.total.j_per_output_token);
  ratio('total.j_per_response', s.total.j_per_response);
  cost('total.cost', s.total.cost);
  for (const p of s.problems) if (typeof p !== 'string' || !p) bad('problems[]', p, 'not a message');
  return out;
}

interface StreamOutcome {
  crash?: { stage: string; error: ReturnType<typeof errorSignature>; line?: string };
  unlocated: { kind: string; problem: string; message: string }[];
  badNumbers: BadNumber[];
  events: number;
  problems: number;
  ms: number;
}

function runStream(bytes: Buffer, chunks: number[], options: GeneratedStream['options']): StreamOutcome {
  const started = performance.now();
  const outcome: StreamOutcome = { unlocated: [], badNumbers: [], events: 0, problems: 0, ms: 0 };
  const summarizer = new Summarizer(options);
  const problems: StreamProblem[] = [];
  let lastLine: string | undefined;
  const stream = new EventStream({
    onEvent: (event, line) => {
      lastLine = line;
      outcome.events++;
      summarizer.add(event);
    },
    onProblem: (p) => {
      problems.push(p);
      // As AgentFollower does: duplicates are expected on resume and only logged; the rest reach the summary.
      if (p.kind !== 'duplicate') summarizer.problems.push(`fuzz-host: ${p.message}`);
    },
  });
  let pos = 0;
  try {
    for (const size of chunks) {
      lastLine = undefined;
      stream.push(bytes.subarray(pos, pos + size));
      pos += size;
    }
  } catch (error) {
    outcome.crash = { stage: 'push/add', error: errorSignature(error), line: lastLine };
  }
  if (!outcome.crash) {
    try {
      const summary = summarizer.result();
      outcome.badNumbers = summaryNumberProblems(summary);
    } catch (error) {
      outcome.crash = { stage: 'result', error: errorSignature(error) };
    }
  }
  outcome.problems = problems.length;
  const consumed = chunks.reduce((a, b) => a + b, 0);
  for (const p of problems) {
    const fail = (problem: string) => outcome.unlocated.push({ kind: p.kind, problem, message: p.message });
    if (!['garbled', 'gap', 'duplicate'].includes(p.kind)) fail(`unknown kind ${describeValue(p.kind)}`);
    if (typeof p.message !== 'string' || !p.message) fail('no message');
    if (!Number.isInteger(p.offset) || p.offset < 0 || p.offset >= consumed) fail(`offset ${describeValue(p.offset)} outside the ${consumed} bytes`);
    else if (p.offset > 0 && bytes[p.offset - 1] !== 10) fail('offset is not the start of a line');
    // What reaches the user (the summary's problems, the log) must say where: garbled and gap do.
    if (p.kind !== 'duplicate' && typeof p.message === 'string' && !p.message.includes(`byte ${p.offset}`)) fail("message does not name the line's byte offset");
  }
  // The resume point: just past the last complete line.
  if (!outcome.crash) {
    const expected = bytes.subarray(0, consumed).lastIndexOf(10) + 1;
    if (stream.offset !== expected) outcome.unlocated.push({ kind: 'offset', problem: `stream.offset ${stream.offset}, expected ${expected} (just past the last newline)`, message: '' });
  }
  outcome.ms = performance.now() - started;
  return outcome;
}

/** One long line pushed in 64-byte chunks, at two lengths: linear would take 16× as long for 16× the bytes, quadratic 256×. */
function partialLineCost(): { small_bytes: number; small_ms: number; large_bytes: number; large_ms: number; ratio: number; chunk: number } {
  const time = (bytes: number) => {
    const line = Buffer.concat([Buffer.from(`${JSON.stringify({ v: 1, seq: 0, t: 1, type: 'log', level: 'info', msg: 'm'.repeat(bytes) })}`), Buffer.from('\n')]);
    const stream = new EventStream({ onEvent: () => undefined });
    const started = performance.now();
    for (let p = 0; p < line.length; p += 64) stream.push(line.subarray(p, p + 64));
    return performance.now() - started;
  };
  time(16_384); // warm up
  time(32_768);
  const small = Math.min(time(32_768), time(32_768), time(32_768));
  const large = time(524_288);
  return { small_bytes: 32_768, small_ms: Math.round(small * 10) / 10, large_bytes: 524_288, large_ms: Math.round(large), ratio: Math.round(large / Math.max(small, 0.01)), chunk: 64 };
}

function splitLines(bytes: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let nl = bytes.indexOf(10); nl !== -1; nl = bytes.indexOf(10, start)) {
    lines.push(bytes.subarray(start, nl));
    start = nl + 1;
  }
  if (start < bytes.length) lines.push(bytes.subarray(start));
  return lines;
}

function minimiseStream(bytes: Buffer, options: GeneratedStream['options'], keeps: (o: StreamOutcome) => boolean): string | undefined {
  const lines = splitLines(bytes);
  const run = (subset: Buffer[]) => {
    const joined = Buffer.concat(subset.flatMap((l) => [l, Buffer.from('\n')]));
    return runStream(joined, [joined.length], options);
  };
  if (!keeps(run(lines))) return undefined; // depends on the chunking: the first lines tell more than a cut-down
  const kept = minimise(lines, (subset) => keeps(run(subset)), 600);
  const text = kept.map((l) => {
    const s = l.toString('utf8');
    return s.length > 400 ? `${s.slice(0, 400)}…(${s.length} chars)` : s;
  });
  const opts = options.pointsPerNode || options.cost ? ` [Summarizer options ${JSON.stringify(options)}]` : '';
  return `${text.join('\n')}${opts}`;
}

async function fuzzStreams(options: FuzzOptions, report: FuzzReport): Promise<void> {
  const crashes = new Groups();
  const unlocated = new Groups();
  const badNumbers = new Groups();
  const slow = new Groups();
  for (let i = 0; i < options.streams; i++) {
    const g = generateStream(options.seed, i);
    for (const m of g.mutations) report.streams.mutations[m] = (report.streams.mutations[m] ?? 0) + 1;
    const outcome = runStream(g.bytes, g.chunks, g.options);
    report.streams.total++;
    report.streams.events += outcome.events;
    report.streams.problems += outcome.problems;
    const context = () => ({ index: i, caseSeed: caseSeed(options.seed, 'stream', i), mutations: g.mutations, bytes: g.bytes.length, chunks: g.chunks.length, options: g.options });
    if (outcome.crash) {
      const c = outcome.crash;
      const sig = `${c.stage}: ${c.error.name}: ${generalise(c.error.message)}${c.error.at ? ` at ${c.error.at}` : ''}`;
      const group = crashes.add(sig, i, () => ({ ...context(), error: `${c.error.name}: ${c.error.message}`, at: c.error.at, line: c.line && c.line.slice(0, 400) }));
      if (group) group.reproducer = minimiseStream(g.bytes, g.options, (o) => !!o.crash && o.crash.error.name === c.error.name && generalise(o.crash.error.message) === generalise(c.error.message)) ?? `(depends on chunking) line: ${c.line?.slice(0, 400)}`;
    }
    for (const u of outcome.unlocated) {
      const sig = `${u.kind}: ${u.problem.replace(/\d+/g, 'N')}`;
      const group = unlocated.add(sig, i, () => ({ ...context(), problem: u.problem, message: u.message.slice(0, 300) }));
      if (group) group.reproducer = minimiseStream(g.bytes, g.options, (o) => o.unlocated.some((x) => `${x.kind}: ${x.problem.replace(/\d+/g, 'N')}` === sig));
    }
    const seenHere = new Set<string>();
    for (const b of outcome.badNumbers) {
      const sig = `${b.path}: ${b.why}${b.why === 'not a number' ? ` (${b.value === 'undefined' || b.value === 'null' ? b.value : typeof b.value === 'string' && b.value.startsWith('"') ? 'a string' : 'other'})` : ''}`;
      if (seenHere.has(sig)) continue;
      seenHere.add(sig);
      const group = badNumbers.add(sig, i, () => ({ ...context(), path: b.path, value: b.value, why: b.why }));
      if (group) group.reproducer = minimiseStream(g.bytes, g.options, (o) => o.badNumbers.some((x) => x.path === b.path && x.why === b.why));
    }
    if (outcome.ms > 2000) slow.add('stream took over 2 s', i, () => ({ ...context(), ms: Math.round(outcome.ms) }));
    if (options.log && (i + 1) % 250 === 0) options.log(`streams: ${i + 1}/${options.streams}`);
  }
  const cost = partialLineCost();
  report.streams.probes.partialLine = cost;
  if (cost.ratio > 48)
    slow.add('EventStream.push: time grows with the square of a partial line (every chunk copies and rescans all of it)', -1, () => ({ ...cost }));
  report.streams.crashes = crashes.list();
  report.streams.unlocated = unlocated.list();
  report.streams.badNumbers = badNumbers.list();
  report.streams.slow = slow.list();
}

// ========================================================================================== SHELL

/** `@MARK@` in a payload is replaced by the absolute path of the case's marker file. */
export function hostileStrings(seed: number): string[] {
  const fixed = [
    '', ' ', 'plain', "it's", "''", "'", '"', '\\', "\\'", "a'b'c", '$(touch @MARK@)', '`touch @MARK@`', '${IFS}touch${IFS}M', '$HOME', '$((1+1))', '; touch @MARK@', '&& touch @MARK@', '|| touch @MARK@', '| touch @MARK@', '& touch @MARK@',
    '\ntouch @MARK@', '\rtouch @MARK@', 'a\nb', '\ttab', '*', '?', '[a-z]*', '/*', '~', '~root', '{a,b}', '-n', '-e', '--', '-', '--help', '-rf', '!', '!!', '#comment', 'a#b', '>@MARK@', '<@MARK@', '2>@MARK@', '$(', '")',
    "'; touch @MARK@; '", '\'"$(touch @MARK@)"\'', '\\$(touch @MARK@)', 'x\\', '$\'\\x41\'', 'éè', '😀', '\u202e', '\u200b', '\u007f', '\u001b[31m', '\u0085', '\u2028', '\u00a0', 'ＡＢＣ＄（ｔｏｕｃｈ　@MARK@）', '\uD800',
    '%s%n%x', '\\x41\\0', 'a b', '  leading', 'trailing  ', '=', 'a=b', 'A=$(touch @MARK@)', '@', '%', '+', ',', ':', '/', './..', 'EOF', '<<EOF', "$'\\n'", '\\\ntouch @MARK@', 'a;b|c&d',
    '$(touch @MARK@)'.repeat(50), "'".repeat(3000), 'é'.repeat(1000), 'a'.repeat(100_000),
    // NUL: shq neither refuses nor strips it; checked as the code does (below).
    '\u0000', 'a\u0000b', '\u0000; touch @MARK@',
  ];
  const rng = new Rng(caseSeed(seed, 'shell', 0));
  const alphabet = ["'", '"', '\\', '$', '`', '(', ')', '{', '}', ';', '&', '|', '<', '>', '*', '?', '[', ']', '~', '#', '!', ' ', '\t', '\n', '-', '=', '%', 'a', 'Z', '0', 'é', '😀', '@MARK@'];
  const random = Array.from({ length: 40 }, () => Array.from({ length: rng.int(1, 24) }, () => rng.pick(alphabet)).join(''));
  return [...fixed, ...random];
}

/** As Slurm's sbatch reads one `#SBATCH` line (src/sbatch/opt.c, _get_argument): quotes, escapes, `#`. */
export function sbatchArguments(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  const end = line.indexOf('\u0000') === -1 ? line.length : line.indexOf('\u0000'); // a C string
  const space = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
  while (i < end) {
    while (i < end && space(line[i])) i++;
    if (i >= end) break;
    let arg = '';
    let quote = '';
    let escape = false;
    let comment = false;
    for (; i < end && (quote || !space(line[i])) && line[i] !== '\n'; i++) {
      const c = line[i];
      if (escape) escape = false;
      else if (c === '\\') {
        escape = true;
        continue;
      } else if (quote) {
        if (c === quote) {
          quote = '';
          continue;
        }
      } else if (c === '"' || c === "'") {
        quote = c;
        continue;
      } else if (c === '#') {
        comment = true;
        break;
      }
      arg += c;
    }
    if (arg || !comment) args.push(arg);
    if (comment) break;
  }
  return args;
}

class RecordingTransport implements Transport {
  readonly label = 'fuzz-recorder';
  readonly commands: string[] = [];
  exec(command: string, _options?: ExecOptions): Promise<ExecResult> {
    this.commands.push(command);
    return Promise.resolve({ code: 0, stdout: '{"pid": 4242}\n', stderr: '' });
  }
  stream(command: string): StreamingExec {
    this.commands.push(command);
    return { done: Promise.resolve({ code: 0, stdout: '', stderr: '' }), stop: () => undefined };
  }
  close(): void {}
}

interface Sandbox {
  dir: string;
  bin: string;
  env: NodeJS.ProcessEnv;
}

function makeSandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'wattbench-fuzz-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  mkdirSync(join(dir, 'home'));
  mkdirSync(join(dir, 'markers'));
  // Stand-ins: each records its working directory and arguments (NUL-separated) and does nothing else.
  const record = (name: string, extra: string) =>
    writeFileSync(join(bin, name), `#!/bin/sh\n{ printf '%s\\0' "$PWD" "$@"; } > "$FUZZ_LOG/${name}.$$"\n${extra}\n`, { mode: 0o755 });
  record('python3', `if [ "$2" = stop-server ]; then echo '{"status": "nothing", "message": "no server"}'; else echo '{"pid": 4242, "run_dir": "x"}'; fi`);
  record('sbatch', 'echo 12345');
  record('srun', `printf '%s\\0' "\${WATTBENCH_RUN-<unset>}" "\${WATTBENCH_AGENT-<unset>}" > "$FUZZ_LOG/srun-env.$$"`);
  const env = { PATH: `${bin}:/usr/bin:/bin`, HOME: join(dir, 'home'), LANG: 'C.UTF-8', SLURM_JOB_NUM_NODES: '1', FUZZ_LOG: join(dir, 'log') };
  return { dir, bin, env };
}

/** What the stand-ins recorded: each call as [cwd, ...args]. */
function recorded(logDir: string, name: string): string[][] {
  if (!existsSync(logDir)) return [];
  return readdirSync(logDir)
    .filter((f) => f.startsWith(`${name}.`))
    .sort()
    .map((f) => readFileSync(join(logDir, f), 'utf8').split('\u0000').slice(0, -1));
}

interface FieldCase {
  field: string;
  /** Puts the value into a config (a plain object, written as JSON so any string survives). */
  set(config: Record<string, unknown>, value: string, sandbox: string): void;
  /** The value as the config then holds it (workdir is placed inside the sandbox). */
  stored?(value: string, sandbox: string): string;
  /** sbatch directives this field writes (checked as sbatch reads them). */
  directive?: string;
}

function baseConfig(): Record<string, unknown> {
  return {
    name: 'fuzz-shell',
    target: { slurm: { login: 'slurm-login', partition: 'debug', account: 'acct', nodes: 1, gpus_per_node: 1, setup: ['echo setup-ran'], time_limit: '20m' } },
    server: { command: 'vllm serve m --port 8000', served_model: 'meta-llama/Llama-3.1-8B-Instruct', env: { HF_HOME: '/data/hf' } },
    model: { id: 'meta-llama/Llama-3.1-8B-Instruct' },
    gpus: { type: 'H100-SXM-80GB', count: 1 },
    workload: { dataset: 'synthetic', num_prompts: 4 },
    telemetry: { source: 'auto' },
  };
}

const slurmOf = (c: Record<string, unknown>) => (c.target as { slurm: Record<string, unknown> }).slurm;
const serverOf = (c: Record<string, unknown>) => c.server as Record<string, unknown>;

const FIELDS: FieldCase[] = [
  { field: 'name', set: (c, v) => (c.name = v) },
  { field: 'server.served_model', set: (c, v) => (serverOf(c).served_model = v) },
  {
    field: 'model.id',
    set: (c, v) => {
      (c.model as Record<string, unknown>).id = v;
      delete serverOf(c).served_model;
    },
  },
  { field: 'server.env value', set: (c, v) => (serverOf(c).env = { HF_HOME: v }) },
  { field: 'server.env key', set: (c, v) => (serverOf(c).env = { [v]: 'x' }) },
  { field: 'workload.dataset', set: (c, v) => ((c.workload as Record<string, unknown>).dataset = v) },
  { field: 'target.slurm.partition', set: (c, v) => (slurmOf(c).partition = v), directive: '--partition=' },
  { field: 'target.slurm.account', set: (c, v) => (slurmOf(c).account = v), directive: '--account=' },
  { field: 'target.slurm.workdir', set: (c, v, sb) => (slurmOf(c).workdir = `${sb}/wd/${v}`), stored: (v, sb) => `${sb}/wd/${v}`, directive: '--output=' },
  { field: 'target.slurm.sbatch_options', set: (c, v) => (slurmOf(c).sbatch_options = [`--comment=${v}`]) },
];

/** Dataset paths whose extension (kept by buildJob) carries what the basename's sanitising removes. */
const DATASET_NAMES = ['prompts.j$(touch${IFS}@MARK@)', 'p.json;touch @MARK@', 'p.json l', 'p.jso`touch @MARK@`', 'p.ｊｓｏｎ', 'p.json\n', 'dir with space/p q.jsonl', '../../p.jsonl', '-rf.jsonl', '.hidden'];

/** Setup lines are shell by design; what must hold is that Wattbench's own lines after them still run as written. */
const SETUP_LINES = [
  'module load cuda/12.1', 'source "$HOME/venv/bin/activate"', 'export HF_HOME=/data/hf', `echo "a; b" 'c|d' $(echo hi)`, 'cd /tmp && ls >/dev/null', 'echo é 😀', ' ', '', '# just a comment', 'true # trailing comment',
  'echo @MARK@ > /dev/null', 'export PATH="$HOME/bin:$PATH"',
  // Not complete on their own: each swallows or breaks the lines after it unless refused or isolated.
  'module load cuda \\', 'cat <<EOF', 'echo "unterminated', "echo 'unterminated", 'if true; then', '{', 'echo $(', 'echo `unterminated', 'case x in', 'f() {', 'echo ok &&', 'echo ok |',
];

async function fuzzShell(options: FuzzOptions, report: FuzzReport): Promise<void> {
  const shell = report.shell;
  const sandbox = makeSandbox();
  let caseNo = 0;
  const tally = (field: string, outcome: 'safe' | 'refused' | 'unsafe') => {
    shell.total++;
    if (outcome !== 'unsafe') shell[outcome]++;
    const f = (shell.byField[field] ??= { safe: 0, refused: 0, unsafe: 0 });
    f[outcome]++;
  };
  const unsafe = (f: ShellFinding) => shell.unsafe.length < 300 && shell.unsafe.push({ ...f, value: shownValue(f.value) });
  const refusal = (r: ShellRefusal) => shell.refusals.length < 300 && shell.refusals.push({ ...r, value: shownValue(r.value), message: r.message.slice(0, 300) });
  try {
    const strings = hostileStrings(options.seed);
    // 1. shq through real shells, byte for byte.
    const shells = ['/bin/sh', ...(existsSync('/usr/bin/bash') ? ['/usr/bin/bash'] : existsSync('/bin/bash') ? ['/bin/bash'] : [])];
    for (const template of strings) {
      for (const sh of shells) {
        const marker = join(sandbox.dir, 'markers', `m${caseNo++}`);
        const value = template.replace(/@MARK@/g, marker);
        const field = `shq (${sh})`;
        const cwd = mkdtempSync(join(sandbox.dir, 'cwd-'));
        const quoted = shq(value);
        let result: ReturnType<typeof spawnSync>;
        try {
          result = spawnSync(sh, ['-c', `printf '%s\\000' ${quoted}`], { cwd, env: sandbox.env, timeout: 10000 });
        } catch (error) {
          // Node refuses an argument with a NUL byte before any shell sees it.
          if (value.includes('\u0000')) {
            refusal({ field, by: 'node child_process (shq passes NUL through)', value, message: (error as Error).message });
            tally(field, 'refused');
          } else {
            unsafe({ field, layer: 'shq', value, why: `could not run: ${(error as Error).message}` });
            tally(field, 'unsafe');
          }
          continue;
        }
        if (result.error && value.includes('\u0000')) {
          refusal({ field, by: 'node child_process (shq passes NUL through)', value, message: result.error.message });
          tally(field, 'refused');
          continue;
        }
        const expected = Buffer.concat([Buffer.from(value, 'utf8'), Buffer.from([0])]);
        const stdout = result.stdout as Buffer;
        const leftovers = readdirSync(cwd);
        const problems: string[] = [];
        if (!stdout.equals(expected)) problems.push(`printed ${describeValue(stdout.toString('utf8'))} (${stdout.length} bytes), not the ${expected.length - 1} bytes given`);
        if (existsSync(marker)) problems.push('the payload ran (its marker file appeared)');
        if (leftovers.length) problems.push(`files appeared in the working directory: ${leftovers.join(', ')}`);
        if (result.status !== 0) problems.push(`exit ${result.status}: ${String(result.stderr).slice(0, 200)}`);
        if (problems.length) {
          unsafe({ field, layer: 'shq', value, why: problems.join('; '), reproducer: `${sh} -c ${shq(`printf '%s\\000' ${quoted}`).slice(0, 300)}` });
          tally(field, 'unsafe');
        } else tally(field, 'safe');
        rmSync(cwd, { recursive: true, force: true });
      }
    }

    // 2. Every remote-bound string a config can set, built into the job and the sbatch script.
    // The field cases take the fixed corpus and the first few random strings (each case runs real processes).
    const fieldStrings = strings.filter((s, i) => s.length <= 5000 && i < strings.length - 30);
    const datasetFile = join(sandbox.dir, 'dataset.jsonl');
    writeFileSync(datasetFile, '{"prompt": "hello"}\n');
    const resolveLocal = () => datasetFile;
    const baseline = await shellBaseline(sandbox, resolveLocal);
    /** Scripts already run: a value that does not reach the script gives the baseline's script, checked once. */
    const scriptChecks = new Map<string, [ShellFinding['layer'], string][]>();
    const notRun: string[] = [];
    const remoteChecks = new Map<string, [ShellFinding['layer'], string][]>();
    /** Cases run a few at a time: most of their time is bash starting and tail's 0.2 s poll. */
    const inBatches = async (f: FieldCase, templates: string[], setup = false) => {
      const t0 = performance.now();
      for (let i = 0; i < templates.length; i += 8)
        await Promise.all(
          templates.slice(i, i + 8).map((template) => {
            const n = caseNo++;
            const marker = join(sandbox.dir, 'markers', `m${n}`);
            return checkField(f, template.replace(/@MARK@/g, marker), marker, n, setup);
          }),
        );
      if (process.env.FUZZ_PROFILE) console.error(f.field, Math.round(performance.now() - t0), 'ms');
    };
    for (const f of FIELDS) await inBatches(f, f.field === 'workload.dataset' ? [...fieldStrings, ...DATASET_NAMES] : fieldStrings);
    // The last setup line is followed by Wattbench's own `export WATTBENCH_RUN=...`: it must not change it.
    const setupField: FieldCase = { field: 'target.slurm.setup', set: (c, v) => (slurmOf(c).setup = ['echo first-setup-line', v]) };
    await inBatches(setupField, [...SETUP_LINES, ...fieldStrings.filter((s) => s.includes('touch @MARK@'))], true);
    if (notRun.length) shell.notes.push(`workdir values whose run directory resolves outside the sandbox: their login-node commands were checked as recorded, not run (${notRun.join(', ')})`);
    const order = (a: { field: string; value: string }, b: { field: string; value: string }) => a.field.localeCompare(b.field) || a.value.localeCompare(b.value);
    shell.unsafe.sort((a, b) => order(a, b) || a.why.localeCompare(b.why));
    shell.refusals.sort(order);

    async function checkField(f: FieldCase, value: string, marker: string, n: number, setup = false): Promise<void> {
      const config = baseConfig();
      const caseDir = join(sandbox.dir, `case-${n}`);
      f.set(config, value, caseDir);
      const text = JSON.stringify(config, null, 2);
      const stored = f.stored?.(value, caseDir) ?? value;
      const refuse = (by: string, message: string) => {
        refusal({ field: f.field, by, value, message });
        tally(f.field, 'refused');
      };
      const fail = (layer: ShellFinding['layer'], why: string) => {
        unsafe({ field: f.field, layer, value, why, reproducer: `config (JSON): ${text.slice(0, 600)}` });
        tally(f.field, 'unsafe');
      };
      let loaded: LoadedConfig;
      try {
        loaded = loadConfig(text);
      } catch (error) {
        return fail('job-file', `loadConfig threw: ${(error as Error).message}`);
      }
      if (hasErrors(loaded.diagnostics)) {
        const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
        const bad = diagnosticProblems(errors, text);
        if (bad.length) return fail('job-file', `refused, but not clearly: ${bad.map((b) => b.problem).join('; ')}`);
        return refuse('validation', errors.map((d) => d.message).join(' | '));
      }
      const resolved = loaded.config!;
      // The random suffix fixed, so a value that changes nothing gives the very same script.
      const runId = newRunId(resolved.name, new Date(Date.UTC(2026, 0, 1))).replace(/-[0-9a-f]{4}$/, '-0000');
      if (!/^\d{8}-\d{6}-[a-z0-9-]+-0000$/.test(runId)) return fail('shell', `run id ${JSON.stringify(runId)} is not a plain slug`);
      let built: ReturnType<typeof buildJob>;
      try {
        built = buildJob(runId, resolved, loaded.points, resolveLocal);
      } catch (error) {
        if (error instanceof JobError) return refuse('buildJob', error.message);
        return fail('job-file', `buildJob threw ${(error as Error).constructor.name}: ${(error as Error).message}`);
      }
      const jobText = JSON.stringify(built.job, null, 2);
      const back = JSON.parse(jobText) as typeof built.job;
      if (!isDeepStrictEqual(back, built.job)) return fail('job-file', 'the job file does not read back as built');
      if ((f.field === 'server.served_model' || f.field === 'model.id') && back.server.model !== value) return fail('job-file', `job server.model is ${describeValue(back.server.model)}`);
      if (f.field === 'server.env value' && back.server.env.HF_HOME !== value) return fail('job-file', 'env value altered in the job file');
      if (f.field === 'server.env key' && !Object.prototype.hasOwnProperty.call(back.server.env, value)) return fail('job-file', 'env key altered in the job file');

      const slurm = resolved.target.kind === 'slurm' ? resolved.target.slurm : undefined;
      if (!slurm) return fail('job-file', 'the test config lost its Slurm target');
      // Each case its own $WATTBENCH_HOME: cases run a few at a time and must not share a run directory.
      const home = join(sandbox.dir, `home-${n}`, '.cache', 'wattbench');
      const agentPath = `${home}/agent/0123456789abcdef/wattbench_agent.pyz`;
      const runDir = `${slurm.workdir ?? home}/runs/${runId}`;
      let script: string;
      try {
        script = sbatchScript({ runId, runDir, agentPath, slurm, gpusPerNode: slurm.gpusPerNode ?? 1 });
      } catch (error) {
        return refuse('sbatchScript', (error as Error).message);
      }
      // The login node's command lines: recorded (not run) to see whether the value reaches any of them.
      const recorder = new RecordingTransport();
      const fakeAgent: InstalledAgent = { transport: recorder, path: agentPath, home, python: '3.11.4' };
      let uploadRefused: string | undefined;
      try {
        await prepareRunDir(fakeAgent, runDir, runId, { config: resolved, resolveLocal }, loaded.points, [['sbatch.sh', script]]);
        await startAgent(fakeAgent, runDir);
        await stopLeftoverServer(fakeAgent, runDir);
      } catch (error) {
        if (error instanceof AgentError) uploadRefused = error.message;
        else return fail('shell', `preparing the run threw ${(error as Error).constructor.name}: ${(error as Error).message}`);
      }
      // The run directory is made (and the script uploaded) before sbatch runs it: a refusal there comes first.
      if (uploadRefused) return refuse('uploadRunFiles', uploadRefused);
      // The value reaches a command line when the lines differ from those of the harmless config.
      const reachesShell = !isDeepStrictEqual(recorder.commands, await baselineCommands(runId, home, agentPath, resolveLocal));
      if (reachesShell && recorder.commands.some((c) => c.includes('\u0000'))) {
        // Node cannot spawn a NUL; OpenSSH's server refuses a request string holding one (sshbuf_get_cstring).
        const nul = await new LocalTransport(sandbox.env).exec(`true ${shq(runDir)}`).then(() => 'ran', (e: Error) => e.message);
        if (nul === 'ran') return fail('shell', 'a command with a NUL byte ran');
        return refuse('transport (a NUL byte in a command line; neither validation nor shq refuses it)', nul);
      }
      const findings: [ShellFinding['layer'], string][] = [];
      // As sbatch reads its directives: each of ours must be exactly one argument, unchanged.
      if (f.directive) {
        const line = script.split('\n').find((l) => l.startsWith(`#SBATCH ${f.directive}`));
        const expectedArg = `${f.directive}${f.directive === '--output=' ? `${runDir}/slurm-%j.out` : stored}`;
        const args = line === undefined ? [] : sbatchArguments(line.slice('#SBATCH'.length));
        if (line !== undefined && !(args.length === 1 && args[0] === expectedArg))
          findings.push(['sbatch-directive', args.length > 1 ? `sbatch would read ${args.length} arguments from the directive: ${args.slice(0, 4).map((a) => JSON.stringify(a.slice(0, 80))).join(' ')}${args.length > 4 ? ' …' : ''}` : `sbatch would read ${JSON.stringify((args[0] ?? '').slice(0, 120))}, not the value given`]);
      }
      // bash reads an `#SBATCH` line (no line break in it: sbatchScript refuses those) as a comment, so two scripts
      // that differ only there run the same commands: such a script is checked by being the one already run.
      const directives = script.split('\n').filter((l) => l.startsWith('#SBATCH '));
      if (directives.some((l) => /[\r\n]/.test(l))) findings.push(['shell', 'an #SBATCH line holds a line break']);
      // The run id is a plain slug (checked above): scripts that differ only in it parse alike.
      const key = script.split('\n').filter((l) => !l.startsWith('#SBATCH ')).join('\n').split(runId).join('<run-id>').split(home).join('<home>');
      const cached = scriptChecks.get(key);
      findings.push(...(cached ?? (await runScript(script, runDir, agentPath, n, setup))));
      if (!setup && !cached && existsSync(marker)) findings.push(['shell', 'the payload ran when the batch script ran (its marker file appeared)']);
      if (!cached && (!value.length || !key.includes(value))) scriptChecks.set(key, findings.filter(([layer]) => layer !== 'sbatch-directive'));
      // A value that reaches the login node's command lines: run them for real, in the sandbox.
      // Upload names that passed uploadRunFiles' check ([A-Za-z0-9._-], all outside what shq quotes) parse alike:
      // command lines that differ only in such a name, the run id or the case's home are run once.
      const remoteKey = recorder.commands
        .join('\n')
        .split(runId)
        .join('<run-id>')
        .split(home)
        .join('<home>')
        .replace(/dataset-\d+-[A-Za-z0-9._-]*/g, '<dataset>');
      if (reachesShell && remoteChecks.has(remoteKey)) findings.push(...remoteChecks.get(remoteKey)!);
      else if (reachesShell) {
        const log = join(sandbox.dir, `log-remote-${n}`);
        mkdirSync(log);
        const issues = await remoteCommandsInSandbox(sandbox, { runDir, runId, agentPath, home, config: resolved, points: loaded.points, script, jobText, resolveLocal, log });
        const tooLong = issues.length === 1 && /File name too long/.test(issues[0]);
        if (tooLong && !findings.length) return refuse('the file system (a path component over 255 bytes)', issues[0]);
        if (tooLong) issues.shift(); // the other findings stand; the upload could not be tried
        if (issues[0] === NOT_RUN) {
          notRun.push(shownValue(value));
          issues.shift();
        }
        const found = issues.map((i) => ['shell', i] as [ShellFinding['layer'], string]);
        if (existsSync(marker)) found.push(['shell', 'the payload ran in a remote command line (its marker file appeared)']);
        if (!tooLong) remoteChecks.set(remoteKey, found);
        findings.push(...found);
      }
      if (setup && findings.length) {
        const alone = value.includes('\u0000') ? { status: 1 } : await run('bash', ['-n', '-c', value], { env: sandbox.env });
        const note = alone.status === 0 ? 'the line is valid shell on its own' : 'the line is not valid shell on its own';
        for (const finding of findings) finding[1] = `${finding[1]} (${note}; validation accepted it)`;
      }
      if (findings.length) {
        for (const [layer, why] of findings) unsafe({ field: f.field, layer, value, why, reproducer: `config (JSON): ${text.slice(0, 500)}` });
        return tally(f.field, 'unsafe');
      }
      tally(f.field, 'safe');
    }

    /** bash -n, then the batch script run with stand-ins: srun must run once, as Wattbench wrote it. */
    async function runScript(script: string, runDir: string, agentPath: string, n: number, setup: boolean): Promise<[ShellFinding['layer'], string][]> {
      const findings: [ShellFinding['layer'], string][] = [];
      const layer: ShellFinding['layer'] = setup ? 'setup-isolation' : 'shell';
      const scriptFile = join(sandbox.dir, `script-${n}.sh`);
      writeFileSync(scriptFile, script);
      const syntax = await run('bash', ['-n', scriptFile], { env: sandbox.env });
      if (syntax.status !== 0) findings.push([layer, `bash -n on the batch script fails: ${syntax.stderr.trim().split('\n')[0]?.replace(scriptFile, 'sbatch.sh').slice(0, 200)}`]);
      const log = join(sandbox.dir, `log-${n}`);
      mkdirSync(log);
      const cwd = mkdtempSync(join(sandbox.dir, 'cwd-'));
      const ran = await run('bash', [scriptFile], { cwd, env: { ...sandbox.env, FUZZ_LOG: log } });
      const sruns = recorded(log, 'srun');
      const envs = recorded(log, 'srun-env');
      // A setup line that fails on its own stops the job with its number named, before srun: contained, not unsafe.
      const stoppedAtSetup = setup && sruns.length === 0 && /wattbench: setup line \d+ failed/.test(ran.stderr);
      if (stoppedAtSetup) {
        // the line ran as itself, and only itself
      } else if (sruns.length !== 1) findings.push([layer, `srun ran ${sruns.length} times (exit ${ran.status}${ran.stderr ? `: ${ran.stderr.trim().split('\n').pop()?.replace(scriptFile, 'sbatch.sh').slice(0, 160)}` : ''})`]);
      else if (!isDeepStrictEqual(sruns[0].slice(1), baseline.srunArgs)) findings.push([layer, 'srun got other arguments than Wattbench wrote']);
      if (envs.length === 1 && (envs[0][0] !== wellFormed(runDir) || envs[0][1] !== wellFormed(agentPath)))
        findings.push([layer, `srun saw WATTBENCH_RUN=${describeValue(envs[0][0])} WATTBENCH_AGENT=${describeValue(envs[0][1])}, not the run directory and agent given`]);
      rmSync(cwd, { recursive: true, force: true });
      return findings;
    }
  } finally {
    rmSync(sandbox.dir, { recursive: true, force: true });
  }
  // The sandbox's name is random: reported as <sandbox>, so a seed gives the same report every time.
  const unsandbox = <T>(items: T[]): T[] => JSON.parse(JSON.stringify(items).split(sandbox.dir).join('<sandbox>')) as T[];
  shell.unsafe = unsandbox(shell.unsafe);
  shell.refusals = unsandbox(shell.refusals);
  shell.notes = unsandbox(shell.notes);
  shell.notes.push(
    'shq: single-quotes anything outside [A-Za-z0-9_@%+=:,./-]; NUL is neither refused nor stripped: Node refuses it in a spawn argument, and OpenSSH refuses a request string containing NUL, so nothing runs, but the error names neither the field nor the cause.',
    'served_model, env keys and values, model.id and the server and workload commands reach the host only inside job.json (sent on stdin to `cat > file`), never on a command line; the agent passes env as a dict. server.command, workload.command and slurm setup lines are shell by design.',
    'The run name reaches the host only as the run id, slugged to [a-z0-9-] (store.ts newRunId); dataset paths only as `dataset-N-<[A-Za-z0-9_-]>` + their extension, and uploadRunFiles refuses any other name.',
    'A batch script that differs from one already run only in its #SBATCH lines (partition, account, sbatch_options) or its run id (a plain slug) is not run again: bash reads those lines as comments, and a slug parses as any other.',
    "The login node's command lines (uploads, sbatch, the agent's start and stop-server, fetchText, readEventsFrom, tailEvents), as the real functions build them, are run by one bash per case, each `eval`ed in its own subshell with its stdin, as `bash -c` runs it; python3 and sbatch are stand-ins that record their arguments.",
    'sbatch directives are checked against an emulation of Slurm\'s #SBATCH tokenizer (src/sbatch/opt.c _get_argument: whitespace splits, quotes group, backslash escapes, # starts a comment), not a real sbatch.',
  );
}

/** spawn, awaited: a few cases run at once while each waits on its processes. */
function run(command: string, args: string[], options: { cwd?: string; env: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 10000);
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => {
      clearTimeout(timer);
      done({ status: null, stdout: '', stderr: e.message });
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      done({ status, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** A string as it is once written as UTF-8 (a lone surrogate becomes U+FFFD), as every file and argv holds it. */
function wellFormed(s: string): string {
  return Buffer.from(s, 'utf8').toString('utf8');
}

function shownValue(v: string): string {
  return v.length > 120 ? `${JSON.stringify(v.slice(0, 100)).slice(0, -1)}…" (${v.length} chars)` : JSON.stringify(v);
}

/** The login node's command lines for the harmless config, with this run id and home. */
async function baselineCommands(runId: string, home: string, agentPath: string, resolveLocal: () => string): Promise<string[]> {
  const loaded = loadConfig(JSON.stringify(baseConfig()));
  const config = loaded.config!;
  if (config.target.kind !== 'slurm') throw new Error('baseline config is not Slurm');
  const runDir = `${config.target.slurm.workdir ?? home}/runs/${runId}`;
  const script = sbatchScript({ runId, runDir, agentPath, slurm: config.target.slurm, gpusPerNode: 1 });
  const recorder = new RecordingTransport();
  const agent: InstalledAgent = { transport: recorder, path: agentPath, home, python: '3.11.4' };
  await prepareRunDir(agent, runDir, runId, { config, resolveLocal }, loaded.points, [['sbatch.sh', script]]);
  await startAgent(agent, runDir);
  await stopLeftoverServer(agent, runDir);
  return recorder.commands;
}

/** The arguments srun gets from a script built from a harmless config (what every case must match). */
async function shellBaseline(sandbox: Sandbox, resolveLocal: () => string): Promise<{ srunArgs: string[] }> {
  const loaded = loadConfig(JSON.stringify(baseConfig()));
  const config = loaded.config!;
  if (config.target.kind !== 'slurm') throw new Error('baseline config is not Slurm');
  buildJob('20260101-000000-fuzz-shell-0000', config, loaded.points, resolveLocal);
  const script = sbatchScript({ runId: 'r', runDir: '/x/runs/r', agentPath: '/x/a.pyz', slurm: config.target.slurm, gpusPerNode: 1 });
  const file = join(sandbox.dir, 'baseline.sh');
  writeFileSync(file, script);
  const log = join(sandbox.dir, 'log-baseline');
  mkdirSync(log);
  spawnSync('bash', [file], { cwd: sandbox.dir, env: { ...sandbox.env, FUZZ_LOG: log }, timeout: 10000 });
  const calls = recorded(log, 'srun');
  if (calls.length !== 1) throw new Error(`the baseline batch script ran srun ${calls.length} times`);
  return { srunArgs: calls[0].slice(1) };
}

/**
 * The login node's command lines for a run directory holding the value, run for real with bash in the
 * sandbox: upload, submit (as slurm.ts does), start (as a host run does), read back, stop, tail.
 */
const NOT_RUN = 'not run: the run directory would lie outside the sandbox';

/** Records each command line and its stdin; answers as the agent and the tools would, so the callers go on. */
class ScriptingTransport implements Transport {
  readonly label = 'fuzz-sandbox';
  readonly calls: { command: string; stdin: Buffer }[] = [];
  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    this.calls.push({ command, stdin: Buffer.from(options.stdin ?? '') });
    const stdout = / stop-server /.test(command) ? '{"status": "nothing", "message": "no server"}\n' : / run --job /.test(command) ? '{"pid": 4242}\n' : '';
    return Promise.resolve({ code: 0, stdout, stderr: '' });
  }
  stream(command: string): StreamingExec {
    this.calls.push({ command, stdin: Buffer.alloc(0) });
    return { done: Promise.resolve({ code: 0, stdout: '', stderr: '' }), stop: () => undefined };
  }
  close(): void {}
}

/**
 * The login node's command lines for a run directory holding the value, as the real functions build them
 * (upload, submit as slurm.ts does, start as a host run does, read back, stop, tail), then run for real by
 * one bash in the sandbox: each line `eval`ed in its own subshell with its stdin, as `bash -c` would run it.
 */
async function remoteCommandsInSandbox(
  sandbox: Sandbox,
  c: { runDir: string; runId: string; agentPath: string; home: string; config: ResolvedConfig; points: ResolvedPoint[]; script: string; jobText: string; resolveLocal: () => string; log: string },
): Promise<string[]> {
  const issues: string[] = [];
  if (!resolve(c.runDir).startsWith(`${sandbox.dir}/`)) return [NOT_RUN]; // a `..` value would leave the sandbox
  const t = new ScriptingTransport();
  const agent: InstalledAgent = { transport: t, path: c.agentPath, home: c.home, python: '3.11.4' };
  await prepareRunDir(agent, c.runDir, c.runId, { config: c.config, resolveLocal: c.resolveLocal }, c.points, [['sbatch.sh', c.script]]);
  const uploads = t.calls.length;
  // The submission command of src/core/run/slurm.ts (SlurmRun.execute), verbatim.
  await t.exec(`cd ${shq(c.runDir)} && sbatch --parsable sbatch.sh`);
  await startAgent(agent, c.runDir);
  await fetchText(t, `${c.runDir}/slurm-12345.out`);
  await readEventsFrom(t, c.runDir, 0);
  tailEvents(t, c.runDir, 2 ** 22 + 12345, 0, () => undefined); // above any pid_max: tail reads and ends
  await stopLeftoverServer(agent, c.runDir);
  const names = ['upload', 'sbatch', 'start', 'fetchText', 'readEventsFrom', 'tailEvents', 'stopLeftoverServer'];
  const dir = join(sandbox.dir, `remote-${c.log.replace(/.*-/, '')}`);
  mkdirSync(dir);
  t.calls.forEach((call, i) => {
    writeFileSync(join(dir, `cmd_${i}`), call.command);
    writeFileSync(join(dir, `in_${i}`), call.stdin);
  });
  const events = '{"v":1,"seq":0,"t":1,"type":"log","msg":"x"}\n';
  writeFileSync(join(dir, 'events'), events);
  writeFileSync(join(dir, 'slurm-out'), 'slurm output\n');
  const step = (i: number) => `run ${i}`;
  const driver = [
    'run() { cmd=$(cat "$D/cmd_$1"; echo x); cmd=${cmd%x}; ( eval "$cmd" ) < "$D/in_$1" > "$D/out_$1" 2> "$D/err_$1"; echo $? > "$D/rc_$1"; }',
    ...Array.from({ length: uploads }, (_, i) => step(i)),
    'cp "$D/events" "$RUNDIR/events.ndjson" && cp "$D/slurm-out" "$RUNDIR/slurm-12345.out"',
    ...Array.from({ length: t.calls.length - uploads }, (_, i) => step(uploads + i)),
  ].join('\n');
  const ran = await run('bash', ['-c', driver], { cwd: sandbox.dir, env: { ...sandbox.env, FUZZ_LOG: c.log, D: dir, RUNDIR: c.runDir } });
  const out = (i: number) => (existsSync(join(dir, `out_${i}`)) ? readFileSync(join(dir, `out_${i}`)) : Buffer.alloc(0));
  const rc = (i: number) => (existsSync(join(dir, `rc_${i}`)) ? readFileSync(join(dir, `rc_${i}`), 'utf8').trim() : 'none');
  const err = (i: number) => (existsSync(join(dir, `err_${i}`)) ? readFileSync(join(dir, `err_${i}`), 'utf8').trim() : '');
  for (let i = 0; i < uploads; i++) if (rc(i) !== '0') return [`uploading into the run directory failed (exit ${rc(i)}): …${err(i).slice(-160)}`];
  if (ran.status !== 0) issues.push(`the command lines did not all run (exit ${ran.status}): ${ran.stderr.slice(0, 200)}`);
  const read = (name: string) => (existsSync(join(c.runDir, name)) ? readFileSync(join(c.runDir, name), 'utf8') : undefined);
  if (read('job.json') !== wellFormed(c.jobText)) issues.push('job.json did not land at the run directory as given');
  if (read('sbatch.sh') !== wellFormed(c.script)) issues.push('sbatch.sh did not land at the run directory as given');
  /** `cd` makes $PWD logical: no `.`, `..`, doubled or trailing slashes. */
  const cwd = wellFormed(resolve(c.runDir));
  const runDir = wellFormed(c.runDir);
  const agentPath = wellFormed(c.agentPath);
  const at = (name: string) => uploads + names.indexOf(name) - 1;
  const sbatch = recorded(c.log, 'sbatch');
  if (rc(at('sbatch')) !== '0' || sbatch.length !== 1 || sbatch[0][0] !== cwd || !isDeepStrictEqual(sbatch[0].slice(1), ['--parsable', 'sbatch.sh']))
    issues.push(`sbatch did not run once in the run directory with --parsable sbatch.sh (${describeValue(sbatch)})`);
  const py = recorded(c.log, 'python3');
  const starts = py.filter((call) => call[2] === 'run');
  if (starts.length !== 1 || starts[0][0] !== cwd || !isDeepStrictEqual(starts[0].slice(1), [agentPath, 'run', '--job', 'job.json', '--run-dir', runDir, '--detach']))
    issues.push(`the agent start ran other than as written: ${describeValue(starts)}`);
  const stops = py.filter((call) => call[2] === 'stop-server');
  if (stops.length !== 1 || !isDeepStrictEqual(stops[0].slice(1), [agentPath, 'stop-server', '--run-dir', runDir])) issues.push(`stop-server ran other than as written: ${describeValue(stops)}`);
  if (py.length !== 2) issues.push(`python3 ran ${py.length} times, not twice`);
  if (out(at('fetchText')).toString('utf8') !== 'slurm output\n') issues.push('fetchText did not read the file back');
  if (Buffer.from(out(at('readEventsFrom')).toString('utf8').replace(/\s+/g, ''), 'base64').toString('utf8') !== events) issues.push('readEventsFrom did not read the events back');
  if (out(at('tailEvents')).toString('utf8') !== events) issues.push('tailEvents did not stream the events back');
  return issues;
}

// ========================================================================================== main

export async function fuzz(options: FuzzOptions): Promise<FuzzReport> {
  const started = performance.now();
  const report: FuzzReport = {
    seed: options.seed,
    configs: { total: 0, valid: 0, invalid: 0, crashes: [], unlocated: [], unresolved: [], nonFinite: [], slow: [], seeds: [], mutations: {}, probes: {}, notes: [], duration_s: 0 },
    streams: { total: 0, events: 0, problems: 0, crashes: [], unlocated: [], badNumbers: [], slow: [], mutations: {}, probes: {}, duration_s: 0 },
    shell: { total: 0, safe: 0, refused: 0, unsafe: [], unsafeCases: 0, refusals: [], byField: {}, notes: [], duration_s: 0 },
    duration_s: 0,
  };
  // The yaml library warns (process.emitWarning) about odd tags and keys: thousands of lines of noise here.
  const listeners = process.listeners('warning');
  process.removeAllListeners('warning');
  try {
    return await fuzzAll(options, report, started);
  } finally {
    for (const l of listeners) process.on('warning', l);
  }
}

async function fuzzAll(options: FuzzOptions, report: FuzzReport, started: number): Promise<FuzzReport> {
  options.log?.(`fuzz: seed ${options.seed}, ${options.configs} configs, ${options.streams} streams${options.shell === false ? ', no shell' : ''}`);
  const seconds = (since: number) => Math.round((performance.now() - since) / 100) / 10;
  let phase = performance.now();
  await fuzzConfigs(options, report);
  report.configs.duration_s = seconds(phase);
  options.log?.(`configs done in ${report.configs.duration_s} s`);
  phase = performance.now();
  await fuzzStreams(options, report);
  report.streams.duration_s = seconds(phase);
  options.log?.(`streams done in ${report.streams.duration_s} s`);
  phase = performance.now();
  if (options.shell !== false) await fuzzShell(options, report);
  report.shell.unsafeCases = unsafeCases(report);
  report.shell.duration_s = seconds(phase);
  report.duration_s = Math.round((performance.now() - started) / 100) / 10;
  return report;
}

/** Cases of the shell part that failed (the `unsafe` list may hold several findings of one case). */
export function unsafeCases(report: FuzzReport): number {
  return Object.values(report.shell.byField).reduce((s, f) => s + f.unsafe, 0);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (args[0] === '--child-config') {
    const text = readFileSync(0, 'utf8');
    process.stdout.write(JSON.stringify(checkConfigText(text, args[1])));
    return;
  }
  // A fixed default, as faults/campaign.ts has: `npm run fuzz` reproduces the committed results; --seed explores.
  const seed = Number(flag('seed') ?? 20261202);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got ${flag('seed')}`);
  const one = flag('case');
  if (one) {
    const [kind, index] = one.split(':');
    if (kind === 'config') process.stdout.write(generateConfig(seed, Number(index), configSeeds(), schemaKeys()).text);
    else if (kind === 'stream') process.stdout.write(generateStream(seed, Number(index)).bytes);
    else throw new Error('--case config:I or stream:I');
    return;
  }
  console.error(`fuzz seed: ${seed} (reproduce with --seed ${seed})`);
  const report = await fuzz({ configs: Number(flag('configs') ?? 200), streams: Number(flag('streams') ?? 200), seed, shell: !args.includes('--no-shell'), log: (l) => console.error(l) });
  const text = `${JSON.stringify(report, null, 2)}\n`;
  const out = flag('out');
  if (out) writeFileSync(out, text);
  else process.stdout.write(text);
  const c = report.configs;
  const s = report.streams;
  console.error(
    [
      `seed ${report.seed}: ${report.duration_s} s`,
      `configs: ${c.total} (${c.valid} valid, ${c.invalid} invalid); crashes ${sum(c.crashes)} in ${c.crashes.length} kinds, unlocated ${sum(c.unlocated)}, unresolved ${sum(c.unresolved)}, non-finite ${sum(c.nonFinite)} in ${c.nonFinite.length} kinds, slow ${sum(c.slow)}`,
      `streams: ${s.total} (${s.events} events, ${s.problems} problems); crashes ${sum(s.crashes)} in ${s.crashes.length} kinds, unlocated ${sum(s.unlocated)}, bad numbers ${s.badNumbers.length} kinds (${sum(s.badNumbers)} cases), slow ${sum(s.slow)}`,
      `shell: ${report.shell.total} cases, ${report.shell.safe} safe, ${report.shell.refused} refused, ${unsafeCases(report)} unsafe`,
      out ? `written to ${out}` : '',
    ].join('\n'),
  );
}

function sum(groups: FindingGroup[]): number {
  return groups.reduce((s, g) => s + g.count, 0);
}

if (require.main === module)
  main().catch((error: Error) => {
    console.error(error.stack ?? error.message);
    process.exit(1);
  });

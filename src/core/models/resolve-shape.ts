/**
 * Where a model's shape comes from, in order: the config's own `model.*` keys, the built-in catalog, a local
 * config.json (`model.config`, or a path as `model.id`), the local Hugging Face cache, the GPU hosts' caches as
 * last recorded, Wattbench's copy of earlier Hub answers, and the Hub itself. The first that has it wins, and
 * says where it was; when none has it, the message lists every place looked and how to give the shape by hand.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { ModelSpec } from '../config/model';
import { lookupModel, type ModelShape } from '../estimate/catalog';
import { givenDetail, modelFromSpec } from '../estimate/config-estimate';
import { shapeFromHfConfig } from '../estimate/hf-config';
import { type Env, findCachedConfig, hfHubCacheDir, hfToken, hubEndpoint, hubOffline, isRepoId, repoFolderName } from './hf-cache';
import { fetchHubConfig, hubConfigUrl, type HubAnswer } from './hub';
import { hubCacheFile, readHubCache, writeHubCache } from './hub-cache';
import type { RecordedHostCache } from './host-cache';
import { parseLenientJson } from './lenient-json';

export type ProvenanceKind = 'config' | 'catalog' | 'local' | 'host-cache' | 'hub' | 'hub-cache';

export interface Provenance {
  kind: ProvenanceKind;
  /** The file, URL or table the shape came from. */
  where: string;
}

export type ShapeResolution =
  | { ok: true; shape: ModelShape; provenance: Provenance; notes: string[] }
  | { ok: false; message: string; looked: string[] };

export interface ResolveOptions {
  env: Env;
  home?: string;
  /** The config file's folder: a relative `model.config` (or path as `model.id`) is read from there. */
  baseDir?: string;
  /** Where Hub answers are kept (the extension's global storage, the CLI's ~/.cache/wattbench/hf). */
  hubCacheDir?: string;
  hostCaches?: readonly RecordedHostCache[];
  /** Ask the Hub when nothing on this machine has the model (off: --offline, the setting, HF_HUB_OFFLINE). */
  fetchHub: boolean;
  /** A token from elsewhere (VS Code's secret storage); else $HF_TOKEN and the rest, as huggingface_hub. */
  token?: string;
  timeoutMs?: number;
  /** How this tool lets a user give a token, for the gated-model message. */
  tokenHint?: string;
}

const BY_HAND =
  'To estimate it, give model.params_b, layers, hidden and heads (and kv_heads for grouped-query attention), or model.config: the path of its config.json or model directory.';

const SENTENCE: Record<ProvenanceKind, string> = {
  config: 'shape from the config\'s model keys',
  catalog: 'shape from Wattbench\'s built-in catalog',
  local: 'shape from the local config.json',
  'host-cache': 'shape from config.json in a GPU host\'s Hugging Face cache',
  'hub-cache': 'shape from a config.json fetched from the Hugging Face Hub earlier',
  hub: 'shape from config.json on the Hugging Face Hub',
};

/** "shape from config.json in the local Hugging Face cache: /root/.cache/huggingface/hub/…/config.json". */
export function describeProvenance(p: Provenance): string {
  // A local file inside a hub cache's layout is the cache's: say so, it is where `hf download` put it.
  const inHfCache = p.kind === 'local' && /\/models--[^/]+\/snapshots\//.test(p.where);
  return `${inHfCache ? 'shape from config.json in the local Hugging Face cache' : SENTENCE[p.kind]}: ${p.where}`;
}

/** Whether `modelFromSpec` alone (config keys or catalog) gives the shape, with no file or network read. */
export function resolvesWithoutLookup(spec: ModelSpec): boolean {
  return modelFromSpec(spec).ok;
}

export async function resolveShape(spec: ModelSpec, options: ResolveOptions): Promise<ShapeResolution> {
  const home = options.home ?? homedir();
  const looked: string[] = [];
  const direct = modelFromSpec(spec);
  if (direct.ok) {
    const inCatalog = lookupModel(spec.id).ok;
    return {
      ok: true,
      shape: direct.value,
      provenance: inCatalog ? { kind: 'catalog', where: 'src/core/estimate/data/models.json' } : { kind: 'config', where: 'model.params_b, layers, hidden, heads' },
      notes: [],
    };
  }
  const near = direct.candidates.length ? `; did you mean ${direct.candidates.map((c) => `"${c}"`).join(', ')}?` : '';
  looked.push(`the built-in catalog: not there${near}`);

  const fromFile = (config: unknown, kind: ProvenanceKind, where: string, notes: string[] = []): ShapeResolution => {
    const parsed = shapeFromHfConfig(config, spec.id);
    if (!parsed.ok) return { ok: false, message: `${where}: ${parsed.message}. ${BY_HAND}`, looked: [...looked, where] };
    return { ok: true, shape: withGivenKeys(parsed.shape, spec), provenance: { kind, where }, notes: [...notes, ...parsed.notes] };
  };

  // 1. A local config.json the config names: asked for explicitly, so a missing one is an error, not a fall-through.
  const configKey = spec.config;
  if (configKey) {
    const file = localConfigFile(configKey, options.baseDir, home);
    if (!file.ok) return { ok: false, message: `model.config: ${file.message}`, looked: [...looked, file.path] };
    const read = readJson(file.path);
    return read.ok ? fromFile(read.value, 'local', file.path) : { ok: false, message: `model.config: ${read.message}`, looked: [...looked, file.path] };
  }
  if (looksLikePath(spec.id, options.baseDir, home)) {
    const file = localConfigFile(spec.id, options.baseDir, home);
    if (!file.ok) return { ok: false, message: `model.id: ${file.message}. ${BY_HAND}`, looked: [...looked, file.path] };
    const read = readJson(file.path);
    return read.ok ? fromFile(read.value, 'local', file.path) : { ok: false, message: `model.id: ${read.message}`, looked: [...looked, file.path] };
  }
  if (!isRepoId(spec.id))
    return { ok: false, message: `"${spec.id}" is neither a catalog model, a Hugging Face id (org/name) nor a local path. ${BY_HAND}`, looked };

  // 2. This machine's Hugging Face cache.
  const cacheDir = hfHubCacheDir(options.env, home);
  const cached = findCachedConfig(cacheDir, spec.id);
  if (cached) {
    const read = readJson(cached.path);
    if (read.ok) return fromFile(read.value, 'local', cached.path, cached.fromMain ? [] : [`revision ${cached.revision} (refs/main names none in the cache)`]);
    looked.push(`${cached.path}: ${read.message}`);
  } else looked.push(`the local Hugging Face cache: ${join(cacheDir, repoFolderName(spec.id))} (not there)`);

  // 3. What the GPU hosts' caches held when last read (newest record first).
  // (The CLI records no host caches: it passes none, and the list does not mention them.)
  if (options.hostCaches) {
    const hosts = [...options.hostCaches].sort((a, b) => b.recorded_at.localeCompare(a.recorded_at));
    for (const host of hosts) {
      const model = host.models.find((m) => m.id === spec.id && m.config !== undefined);
      if (model) return fromFile(model.config, 'host-cache', `${host.host}:${model.path} (recorded ${host.recorded_at})`);
    }
    looked.push(
      hosts.length
        ? `the GPU hosts' Hugging Face caches as last read: ${hosts.map((h) => `${h.host}:${h.cache_dir} (${h.recorded_at})`).join(', ')} (not there)`
        : 'the GPU hosts\' Hugging Face caches: none read yet (Test Host Connection reads them)',
    );
  }

  // 4. A Hub answer kept from before, then 5. the Hub.
  if (options.hubCacheDir) {
    const stored = readHubCache(options.hubCacheDir, spec.id);
    if (stored) return fromFile(stored.config, 'hub-cache', `${hubCacheFile(options.hubCacheDir, spec.id)} (from ${stored.url}, ${stored.fetched_at})`);
    looked.push(`Wattbench's copies of Hub answers: ${hubCacheFile(options.hubCacheDir, spec.id)} (not there)`);
  }
  const endpoint = hubEndpoint(options.env);
  const url = hubConfigUrl(endpoint, spec.id);
  if (!options.fetchHub || hubOffline(options.env)) {
    looked.push(`the Hugging Face Hub: ${url} (not asked: ${hubOffline(options.env) ? 'HF_HUB_OFFLINE is set' : 'offline'})`);
    return { ok: false, message: notFound(spec.id, looked), looked };
  }
  const token = options.token ? { token: options.token, from: 'the stored token' } : hfToken(options.env, home);
  const answer = await fetchHubConfig(spec.id, { endpoint, token: token?.token, timeoutMs: options.timeoutMs });
  if (answer.kind === 'ok') {
    const notes: string[] = [];
    if (options.hubCacheDir) {
      try {
        writeHubCache(options.hubCacheDir, spec.id, answer.url, answer.config);
      } catch (error) {
        notes.push(`could not keep the Hub's answer for offline use: ${(error as Error).message}`);
      }
    }
    return fromFile(answer.config, 'hub', answer.url, notes);
  }
  looked.push(`the Hugging Face Hub: ${url}: ${answer.message}`);
  if (answer.kind === 'gated') return { ok: false, message: gatedMessage(spec.id, answer, endpoint, token?.from, options.tokenHint), looked };
  return { ok: false, message: notFound(spec.id, looked), looked };
}

function notFound(id: string, looked: string[]): string {
  return `cannot find the shape of model "${id}". Looked in:\n${looked.map((l) => `  - ${l}`).join('\n')}\n${BY_HAND}`;
}

function gatedMessage(id: string, answer: Extract<HubAnswer, { kind: 'gated' }>, endpoint: string, tokenFrom: string | undefined, hint?: string): string {
  const how = hint ?? 'set HF_TOKEN (or log in with `hf auth login`, which writes $HF_HOME/token)';
  const what = answer.withToken
    ? `the token (from ${tokenFrom}) has no access to it: accept the model's terms at ${endpoint}/${id} with that account, or use another token (${how})`
    : `accept its terms at ${endpoint}/${id}, then give a token of that account: ${how}`;
  return `${id} is a gated model (${answer.url} answered HTTP ${answer.status}): ${what}. ${BY_HAND}`;
}

/**
 * The config's own keys over a shape found elsewhere: what the user wrote always wins, the flat keys and the nested
 * detail (MLA, MoE, sliding window: givenDetail, as over a catalog shape).
 */
const FLAT_KEYS = ['paramsB', 'layers', 'hidden', 'heads', 'kvHeads', 'intermediate', 'vocab', 'dtype', 'experts', 'expertsPerToken', 'activeParamsB', 'headDim'] as const;

function withGivenKeys(shape: ModelShape, spec: ModelSpec): ModelShape {
  const out: Record<string, unknown> = { ...shape };
  const given = spec as unknown as Record<string, unknown>;
  for (const key of FLAT_KEYS) if (given[key] !== undefined) out[key] = given[key];
  const flat = out as unknown as ModelShape;
  return { ...flat, ...givenDetail(spec, flat) };
}

function expand(path: string, baseDir: string | undefined, home: string): string {
  if (path === '~' || path.startsWith('~/')) return join(home, path.slice(1));
  return isAbsolute(path) ? path : resolve(baseDir ?? process.cwd(), path);
}

/** A path, not a Hub id: starts like one, or names an existing directory or file next to the config. */
function looksLikePath(id: string, baseDir: string | undefined, home: string): boolean {
  if (/^(\/|\.\.?\/|~\/|~$)/.test(id) || id.endsWith('.json')) return true;
  return baseDir !== undefined && existsSync(join(expand(id, baseDir, home), 'config.json'));
}

function localConfigFile(path: string, baseDir: string | undefined, home: string): { ok: true; path: string } | { ok: false; path: string; message: string } {
  const full = expand(path, baseDir, home);
  let isDir: boolean;
  try {
    isDir = statSync(full).isDirectory();
  } catch {
    return { ok: false, path: full, message: `${full} does not exist` };
  }
  const file = isDir ? join(full, 'config.json') : full;
  return existsSync(file) ? { ok: true, path: file } : { ok: false, path: file, message: `${full} is a directory without a config.json` };
}

function readJson(path: string): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: parseLenientJson(readFileSync(path, 'utf8')) };
  } catch (error) {
    return { ok: false, message: `cannot read ${path}: ${(error as Error).message}` };
  }
}

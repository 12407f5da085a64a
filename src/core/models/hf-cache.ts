/**
 * Where Hugging Face keeps things on a machine, as huggingface_hub lays them out: the hub cache
 * (`models--ORG--NAME/snapshots/<revision>/config.json`, `refs/main` naming the revision `main` points at)
 * and the token. The same rules as huggingface_hub's constants, so a cache that `hf download` filled is found.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export type Env = Readonly<Record<string, string | undefined>>;

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: Env, home = homedir()): string {
  return env.HF_HOME || join(env.XDG_CACHE_HOME || join(home, '.cache'), 'huggingface');
}

/** $HF_HUB_CACHE (or its older name HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub. */
export function hfHubCacheDir(env: Env, home = homedir()): string {
  return env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome(env, home), 'hub');
}

/** A repo id as the cache names its folder: `Qwen/Qwen3-8B` → `models--Qwen--Qwen3-8B`. */
export function repoFolderName(id: string): string {
  return `models--${id.split('/').join('--')}`;
}

/** The inverse, for listing a cache: undefined for folders that are not model repos (datasets--, spaces--). */
export function repoIdFromFolder(folder: string): string | undefined {
  if (!folder.startsWith('models--')) return undefined;
  const id = folder.slice('models--'.length).split('--').join('/');
  return id || undefined;
}

/** A Hub repo id: `name` or `org/name`, letters, digits, `-`, `_`, `.` (no path tricks). */
export function isRepoId(id: string): boolean {
  return /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/.test(id) && !id.includes('..') && !id.includes('--');
}

export interface CachedConfig {
  path: string;
  revision: string;
  /** The revision was the one refs/main names (else: the newest snapshot that has a config.json). */
  fromMain: boolean;
}

/**
 * The config.json of `id` in the hub cache at `cacheDir`: the snapshot refs/main names when it has one, else the
 * most recently written snapshot that has one (a download of another branch or a pinned revision).
 */
export function findCachedConfig(cacheDir: string, id: string): CachedConfig | undefined {
  const repo = join(cacheDir, repoFolderName(id));
  const snapshots = join(repo, 'snapshots');
  let main: string | undefined;
  try {
    main = readFileSync(join(repo, 'refs', 'main'), 'utf8').trim() || undefined;
  } catch {
    main = undefined;
  }
  if (main && /^[\w.-]+$/.test(main) && existsSync(join(snapshots, main, 'config.json')))
    return { path: join(snapshots, main, 'config.json'), revision: main, fromMain: true };
  let revisions: string[];
  try {
    revisions = readdirSync(snapshots);
  } catch {
    return undefined;
  }
  const found = revisions
    .map((revision) => ({ revision, path: join(snapshots, revision, 'config.json') }))
    .filter((r) => existsSync(r.path))
    .map((r) => ({ ...r, mtime: statSync(r.path).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime || a.revision.localeCompare(b.revision));
  return found[0] && { path: found[0].path, revision: found[0].revision, fromMain: false };
}

/**
 * The token huggingface_hub would send: $HF_TOKEN, else the older $HUGGING_FACE_HUB_TOKEN, else the file
 * $HF_TOKEN_PATH (default $HF_HOME/token) that `hf auth login` writes.
 */
export function hfToken(env: Env, home = homedir()): { token: string; from: string } | undefined {
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const value = env[name]?.trim();
    if (value) return { token: value, from: `$${name}` };
  }
  const file = env.HF_TOKEN_PATH || join(hfHome(env, home), 'token');
  try {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { token, from: file };
  } catch {
    // No token file: anonymous, which is all a public model needs.
  }
  return undefined;
}

/** huggingface_hub's HF_HUB_OFFLINE: set to 1/true/yes/on, nothing is fetched from the Hub. */
export function hubOffline(env: Env): boolean {
  return ['1', 'true', 'yes', 'on'].includes((env.HF_HUB_OFFLINE ?? '').trim().toLowerCase());
}

/** $HF_ENDPOINT without a trailing slash, else https://huggingface.co, as huggingface_hub. */
export function hubEndpoint(env: Env): string {
  return (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
}

/**
 * The Hub's answers kept on this machine, one file per model (`<dir>/<org>--<name>.json`), so an estimate that
 * once fetched a config.json works offline from then on. The extension keeps them in its global storage, the CLI
 * in ~/.cache/wattbench/hf/.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isRepoId } from './hf-cache';

export interface StoredHubConfig {
  v: 1;
  id: string;
  url: string;
  fetched_at: string;
  config: unknown;
}

/** The CLI's folder: $WATTBENCH_HOME/hf (default ~/.cache/wattbench/hf), as the agent's home on a host. */
export function cliHubCacheDir(env: Readonly<Record<string, string | undefined>>, home = homedir()): string {
  return join(env.WATTBENCH_HOME || join(home, '.cache', 'wattbench'), 'hf');
}

export function hubCacheFile(dir: string, id: string): string {
  return join(dir, `${id.split('/').join('--')}.json`);
}

export function readHubCache(dir: string, id: string): StoredHubConfig | undefined {
  if (!isRepoId(id)) return undefined;
  try {
    const stored = JSON.parse(readFileSync(hubCacheFile(dir, id), 'utf8')) as Partial<StoredHubConfig>;
    return stored.v === 1 && stored.id === id && typeof stored.url === 'string' && 'config' in stored ? (stored as StoredHubConfig) : undefined;
  } catch {
    return undefined;
  }
}

export function writeHubCache(dir: string, id: string, url: string, config: unknown, now = new Date()): string {
  if (!isRepoId(id)) throw new Error(`not a Hugging Face model id: ${id}`);
  mkdirSync(dir, { recursive: true });
  const file = hubCacheFile(dir, id);
  const stored: StoredHubConfig = { v: 1, id, url, fetched_at: now.toISOString(), config };
  // Whole or not at all: a reader in another window never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(stored, null, 2) + '\n');
  renameSync(tmp, file);
  return file;
}

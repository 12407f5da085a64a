import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { catalogChecks } from '../estimate/config-checks';
import { loadConfig, type LoadedConfig, type LoadOptions } from './index';

/** Loads a config file from disk; dataset paths are checked relative to the file, hardware against the catalogs. */
export function loadConfigFile(path: string, options: LoadOptions = {}): LoadedConfig & { path: string } {
  const text = readFileSync(path, 'utf8');
  const base = dirname(resolve(path));
  return { path, ...loadConfig(text, { fileExists: (p) => existsSync(resolve(base, p)), extraChecks: catalogChecks, ...options }) };
}

/**
 * Configs as the workspace holds them: loaded with every check the tools make, dataset paths relative to
 * the config's folder and hardware against the estimator's catalogs. The editor and the CLI load through
 * here, so a config gets the same diagnostics in both.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { loadConfig, type LoadedConfig, type LoadOptions } from '../config';
import { catalogChecks } from '../estimate/config-checks';

/** `base`: the folder dataset paths are relative to (none for an unsaved document: paths go unchecked). */
export function loadWorkspaceConfig(text: string, base: string | undefined, options: LoadOptions = {}): LoadedConfig {
  return loadConfig(text, { fileExists: base ? (p) => existsSync(resolve(base, p)) : undefined, extraChecks: catalogChecks, ...options });
}

export function loadConfigFile(path: string, options: LoadOptions = {}): LoadedConfig & { path: string } {
  return { path, ...loadWorkspaceConfig(readFileSync(path, 'utf8'), dirname(resolve(path)), options) };
}

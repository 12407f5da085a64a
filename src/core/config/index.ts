/** Loading a config: parse → schema check → resolve → sweep expansion, all diagnostics located. */
import { hasErrors, type ConfigDiagnostic } from './diagnostics';
import type { CostSettings, ResolvedConfig, ResolvedPoint } from './model';
import { resolveConfig } from './resolve';
import { ConfigSchema, type ConfigInput } from './schema';
import { parseSource, type ParsedSource } from './source';
import { expandSweep } from './sweep';
import { validateAgainstSchema, type JsonSchema } from './validate-schema';

export * from './diagnostics';
export * from './model';
export { parseDuration, parsePower } from './units';

export const CONFIG_FILE_PATTERN = /\.wattbench\.(ya?ml|json)$/;

export interface LoadOptions {
  costDefaults?: Partial<CostSettings>;
  fileExists?: (relativePath: string) => boolean;
  /** Further checks with knowledge the config module does not own (catalogs, hosts). */
  extraChecks?: (config: ResolvedConfig, points: ResolvedPoint[], source: ParsedSource) => ConfigDiagnostic[];
}

export interface LoadedConfig {
  source: ParsedSource;
  diagnostics: ConfigDiagnostic[];
  /** Present when there are no errors. */
  config?: ResolvedConfig;
  input?: ConfigInput;
  points: ResolvedPoint[];
}

export const MAX_POINTS = 10000;

export function loadConfig(text: string, options: LoadOptions = {}): LoadedConfig {
  const source = parseSource(text);
  const diagnostics: ConfigDiagnostic[] = [...source.syntaxErrors];
  if (hasErrors(diagnostics)) return { source, diagnostics, points: [] };
  if (source.value === undefined || source.value === null) {
    diagnostics.push({
      severity: 'error',
      code: 'empty',
      path: [],
      range: source.rangeOf([]),
      message: 'The config is empty: it needs at least `name`, `model` and `server` (run "Wattbench: New Benchmark Config" for a starter).',
    });
    return { source, diagnostics, points: [] };
  }
  diagnostics.push(...validateAgainstSchema(ConfigSchema as unknown as JsonSchema, source));
  if (hasErrors(diagnostics)) return { source, diagnostics: sortByPosition(diagnostics), points: [] };

  const input = source.value as ConfigInput;
  const resolved = resolveConfig(input, { source, costDefaults: options.costDefaults, fileExists: options.fileExists });
  diagnostics.push(...resolved.diagnostics);
  const expanded = expandSweep(resolved.config, input.sweep, source, MAX_POINTS);
  diagnostics.push(...expanded.diagnostics);
  if (expanded.count > MAX_POINTS)
    diagnostics.push({
      severity: 'error',
      code: 'too-many-points',
      path: ['sweep'],
      range: source.rangeOf(['sweep'], 'key'),
      message: `The sweep expands to ${expanded.count} points (more than ${MAX_POINTS}); split it into several configs.`,
    });
  if (options.extraChecks && !hasErrors(diagnostics)) diagnostics.push(...options.extraChecks(resolved.config, expanded.points, source));
  const ok = !hasErrors(diagnostics);
  return {
    source,
    diagnostics: sortByPosition(diagnostics),
    input,
    config: ok ? resolved.config : undefined,
    points: ok ? expanded.points : [],
  };
}

function sortByPosition(diagnostics: ConfigDiagnostic[]): ConfigDiagnostic[] {
  return [...diagnostics].sort((a, b) => a.range.start.line - b.range.start.line || a.range.start.col - b.range.start.col);
}

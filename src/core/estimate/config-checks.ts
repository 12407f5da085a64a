/**
 * What the catalogs can say about a config, as located warnings: an unknown GPU type or model (with
 * did-you-mean), a power cap outside the GPU's range, a model that does not fit its GPUs. Warnings, not
 * errors: a config may name hardware the catalog does not know and still run.
 */
import type { ConfigDiagnostic } from '../config/diagnostics';
import type { ResolvedConfig, ResolvedPoint } from '../config/model';
import type { ParsedSource } from '../config/source';
import { lookupGpu } from './catalog';
import { gpuFromConfig, modelFromSpec, type ResolvedShapes } from './config-estimate';
import { checkFit } from './memory';

/**
 * `shapes`: what the shape chain (src/core/models/) found for a model the catalog lacks. A model it found gets no
 * warning; without its answer, a model the chain can still look for (a Hub id, a path, model.config) gets an
 * info, not a warning: whether it is found is the estimate's to say, with every place it looked.
 */
export function catalogChecks(config: ResolvedConfig, points: ResolvedPoint[], source: ParsedSource, shapes?: ResolvedShapes): ConfigDiagnostic[] {
  const out: ConfigDiagnostic[] = [];
  const warn = (path: (string | number)[], code: string, message: string, fix?: string, severity: ConfigDiagnostic['severity'] = 'warning') => {
    const range = source.rangeOf(path);
    out.push({ severity, code, message, path, range, fix: fix ? { title: `Change to \`${fix}\``, range, newText: source.asReplacement(range, fix) } : undefined });
  };
  if (config.gpus.type) {
    const gpu = lookupGpu(config.gpus.type);
    if (!gpu.ok) warn(['gpus', 'type'], 'unknown-gpu', `${gpu.message} Without a catalog GPU there is no estimate; runs are not affected.`, gpu.candidates.length === 1 ? gpu.candidates[0] : undefined);
  }
  const direct = modelFromSpec(config.model);
  const resolved = direct.ok ? undefined : shapes?.(config.model);
  const model = resolved ? ({ ok: true, value: resolved } as const) : direct;
  if (!model.ok) {
    const fix = model.candidates.length === 1 ? model.candidates[0] : undefined;
    if (shapes || !chainLooksFurther(config.model)) warn(['model', 'id'], 'unknown-model', model.message, fix);
    else
      warn(['model', 'id'], 'unknown-model', `${config.model.id} is not in Wattbench's built-in catalog${fix ? ` (did you mean "${fix}"?)` : ''}: the estimate looks for its config.json (model.config, the Hugging Face caches, the Hub). Or give model.params_b, layers, hidden and heads.`, fix, 'info');
  }
  const gpu = gpuFromConfig(config);
  if (!gpu.ok || !model.ok) return out;
  const spec = gpu.value;
  const capPath = source.has(['sweep', 'power_cap_w']) ? ['sweep', 'power_cap_w'] : source.has(['gpus', 'power_cap_w']) ? ['gpus', 'power_cap_w'] : ['sweep'];
  const reported = new Set<string>();
  for (const point of points) {
    if (point.powerCapW !== undefined && (point.powerCapW < spec.minLimitW || point.powerCapW > spec.maxLimitW) && !reported.has(`cap${point.powerCapW}`)) {
      reported.add(`cap${point.powerCapW}`);
      warn(capPath, 'cap-out-of-range', `A power cap of ${point.powerCapW} W is outside the ${spec.id}'s range of ${spec.minLimitW}–${spec.maxLimitW} W; the driver will refuse it.`);
    }
    const tokens = point.workload.inputTokens.mean + Math.min(point.workload.outputTokens.mean, point.workload.maxTokens);
    const fit = checkFit(model.value, spec, point.gpuCount, tokens);
    if (!fit.fits && !reported.has(`fit${point.gpuCount}`)) {
      reported.add(`fit${point.gpuCount}`);
      warn(source.has(['gpus', 'count']) ? ['gpus', 'count'] : ['model', 'id'], 'model-does-not-fit', fit.message ?? `${config.model.id} does not fit on ${point.gpuCount}× ${spec.id}.`);
    }
  }
  return out;
}

/** Whether the shape chain has somewhere beyond the catalog to look: model.config, a path, or an org/name Hub id. */
function chainLooksFurther(spec: ResolvedConfig['model']): boolean {
  return spec.config !== undefined || /^[\w.-]+\/[\w.-]+$/.test(spec.id) || /^(\/|\.\.?\/|~)/.test(spec.id) || spec.id.endsWith('.json');
}

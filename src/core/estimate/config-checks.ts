/**
 * What the catalogs can say about a config, as located warnings: an unknown GPU type or model (with
 * did-you-mean), a power cap outside the GPU's range, a model that does not fit its GPUs. Warnings, not
 * errors: a config may name hardware the catalog does not know and still run.
 */
import type { ConfigDiagnostic } from '../config/diagnostics';
import type { ResolvedConfig, ResolvedPoint } from '../config/model';
import type { ParsedSource } from '../config/source';
import { lookupGpu } from './catalog';
import { gpuFromConfig, modelFromSpec } from './config-estimate';
import { checkFit } from './memory';

export function catalogChecks(config: ResolvedConfig, points: ResolvedPoint[], source: ParsedSource): ConfigDiagnostic[] {
  const out: ConfigDiagnostic[] = [];
  const warn = (path: (string | number)[], code: string, message: string, fix?: string) => {
    const range = source.rangeOf(path);
    out.push({ severity: 'warning', code, message, path, range, fix: fix ? { title: `Change to \`${fix}\``, range, newText: source.asReplacement(range, fix) } : undefined });
  };
  if (config.gpus.type) {
    const gpu = lookupGpu(config.gpus.type);
    if (!gpu.ok) warn(['gpus', 'type'], 'unknown-gpu', `${gpu.message} Without a catalog GPU there is no estimate; runs are not affected.`, gpu.candidates.length === 1 ? gpu.candidates[0] : undefined);
  }
  const model = modelFromSpec(config.model);
  if (!model.ok) warn(['model', 'id'], 'unknown-model', model.message, model.candidates.length === 1 ? model.candidates[0] : undefined);
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

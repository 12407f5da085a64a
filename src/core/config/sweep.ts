/** Sweep expansion: lists give a Cartesian product (in file order), explicit points are crossed with it. */
import type { ConfigDiagnostic } from './diagnostics';
import type { PointParams, ResolvedConfig, ResolvedPoint, ResolvedWorkload } from './model';
import { resolveLength, resolveSlo } from './resolve';
import { SWEEPABLE_KEYS, type ConfigInput, type LengthInput, type SloInput, type SweepKey } from './schema';
import type { ParsedSource } from './source';
import { parsePower } from './units';

type SweepInput = NonNullable<ConfigInput['sweep']>;

export function expandSweep(
  config: ResolvedConfig,
  sweep: SweepInput | undefined,
  source?: ParsedSource,
  maxPoints = Infinity,
): { points: ResolvedPoint[]; diagnostics: ConfigDiagnostic[]; count: number } {
  const dimensions = Object.entries(sweep ?? {}).filter(([key]) => key !== 'points') as [SweepKey, unknown[]][];
  // Counted before it is built: three lists of 100 values would otherwise make a million points to refuse.
  const count = dimensions.reduce((n, [, values]) => n * values.length, 1) * (sweep?.points ? (sweep.points as unknown[]).length : 1);
  if (count > maxPoints) return { points: [], diagnostics: [], count };
  let combos: PointParams[] = [{}];
  for (const [key, values] of dimensions) combos = combos.flatMap((combo) => values.map((value) => ({ ...combo, [key]: value })));
  // A point's `slo` is what it is judged by, not a parameter: it stays out of the id, the label and params.
  let slos: (SloInput | undefined)[] = [];
  if (sweep?.points) {
    const explicit = sweep.points.map(({ slo, ...params }) => ({ slo, params: params as PointParams }));
    slos = explicit.flatMap((point) => combos.map(() => point.slo));
    combos = explicit.flatMap((point) => combos.map((combo) => ({ ...combo, ...point.params })));
  }

  const diagnostics: ConfigDiagnostic[] = [];
  const seen = new Map<string, number>();
  const points = combos.map((params, index): ResolvedPoint => {
    let id = pointId(params);
    const previous = seen.get(id);
    if (previous !== undefined) {
      if (source)
        diagnostics.push({
          severity: 'warning',
          code: 'duplicate-point',
          path: ['sweep'],
          range: source.rangeOf(['sweep'], 'key'),
          message: `Sweep points ${previous + 1} and ${index + 1} have the same parameters (${pointLabel(params)}); the second is measured again as a repeat.`,
        });
      id = `${id}-${index + 1}`;
    }
    seen.set(id, index);
    return {
      id,
      label: pointLabel(params),
      index,
      params,
      workload: applyToWorkload(config.workload, params),
      gpuCount: (params.gpu_count as number | undefined) ?? config.gpus.count,
      powerCapW: params.power_cap_w !== undefined ? parsePower(params.power_cap_w as number | string) : config.gpus.powerCapW,
      ...slo(resolveSlo(slos[index], config.slo)),
    };
  });
  return { points, diagnostics, count };
}

function slo(objectives: ReturnType<typeof resolveSlo>): { slo?: NonNullable<ReturnType<typeof resolveSlo>> } {
  return objectives ? { slo: objectives } : {};
}

function applyToWorkload(base: ResolvedWorkload, params: PointParams): ResolvedWorkload {
  const w: ResolvedWorkload = { ...base };
  if (params.concurrency !== undefined) {
    w.concurrency = params.concurrency as number;
    w.requestRate = undefined;
  }
  if (params.request_rate !== undefined) {
    w.requestRate = params.request_rate as number;
    w.concurrency = undefined;
  }
  if (params.max_tokens !== undefined) w.maxTokens = params.max_tokens as number;
  if (params.num_prompts !== undefined) w.numPrompts = params.num_prompts as number;
  if (params.input_tokens !== undefined) w.inputTokens = resolveLength(params.input_tokens as LengthInput, 256);
  if (params.output_tokens !== undefined) w.outputTokens = resolveLength(params.output_tokens as LengthInput, 256);
  // A swept max_tokens bounds the generated length, as it would on a real server.
  if (params.max_tokens !== undefined && params.output_tokens === undefined && w.outputTokens.mean > w.maxTokens)
    w.outputTokens = { dist: 'fixed', mean: w.maxTokens };
  if (params.max_tokens !== undefined && params.output_tokens === undefined && base.outputTokens.dist === 'fixed' && base.outputTokens.mean === base.maxTokens)
    w.outputTokens = { dist: 'fixed', mean: w.maxTokens };
  if (params.temperature !== undefined) w.temperature = params.temperature as number;
  if (params.dataset !== undefined)
    w.dataset = params.dataset === 'synthetic'
      ? { kind: 'synthetic' }
      : { kind: 'file', path: params.dataset as string, format: base.dataset.kind === 'file' ? base.dataset.format : 'auto' };
  return w;
}

const SHORT: Record<SweepKey, string> = {
  concurrency: 'concurrency',
  request_rate: 'rate',
  max_tokens: 'max_tokens',
  num_prompts: 'prompts',
  input_tokens: 'input',
  output_tokens: 'output',
  temperature: 'temperature',
  dataset: 'dataset',
  power_cap_w: 'cap',
  gpu_count: 'gpus',
};

function ordered(params: PointParams): [SweepKey, unknown][] {
  return SWEEPABLE_KEYS.filter((k) => params[k] !== undefined).map((k) => [k, params[k]]);
}

function valueText(key: SweepKey, value: unknown): string {
  if (key === 'power_cap_w') return `${parsePower(value as number | string)}W`;
  if (key === 'dataset') return String(value).replace(/^.*\//, '').replace(/\.(jsonl?|json)$/, '');
  if (typeof value === 'object' && value !== null) {
    const d = value as { mean: number; std?: number };
    return d.std ? `${d.mean}±${d.std}` : `${d.mean}`;
  }
  return String(value);
}

export function pointId(params: PointParams): string {
  const parts = ordered(params).map(([key, value]) => `${SHORT[key]}-${valueText(key, value)}`);
  return parts.length ? parts.join('_').replace(/[^A-Za-z0-9._±-]+/g, '-').replace(/±/g, 'pm') : 'default';
}

export function pointLabel(params: PointParams): string {
  const parts = ordered(params).map(([key, value]) => {
    if (key === 'power_cap_w') return `cap ${parsePower(value as number | string)} W`;
    if (key === 'request_rate') return `${value} req/s`;
    return `${SHORT[key]} ${valueText(key, value)}`;
  });
  return parts.length ? parts.join(' · ') : 'single point';
}

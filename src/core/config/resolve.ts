/** Turns a schema-valid config into a ResolvedConfig and reports what the schema cannot express. */
import type { ConfigDiagnostic } from './diagnostics';
import type { CostSettings, LengthDist, ModelSpec, ResolvedConfig, ResolvedTarget, ResolvedWorkload } from './model';
import { DEFAULT_COST } from './model';
import type { ConfigInput, LengthInput, TargetInput, WorkloadInput } from './schema';
import type { ConfigPath, ParsedSource } from './source';
import { parseDuration, parsePower } from './units';

export const DEFAULT_BASE_URL = 'http://127.0.0.1:8000/v1';

export interface ResolveContext {
  source: ParsedSource;
  /** Cost settings from the user's settings; the config's `cost` wins over them. */
  costDefaults?: Partial<CostSettings>;
  /** Whether a workspace file exists, for dataset paths (relative to the config). */
  fileExists?: (relativePath: string) => boolean;
}

export function resolveLength(input: LengthInput | undefined, fallback: number): LengthDist {
  if (input === undefined) return { dist: 'fixed', mean: fallback };
  if (typeof input === 'number') return { dist: 'fixed', mean: input };
  return { dist: input.dist ?? (input.std ? 'normal' : 'fixed'), mean: input.mean, std: input.std, min: input.min, max: input.max };
}

export function resolveTarget(input: TargetInput | undefined): ResolvedTarget {
  if (input === undefined || input === 'local') return { kind: 'local' };
  if (typeof input === 'string') return { kind: 'ssh', host: input };
  if (Array.isArray(input)) return input.length === 1 && input[0] !== 'local' ? { kind: 'ssh', host: input[0] } : { kind: 'hosts', hosts: input };
  const s = input.slurm;
  return {
    kind: 'slurm',
    slurm: {
      login: s.login,
      partition: s.partition,
      nodes: s.nodes ?? 1,
      gpusPerNode: s.gpus_per_node,
      timeLimitS: s.time_limit === undefined ? undefined : parseDuration(s.time_limit),
      account: s.account,
      sbatchOptions: s.sbatch_options ?? [],
      setup: s.setup ?? [],
      workdir: s.workdir,
    },
  };
}

export function resolveWorkload(w: WorkloadInput = {}): ResolvedWorkload {
  const outputTokens = resolveLength(w.output_tokens, w.max_tokens ?? 256);
  const dataset = w.dataset === undefined || w.dataset === 'synthetic'
    ? ({ kind: 'synthetic' } as const)
    : ({ kind: 'file', path: w.dataset, format: w.format ?? 'auto' } as const);
  return {
    dataset,
    inputTokens: resolveLength(w.input_tokens, 256),
    outputTokens,
    numPrompts: w.num_prompts ?? 100,
    maxTokens: w.max_tokens ?? Math.max(outputTokens.max ?? 0, Math.ceil(outputTokens.mean)),
    concurrency: w.concurrency ?? (w.request_rate === undefined ? 1 : undefined),
    requestRate: w.request_rate,
    warmup: w.warmup ?? 2,
    temperature: w.temperature ?? 0,
    topP: w.top_p,
    ignoreEos: w.ignore_eos ?? true,
    timeLimitS: w.time_limit === undefined ? undefined : parseDuration(w.time_limit),
    command: w.command,
    seed: w.seed ?? 1,
  };
}

function resolveModel(m: ConfigInput['model']): ModelSpec {
  return {
    id: m.id,
    paramsB: m.params_b,
    layers: m.layers,
    hidden: m.hidden,
    heads: m.heads,
    kvHeads: m.kv_heads,
    intermediate: m.intermediate,
    vocab: m.vocab,
    dtype: m.dtype,
    experts: m.experts,
    expertsPerToken: m.experts_per_token,
    activeParamsB: m.active_params_b,
  };
}

export function resolveConfig(input: ConfigInput, ctx: ResolveContext): { config: ResolvedConfig; diagnostics: ConfigDiagnostic[] } {
  const diagnostics: ConfigDiagnostic[] = [];
  const warn = (path: ConfigPath, code: string, message: string, severity: 'error' | 'warning' = 'warning') =>
    diagnostics.push({ severity, code, message, path: [...path], range: ctx.source.rangeOf(path, 'key') });

  const server = input.server ?? {};
  const workload = resolveWorkload(input.workload);
  const target = resolveTarget(input.target);

  if (!input.server && !workload.command)
    warn(['model'], 'no-server', 'No `server` given: add `server: { sim: true }` for the simulated server, `server.command` to launch one, or `server.base_url` for one already running.', 'error');
  if (server.sim && server.command)
    warn(['server', 'command'], 'sim-and-command', '`server.sim: true` starts the built-in simulated server; remove `server.command` or set `sim: false`.', 'error');
  if (input.workload?.concurrency !== undefined && input.workload?.request_rate !== undefined)
    warn(['workload', 'request_rate'], 'rate-and-concurrency', 'Set either `workload.concurrency` or `workload.request_rate`, not both.', 'error');
  const sweep = input.sweep ?? {};
  const sweepsConcurrency = sweep.concurrency !== undefined || sweep.points?.some((p) => p.concurrency !== undefined);
  const sweepsRate = sweep.request_rate !== undefined || sweep.points?.some((p) => p.request_rate !== undefined);
  if (sweepsConcurrency && sweepsRate)
    warn(['sweep'], 'rate-and-concurrency', 'A sweep may vary `concurrency` or `request_rate`, not both: a point is driven by one of them.', 'error');

  const gpus = input.gpus ?? {};
  if (gpus.indices && gpus.count !== undefined && gpus.indices.length !== gpus.count)
    warn(['gpus', 'indices'], 'gpu-count-mismatch', `\`gpus.indices\` lists ${gpus.indices.length} GPU(s) but \`gpus.count\` is ${gpus.count}; make them agree or drop \`count\`.`, 'error');
  const outputMax = workload.outputTokens.max ?? workload.outputTokens.mean;
  if (input.workload?.max_tokens !== undefined && outputMax > workload.maxTokens)
    warn(['workload', 'output_tokens'], 'output-over-max', `\`output_tokens\` asks for up to ${outputMax} tokens but \`max_tokens\` is ${workload.maxTokens}; requests will stop at ${workload.maxTokens}.`);
  if (workload.dataset.kind === 'file' && ctx.fileExists && !ctx.fileExists(workload.dataset.path))
    warn(['workload', 'dataset'], 'dataset-missing', `Dataset file \`${workload.dataset.path}\` not found (paths are relative to this config); use "synthetic" or fix the path.`, 'error');
  for (const [i, path] of (sweep.dataset ?? []).entries())
    if (path !== 'synthetic' && ctx.fileExists && !ctx.fileExists(path))
      diagnostics.push({ severity: 'error', code: 'dataset-missing', path: ['sweep', 'dataset', i], range: ctx.source.rangeOf(['sweep', 'dataset', i]), message: `Dataset file \`${path}\` not found (paths are relative to this config).` });
  if (target.kind === 'slurm' && target.slurm.gpusPerNode && gpus.count && gpus.count > target.slurm.gpusPerNode * target.slurm.nodes)
    warn(['gpus', 'count'], 'slurm-too-few-gpus', `\`gpus.count\` is ${gpus.count} but the Slurm allocation has ${target.slurm.nodes} × ${target.slurm.gpusPerNode} GPUs.`, 'error');

  const telemetrySource = input.telemetry?.source ?? (server.sim ? 'sim' : 'auto');
  if (server.sim && telemetrySource !== 'sim')
    warn(['telemetry', 'source'], 'sim-needs-sim-telemetry', 'The simulated server has no real GPU behind it: use `telemetry.source: sim` (or remove the key).', 'error');

  const cost: CostSettings = {
    ...DEFAULT_COST,
    ...ctx.costDefaults,
    ...definedOnly({
      usdPerKwh: input.cost?.usd_per_kwh,
      gco2PerKwh: input.cost?.gco2_per_kwh,
      pue: input.cost?.pue,
      usdPerGpuHour: input.cost?.usd_per_gpu_hour,
    }),
  };

  const config: ResolvedConfig = {
    name: input.name,
    description: input.description,
    target,
    server: {
      sim: server.sim ?? false,
      command: server.command,
      baseUrl: server.base_url ?? DEFAULT_BASE_URL,
      api: server.api ?? 'completions',
      servedModel: server.served_model ?? input.model.id,
      engine: server.engine ?? (server.sim ? 'sim' : guessEngine(server.command)),
      readyTimeoutS: server.ready_timeout === undefined ? 600 : parseDuration(server.ready_timeout)!,
      env: server.env ?? {},
    },
    model: resolveModel(input.model),
    gpus: {
      type: gpus.type,
      count: gpus.indices?.length ?? gpus.count ?? 1,
      indices: gpus.indices,
      powerCapW: gpus.power_cap_w === undefined ? undefined : parsePower(gpus.power_cap_w),
    },
    workload,
    telemetry: {
      source: telemetrySource,
      intervalS: input.telemetry?.interval === undefined ? 0.1 : parseDuration(input.telemetry.interval)!,
      idleBaselineS: input.telemetry?.idle_baseline === undefined ? 5 : parseDuration(input.telemetry.idle_baseline)!,
    },
    repeats: input.repeats ?? 1,
    cost,
  };
  if (config.telemetry.intervalS < 0.01)
    warn(['telemetry', 'interval'], 'interval-too-short', 'Sampling faster than every 10 ms costs more than it measures; use 100ms (the default) or more.');
  return { config, diagnostics };
}

function guessEngine(command: string | undefined): string {
  if (!command) return 'unknown';
  const known = ['vllm', 'sglang', 'text-generation-launcher', 'llama-server', 'ollama', 'trtllm'];
  const hit = known.find((k) => command.includes(k));
  return hit === 'text-generation-launcher' ? 'tgi' : hit === 'llama-server' ? 'llama.cpp' : hit ?? 'unknown';
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Turns a schema-valid config into a ResolvedConfig and reports what the schema cannot express. */
import type { ConfigDiagnostic } from './diagnostics';
import { ENGINE_NAMES, ENGINE_PRESETS, guessEngine, lookupEngine, missesV1, planEngine } from './engines';
import type { CostSettings, LengthDist, ModelSpec, ResolvedConfig, ResolvedTarget, ResolvedWorkload, SloObjectives } from './model';
import { DEFAULT_COST, DEFAULT_SLO_PERCENTILE } from './model';
import type { ConfigInput, LengthInput, SloInput, TargetInput, WorkloadInput } from './schema';
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
    clientProcesses: w.client_processes,
    ignoreEos: w.ignore_eos ?? true,
    timeLimitS: w.time_limit === undefined ? undefined : parseDuration(w.time_limit),
    command: w.command,
    tool: w.tool,
    toolArgs: w.tool_args ?? [],
    seed: w.seed ?? 1,
  };
}

/** The objectives of `input` over those of `base` (a sweep point's own over the config's). */
export function resolveSlo(input: SloInput | undefined, base?: SloObjectives): SloObjectives | undefined {
  if (!input) return base;
  const seconds = (v: number | string | undefined) => (v === undefined ? undefined : parseDuration(v));
  return {
    ...base,
    ...definedOnly({ ttftS: seconds(input.ttft), itlS: seconds(input.itl), tpotS: seconds(input.tpot), e2eS: seconds(input.e2e) }),
    percentile: input.percentile ?? base?.percentile ?? DEFAULT_SLO_PERCENTILE,
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
    config: m.config,
    headDim: m.head_dim,
    kvLoraRank: m.kv_lora_rank,
    qLoraRank: m.q_lora_rank,
    qkRopeHeadDim: m.qk_rope_head_dim,
    qkNopeHeadDim: m.qk_nope_head_dim,
    vHeadDim: m.v_head_dim,
    sharedExperts: m.shared_experts,
    moeIntermediate: m.moe_intermediate,
    denseLayers: m.dense_layers,
    slidingWindow: m.sliding_window,
    slidingLayers: m.sliding_layers,
    tiedEmbeddings: m.tied_embeddings,
  };
}

export function resolveConfig(input: ConfigInput, ctx: ResolveContext): { config: ResolvedConfig; diagnostics: ConfigDiagnostic[] } {
  const diagnostics: ConfigDiagnostic[] = [];
  const warn = (path: ConfigPath, code: string, message: string, severity: 'error' | 'warning' | 'info' = 'warning') =>
    diagnostics.push({ severity, code, message, path: [...path], range: ctx.source.rangeOf(path, 'key') });

  const server = input.server ?? {};
  const workload = resolveWorkload(input.workload);
  const target = resolveTarget(input.target);

  if (!input.server && !workload.command)
    warn(['model'], 'no-server', 'No `server` given: add `server: { sim: true }` for the simulated server, `server.command` to launch one, or `server.base_url` for one already running.', 'error');
  if (workload.tool && workload.command)
    warn(['workload', 'tool'], 'tool-and-command', 'Set either `workload.tool` or `workload.command`, not both.', 'error');
  if (workload.toolArgs.length && !workload.tool)
    warn(['workload', 'tool_args'], 'tool-args-without-tool', '`workload.tool_args` is only used with `workload.tool`.');
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

  const engine = resolveEngine(server, workload.ignoreEos, workload.tool, warn);

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
      engine: engine.engine,
      readyTimeoutS: server.ready_timeout === undefined ? 600 : parseDuration(server.ready_timeout)!,
      env: server.env ?? {},
      apiKeyEnv: server.api_key_env ?? (ENGINE_PRESETS as Record<string, { apiKeyEnv?: string }>)[engine.engine]?.apiKeyEnv,
      requestFields: engine.requestFields,
      probePaths: engine.probePaths,
      metricsUrl: engine.metricsUrl,
      metrics: engine.metrics as Record<string, string[]>,
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
    ...(input.slo && { slo: resolveSlo(input.slo) }),
  };
  if (config.telemetry.intervalS < 0.01)
    warn(['telemetry', 'interval'], 'interval-too-short', 'Sampling faster than every 10 ms costs more than it measures; use 100ms (the default) or more.');
  return { config, diagnostics };
}

type Warn = (path: ConfigPath, code: string, message: string, severity?: 'error' | 'warning' | 'info') => void;

/** The engine preset (named, else guessed) and what it puts into the job; its problems as diagnostics. */
function resolveEngine(server: NonNullable<ConfigInput['server']>, ignoreEos: boolean, tool: string | undefined, warn: Warn) {
  const baseUrl = server.base_url ?? DEFAULT_BASE_URL;
  let preset = server.sim ? ENGINE_PRESETS.sim : ENGINE_PRESETS[guessEngine(server.command, server.base_url)];
  if (server.engine !== undefined) {
    const named = lookupEngine(server.engine);
    if (named) preset = named;
    else {
      preset = ENGINE_PRESETS.generic;
      warn(['server', 'engine'], 'unknown-engine', `Unknown engine "${server.engine}": treated as a generic OpenAI-compatible server (no readiness path, metrics or length fields of its own). Known engines: ${ENGINE_NAMES.filter((n) => n !== 'sim').join(', ')}.`, 'info');
    }
  }
  const plan = planEngine(preset, { baseUrl, command: server.command, sim: server.sim ?? false }, ignoreEos);
  const at = server.engine !== undefined ? ['server', 'engine'] : server.command !== undefined ? ['server', 'command'] : ['server'];
  for (const note of plan.notes) warn(at, note.code, note.message, note.severity);
  if (server.api === 'generate') {
    // TGI's native route: the simulated server, the benchmark tools and other engines speak only the OpenAI routes
    if (server.sim) warn(['server', 'api'], 'api-generate-sim', '`server.api: generate` is TGI\'s native /generate_stream: the simulated server serves only the OpenAI routes (completions, chat).', 'error');
    else if (preset.name !== 'tgi' && preset.name !== 'generic')
      warn(['server', 'api'], 'api-generate-not-tgi', `\`server.api: generate\` is TGI's native /generate_stream, which ${preset.label} does not serve: use completions or chat.`, 'error');
    if (tool) warn(['server', 'api'], 'api-generate-tool', '`workload.tool` drives the OpenAI routes (completions, chat): it cannot run against `server.api: generate`.', 'error');
  } else if (!server.sim && server.base_url !== undefined && missesV1(preset, server.base_url))
    warn(['server', 'base_url'], 'base-url-no-v1', `${preset.label} serves the OpenAI API under /v1: \`${server.base_url}\` would send requests to its native routes (${server.base_url.replace(/\/+$/, '')}/completions). Use \`${server.base_url.replace(/\/+$/, '')}/v1\`.`);
  return plan;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

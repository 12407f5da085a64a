/** The config after validation: units converted, defaults applied, one entry per sweep point. */
import type { SweepKey } from './schema';

export interface LengthDist {
  dist: 'fixed' | 'normal' | 'uniform' | 'lognormal';
  mean: number;
  std?: number;
  min?: number;
  max?: number;
}

export type Dataset = { kind: 'synthetic' } | { kind: 'file'; path: string; format: 'auto' | 'alpaca' | 'gsm8k' | 'sharegpt' | 'prompts' };

/** A benchmark tool the agent can drive as the workload. */
export type WorkloadTool = 'vllm-bench' | 'guidellm' | 'aiperf';

export interface ResolvedWorkload {
  dataset: Dataset;
  inputTokens: LengthDist;
  outputTokens: LengthDist;
  numPrompts: number;
  maxTokens: number;
  concurrency?: number;
  requestRate?: number;
  warmup: number;
  temperature: number;
  topP?: number;
  clientProcesses?: number;
  ignoreEos: boolean;
  timeLimitS?: number;
  command?: string;
  /** Run this benchmark tool as the workload (its own load and timings) instead of HTTP load or `command`. */
  tool?: WorkloadTool;
  toolArgs: string[];
  seed: number;
}

export interface SlurmTargetSpec {
  login: string;
  partition?: string;
  nodes: number;
  gpusPerNode?: number;
  timeLimitS?: number;
  account?: string;
  sbatchOptions: string[];
  setup: string[];
  workdir?: string;
}

export type ResolvedTarget =
  | { kind: 'local' }
  | { kind: 'ssh'; host: string }
  | { kind: 'hosts'; hosts: string[] }
  | { kind: 'slurm'; slurm: SlurmTargetSpec };

export interface ResolvedServer {
  sim: boolean;
  command?: string;
  baseUrl: string;
  api: 'completions' | 'chat' | 'generate';
  servedModel: string;
  /** An engine preset's name (`src/core/config/engines.ts`): what calibration is keyed on. */
  engine: string;
  readyTimeoutS: number;
  env: Record<string, string>;
  /** The host's environment variable holding the API key (sent as `Authorization: Bearer`); absent: none. */
  apiKeyEnv?: string;
  /** The preset's effect, for the job: fields merged into every request (null: the workload's ignore_eos as is). */
  requestFields: Record<string, unknown> | null;
  /** Readiness paths tried in order (`/x` from the server's root, `x` under base_url); null: the agent's default. */
  probePaths: string[] | null;
  /** The engine's Prometheus metrics, scraped into `engine` events; null: none. */
  metricsUrl: string | null;
  /** Normalised name (running, waiting, kv_cache_usage, preemptions_total) → the engine's metric names. */
  metrics: Record<string, string[]>;
}

export interface ModelSpec {
  id: string;
  paramsB?: number;
  layers?: number;
  hidden?: number;
  heads?: number;
  kvHeads?: number;
  intermediate?: number;
  vocab?: number;
  dtype?: 'fp32' | 'bf16' | 'fp16' | 'fp8' | 'int8' | 'int4';
  experts?: number;
  expertsPerToken?: number;
  activeParamsB?: number;
  /** A local config.json or model directory, as written (relative to the config file). */
  config?: string;
  headDim?: number;
  kvLoraRank?: number;
  qLoraRank?: number;
  qkRopeHeadDim?: number;
  qkNopeHeadDim?: number;
  vHeadDim?: number;
  sharedExperts?: number;
  moeIntermediate?: number;
  denseLayers?: number;
  slidingWindow?: number;
  slidingLayers?: number;
  tiedEmbeddings?: boolean;
}

export interface CostSettings {
  usdPerKwh: number;
  gco2PerKwh: number;
  pue: number;
  usdPerGpuHour: number;
}

/** Latency objectives per request, in seconds; `percentile`: the share (%) of requests that must meet each. */
export interface SloObjectives {
  ttftS?: number;
  itlS?: number;
  tpotS?: number;
  e2eS?: number;
  percentile: number;
}

export const DEFAULT_SLO_PERCENTILE = 99;

export interface TelemetrySettings {
  source: 'auto' | 'nvml' | 'nvidia-smi' | 'amd-smi' | 'sim';
  intervalS: number;
  idleBaselineS: number;
}

export interface ResolvedConfig {
  name: string;
  description?: string;
  target: ResolvedTarget;
  server: ResolvedServer;
  model: ModelSpec;
  gpus: { type?: string; count: number; indices?: number[]; powerCapW?: number };
  workload: ResolvedWorkload;
  telemetry: TelemetrySettings;
  repeats: number;
  cost: CostSettings;
  /** The config's `slo`; each point's own (`sweep.points[].slo`) is on the point. */
  slo?: SloObjectives;
}

export type PointParams = Partial<Record<SweepKey, unknown>>;

export interface ResolvedPoint {
  /** Derived from the parameter values, so it survives reordering and edits elsewhere in the file. */
  id: string;
  label: string;
  index: number;
  params: PointParams;
  workload: ResolvedWorkload;
  gpuCount: number;
  powerCapW?: number;
  /** The config's `slo` with the point's own objectives over it. */
  slo?: SloObjectives;
}

/**
 * Used when neither the config nor the settings say: round figures, meant to be replaced. PUE 1 counts
 * the GPUs' own energy, which is what Wattbench measures. The one place cost defaults live.
 */
export const DEFAULT_COST: CostSettings = { usdPerKwh: 0.15, gco2PerKwh: 400, pue: 1.0, usdPerGpuHour: 2.5 };

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
  ignoreEos: boolean;
  timeLimitS?: number;
  command?: string;
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
  api: 'completions' | 'chat';
  servedModel: string;
  engine: string;
  readyTimeoutS: number;
  env: Record<string, string>;
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
}

export interface CostSettings {
  usdPerKwh: number;
  gco2PerKwh: number;
  pue: number;
  usdPerGpuHour: number;
}

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
}

/**
 * Used when neither the config nor the settings say: round figures, meant to be replaced. PUE 1 counts
 * the GPUs' own energy, which is what Wattbench measures. The one place cost defaults live.
 */
export const DEFAULT_COST: CostSettings = { usdPerKwh: 0.15, gco2PerKwh: 400, pue: 1.0, usdPerGpuHour: 2.5 };

/**
 * What a reader of another tool's result file gives back: the tool's figures, converted to Wattbench's units
 * (seconds, joules) and names, before they become a stored run (`save.ts`). In memory, so camelCase.
 */

/** The tools whose result files Wattbench reads. */
export type ToolId = 'vllm' | 'guidellm' | 'aiperf' | 'inference-perf' | 'mlenergy';

export const TOOL_NAMES: Record<ToolId, string> = {
  vllm: 'vLLM bench serve',
  guidellm: 'GuideLLM',
  aiperf: 'NVIDIA AIPerf',
  'inference-perf': 'inference-perf',
  mlenergy: 'ML.ENERGY benchmark',
};

/** A latency distribution as far as the file gives it, in seconds; a missing figure is left out, never guessed. */
export interface Stat {
  n?: number;
  mean?: number;
  min?: number;
  max?: number;
  p50?: number;
  p90?: number;
  p99?: number;
}

export interface ImportedEnergy {
  /** `counter`: a GPU energy counter's difference (NVML, DCGM); `integral`: power samples integrated. */
  method: 'counter' | 'integral';
  totalJ: number;
  perGpu: { gpu: string; energyJ: number }[];
  /** The time the energy was measured over. */
  durationS: number;
}

export interface ImportedPoint {
  id: string;
  label: string;
  /** The load as the file states it (concurrency, request_rate, num_prompts, input/output lengths, …). */
  params: Record<string, unknown>;
  status: 'ok' | 'error';
  /** Epoch seconds, where the file has a clock time. */
  start?: number;
  durationS: number;
  requests: { ok: number; errors: number };
  tokens: { input: number; output: number };
  throughput: { outputTokensPerS: number; totalTokensPerS: number; requestsPerS: number };
  latency: { ttft?: Stat; itl?: Stat; e2e?: Stat };
  tokensFrom?: 'usage' | 'chunks' | 'mixed' | 'reported';
  /** Over the whole point; absent when the file has no energy. */
  energy?: ImportedEnergy;
  /** A window the tool itself calls steady (ML.ENERGY), with its own energy and tokens. */
  steady?: { start: number; end: number; durationS: number; energyJ: number; outputTokens: number };
}

export interface ImportedRun {
  tool: ToolId;
  /** The tool's version where the file says it. */
  version?: string;
  /** The files it was read from (base names), in the order given. */
  files: string[];
  /** The run's name in the Runs tree (its `config_name`). */
  name: string;
  model?: string;
  /** ISO time the run started, where the file says it. */
  started?: string;
  /** The host, where the file names one. */
  host?: string;
  gpus?: { index: number; name: string }[];
  /** Total power of all GPUs over time, where the file recorded it (ML.ENERGY's Zeus timeline). */
  power?: { t: number; w: number }[];
  points: ImportedPoint[];
  /** How the tool's figures differ from Wattbench's own, and what was recomputed or copied. */
  notes: string[];
}

/** A file that cannot be imported: the message names the file and, where one is to blame, the field. */
export class ImportError extends Error {
  constructor(
    readonly file: string,
    readonly field: string | undefined,
    readonly reason: string,
  ) {
    super(`${file}: ${field ? `${field}: ` : ''}${reason}`);
    this.name = 'ImportError';
  }
}

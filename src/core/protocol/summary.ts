/**
 * What `summary.json` holds: every figure of a run, per point and in total, as the summary computes it
 * from the agent's events (docs/protocol.md, "summary.json"). Field names are snake_case as on disk.
 * Declared here, apart from the code that computes them, so the store, the CSV export and the webview
 * read the format without depending on how it is made.
 */
import type { GpuInfo } from './events';

/** Latency percentiles in seconds, from the fixed-memory histogram. */
export interface Percentiles {
  n: number;
  mean: number;
  min: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
}

export type EnergyMethod = 'counter' | 'integral' | 'mixed' | 'none';

export interface GpuEnergy {
  gpu: string;
  energy_j: number;
  avg_power_w: number;
  peak_power_w: number;
}

export interface EnergySummary {
  method: EnergyMethod;
  total_j: number;
  /** What the GPUs would have drawn idle over the same time (idle baseline × duration). */
  idle_j: number;
  dynamic_j: number;
  avg_power_w: number;
  peak_power_w: number;
  per_gpu: GpuEnergy[];
}

export interface PointSummary {
  point: string;
  status: 'ok' | 'error' | 'cancelled' | 'timeout' | 'running';
  window: { start: number; end: number; duration_s: number };
  /** From the start of measurement until the last request was sent: every slot busy, no drain. */
  steady: { start: number; end: number; duration_s: number; output_tokens_per_s: number; avg_power_w: number; j_per_output_token: number } | null;
  /** `throttled`: refused with HTTP 429/503, counted in `errors` too. */
  requests: { ok: number; errors: number; warmup: number; throttled?: number };
  /**
   * How output tokens were counted: the engine's `usage`, streamed chunks (one token each: an engine that
   * sends several per chunk is undercounted), `mixed`, or `reported` by a command workload.
   */
  tokens_from?: 'usage' | 'chunks' | 'mixed' | 'reported';
  tokens: { input: number; output: number };
  throughput: { output_tokens_per_s: number; total_tokens_per_s: number; requests_per_s: number };
  latency: { ttft_s?: Percentiles; itl_s?: Percentiles; e2e_s?: Percentiles };
  energy: EnergySummary;
  j_per_output_token: number;
  j_per_response: number;
  cost: { usd: number; gco2: number };
  /** HELM's form fitted to this point's requests: latency ≈ alpha + beta·(output_tokens − 1). */
  idealized: { alpha_s: number; beta_s: number; n: number } | null;
  power_cap_w?: number;
  /** With `repeats: N` (N > 1): each repeat's own window and figures; the point's figures are over all of them. */
  repeats?: RepeatSummary[];
  spread?: RepeatSpread;
  /** Against the config's `slo` (absent without one). */
  slo?: SloSummary;
  /** The engine's own metrics over the measure window (absent when it exported none). */
  engine?: EngineSummary;
  /** How the agent's load generator sent the load and kept up (absent for command workloads and older runs). */
  client?: ClientSummary;
}

/**
 * From the agent's `point` end events (over every repeat): requests in flight (the configured concurrency is
 * the aim), the request rate achieved, how late the load generator's loops ran and whether that makes the
 * point's TTFT and inter-token figures suspect (`behind`), how arrivals were stamped and from how many processes.
 */
export interface ClientSummary {
  /** What the point asked for. */
  concurrency?: number;
  request_rate?: number;
  inflight_max?: number;
  inflight_mean?: number;
  request_rate_achieved?: number;
  lag_ms?: { p50: number; p99: number; max: number };
  behind: boolean;
  arrival_stamps?: 'kernel' | 'loop' | 'mixed';
  processes?: number;
  /** The worst repeat's share of token chunks read together with the one before. */
  shared_reads?: number;
  /** The worst repeat's share of requests whose first token was read together with the second. */
  first_shared_reads?: number;
}

/**
 * From the agent's `engine` events inside the measure window: mean and max of the engine's running and
 * waiting requests and KV-cache usage (0..1), and the preemptions in the window (the counter's rise).
 */
export interface EngineSummary {
  scrapes: number;
  running?: { mean: number; max: number };
  waiting?: { mean: number; max: number };
  kv_cache_usage?: { mean: number; max: number };
  preemptions?: number;
}

/** The objectives as summary.json holds them: seconds, and the share (%) of requests that must meet each. */
export interface SloObjectivesOnDisk {
  ttft_s?: number;
  itl_s?: number;
  tpot_s?: number;
  e2e_s?: number;
  percentile: number;
}

export type SloMetric = 'ttft' | 'itl' | 'tpot' | 'e2e';

export interface SloObjectiveResult {
  limit_s: number;
  /** Share of measured requests meeting this objective (errored ones, and ones without the metric, miss). */
  attainment: number;
  /** The `percentile` of this metric over the successful requests (from the fixed-memory histogram); null when none had it. */
  value_s: number | null;
  /** attainment ≥ percentile / 100: the percentile of the metric, errors counted as misses, is within the limit. */
  met: boolean;
}

/**
 * A point against its SLO. A request is good when it meets every objective (vLLM's `bench serve --goodput`);
 * goodput counts good requests over the point's measured time; energy per SLO token is the point's
 * energy over the output tokens of good requests.
 */
export interface SloSummary {
  objectives: SloObjectivesOnDisk;
  /** Measured requests: successful and errored. */
  requests: number;
  good_requests: number;
  good_output_tokens: number;
  /** good_requests / requests. */
  attainment: number;
  goodput_requests_per_s: number;
  goodput_output_tokens_per_s: number;
  j_per_slo_token: number;
  j_per_slo_request: number;
  /** Every objective met at the percentile. */
  met: boolean;
  per_objective: Partial<Record<SloMetric, SloObjectiveResult>>;
}

export interface RepeatSummary {
  repeat: number;
  duration_s: number;
  energy_j: number;
  requests: number;
  output_tokens: number;
  output_tokens_per_s: number;
  j_per_output_token: number;
}

export type SpreadOf = { min: number; max: number; relative: number } | null;

export interface RepeatSpread {
  j_per_output_token: SpreadOf;
  output_tokens_per_s: SpreadOf;
  duration_s: SpreadOf;
}

export interface RunSummary {
  run_id: string;
  status: 'ok' | 'error' | 'cancelled' | 'running';
  simulated: boolean;
  hosts: string[];
  gpus: (GpuInfo & { node?: string })[];
  telemetry: { source: string; interval_s: number; achieved_interval_s: number | null; samples: number };
  idle_baseline: { duration_s: number; per_gpu_w: Record<string, number>; total_w: number } | null;
  points: PointSummary[];
  total: {
    duration_s: number;
    requests: number;
    output_tokens: number;
    energy: EnergySummary;
    j_per_output_token: number;
    j_per_response: number;
    cost: { usd: number; gco2: number };
  };
  errors: { where: string; message: string; point?: string }[];
  caps_restored: boolean | null;
  /** Gaps, duplicates and garbled lines noticed while reading the stream. */
  problems: string[];
  /**
   * An imported run only (it has no `sample` events): total power of all GPUs over time as the tool's file
   * recorded it, `t` in seconds since the first instant every GPU had a reading, at most 3000 points.
   */
  power_timeline?: { t: number; w: number }[];
}

/** HELM's denoised runtime of one point: T(p, o) = α(p) + β·(o − 1) + overhead on the fastest repeats. */
export interface DenoisedFit {
  beta_s: number;
  overhead_s: number;
  /** α at the point's mean prompt length. */
  alpha_s: number;
  repeats: number;
  requests: number;
}

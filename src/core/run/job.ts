/** The job file the agent runs (docs/protocol.md), built from a resolved config and its points. */
import { basename, extname } from 'node:path';
import type { LengthDist, ResolvedConfig, ResolvedPoint, WorkloadTool } from '../config/model';
import { gpuFromConfig, modelFromSpec } from '../estimate/config-estimate';
import { simProfileFor, type SimProfile } from '../estimate/simprofile';

export interface AgentJob {
  v: 1;
  run_id: string;
  telemetry: { source: string; interval_s: number; idle_baseline_s: number };
  gpus: { indices: number[] | null; count: number };
  server: AgentJobServer;
  sim: SimProfile | null;
  points: AgentJobPoint[];
}

export interface AgentJobServer {
  sim: boolean;
  command: string | null;
  base_url: string;
  api: string;
  model: string;
  ready_timeout_s: number;
  env: Record<string, string>;
  /** The host's environment variable the agent reads the API key from; the key is never in the job. */
  api_key_env?: string;
  /** The engine preset's name (src/core/config/engines.ts). */
  engine: string;
  /** Merged into every request body by the agent; absent: the workload's ignore_eos is sent as before. */
  request_fields?: Record<string, unknown>;
  /** Readiness paths tried in order: `/x` from the server's root, `x` relative to base_url; absent: the agent's default. */
  probe_paths?: string[];
  /** The engine's Prometheus metrics, scraped into `engine` events; null: none. */
  metrics_url: string | null;
  /** Normalised name → the engine's metric names, the first one present wins. */
  metrics: Record<string, string[]>;
}

export interface AgentJobPoint {
  id: string;
  label: string;
  power_cap_w: number | null;
  repeats: number;
  workload: {
    kind: 'http' | 'command' | 'tool';
    dataset: { kind: 'synthetic'; input_tokens: LengthDist; output_tokens: LengthDist } | { kind: 'file'; path: string; format: string };
    num_prompts: number;
    max_tokens: number;
    concurrency: number | null;
    request_rate: number | null;
    warmup_requests: number;
    temperature: number;
    top_p?: number;
    client_processes?: number;
    ignore_eos: boolean;
    time_limit_s: number | null;
    seed: number;
    command: string | null;
    /** kind == tool: the benchmark tool the agent runs against the server's base_url and model. */
    tool?: WorkloadTool;
    tool_args?: string[];
  };
}

/** Dataset files the job refers to: the name the agent sees (beside the job file) → the local path. */
export type JobFiles = Map<string, string>;

export class JobError extends Error {}

export function buildJob(runId: string, config: ResolvedConfig, points: ResolvedPoint[], resolveLocal: (relative: string) => string): { job: AgentJob; files: JobFiles } {
  const files: JobFiles = new Map();
  const datasetName = (path: string) => {
    const local = resolveLocal(path);
    for (const [name, existing] of files) if (existing === local) return name;
    const name = `dataset-${files.size}-${basename(path, extname(path)).replace(/[^A-Za-z0-9_-]/g, '_')}${extname(path)}`;
    files.set(name, local);
    return name;
  };
  const usesSim = config.server.sim || config.telemetry.source === 'sim';
  let sim: SimProfile | null = null;
  if (usesSim) {
    const model = modelFromSpec(config.model);
    if (!model.ok) throw new JobError(`cannot simulate ${config.model.id}: ${model.message}`);
    const gpu = gpuFromConfig(config);
    if (!gpu.ok) throw new JobError(`cannot simulate gpus.type ${config.gpus.type}: ${gpu.message}`);
    // The step rule is linearised at one batch and context: take the first point's, as the estimate does.
    const first = points[0].workload;
    const input = first.inputTokens.mean;
    const output = Math.min(first.outputTokens.mean, first.maxTokens);
    sim = simProfileFor(
      { model: model.value, gpu: gpu.value, gpuCount: Math.max(...points.map((p) => p.gpuCount), config.gpus.count) },
      { batch: first.concurrency ?? 1, contextPerSeq: input + output / 2, promptTokens: input },
    );
  }
  const job: AgentJob = {
    v: 1,
    run_id: runId,
    telemetry: { source: config.telemetry.source, interval_s: config.telemetry.intervalS, idle_baseline_s: config.telemetry.idleBaselineS },
    gpus: { indices: config.gpus.indices ?? null, count: config.gpus.count },
    server: {
      sim: config.server.sim,
      command: config.server.command ?? null,
      base_url: config.server.baseUrl,
      api: config.server.api,
      model: config.server.servedModel,
      ready_timeout_s: config.server.readyTimeoutS,
      env: config.server.env,
      ...(config.server.apiKeyEnv && { api_key_env: config.server.apiKeyEnv }),
      engine: config.server.engine,
      ...(config.server.requestFields && { request_fields: config.server.requestFields }),
      ...(config.server.probePaths && { probe_paths: config.server.probePaths }),
      metrics_url: config.server.metricsUrl,
      metrics: config.server.metrics,
    },
    sim,
    points: points.map((p) => {
      const w = p.workload;
      return {
        id: p.id,
        label: p.label,
        power_cap_w: p.powerCapW ?? null,
        repeats: config.repeats,
        workload: {
          kind: w.tool ? 'tool' : w.command ? 'command' : 'http',
          dataset: w.dataset.kind === 'synthetic'
            ? { kind: 'synthetic', input_tokens: w.inputTokens, output_tokens: w.outputTokens }
            : { kind: 'file', path: datasetName(w.dataset.path), format: w.dataset.format },
          num_prompts: w.numPrompts,
          max_tokens: w.maxTokens,
          concurrency: w.concurrency ?? null,
          request_rate: w.requestRate ?? null,
          warmup_requests: w.warmup,
          temperature: w.temperature,
          ...(w.topP !== undefined && { top_p: w.topP }),
          ...(w.clientProcesses !== undefined && { client_processes: w.clientProcesses }),
          ignore_eos: w.ignoreEos,
          time_limit_s: w.timeLimitS ?? null,
          seed: w.seed,
          command: w.command ?? null,
          ...(w.tool && { tool: w.tool, tool_args: w.toolArgs }),
        },
      };
    }),
  };
  return { job, files };
}

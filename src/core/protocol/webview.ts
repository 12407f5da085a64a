/**
 * Messages between the extension and its webviews, declared once and imported by both sides. The
 * webview says `ready` first; the host then sends a full snapshot (hidden webviews receive nothing,
 * so every reveal starts from a snapshot, never from deltas it may have missed).
 */
import type { DenoisedFit, RunSummary } from './summary';

export interface SeriesPoint {
  /** Seconds since the run started. */
  t: number;
  /** Watts per GPU, in `gpus` order; NaN for GPUs of other nodes, which sample apart. */
  p: number[];
  /** All GPUs together, each at its latest reading, when several nodes sample apart. */
  total?: number;
}

export interface PointInfo {
  id: string;
  label: string;
  status: 'pending' | 'running' | 'ok' | 'error' | 'cancelled' | 'timeout';
  predicted?: { avg_power_w_total: number; output_tokens_per_s: number; j_per_output_token: number; runtime_s: number };
}

export interface LiveState {
  runId: string;
  title: string;
  target: string;
  simulated: boolean;
  /** GPU keys ("0", "node2:1"). */
  gpus: string[];
  /** Epoch seconds of t = 0. */
  t0: number;
  idleW: number | null;
  capW: number | null;
  phase: string;
  currentPoint: string | null;
  points: PointInfo[];
  samples: SeriesPoint[];
  /** Output tokens per second, one value per completed-request bucket. */
  throughput: { t: number; tps: number; inflight: number }[];
  latency: { t: number; ttft: number; e2e: number }[];
  /** The engine's own metrics, one entry per scrape (`engine` events): running requests, KV-cache use 0..1. */
  engine?: EnginePoint[];
  status: 'running' | 'ok' | 'error' | 'cancelled' | 'detached' | 'reconnecting';
  message?: string;
  summary?: RunSummary;
}

export interface EnginePoint {
  t: number;
  running?: number;
  kv?: number;
}

export type HostToLive =
  | { type: 'snapshot'; state: LiveState }
  | { type: 'append'; samples: SeriesPoint[]; throughput: LiveState['throughput']; latency: LiveState['latency']; engine?: EnginePoint[]; phase: string; currentPoint: string | null; points: PointInfo[]; status: LiveState['status']; message?: string; summary?: RunSummary; capW: number | null; idleW: number | null };

export interface ResultRun {
  runId: string;
  title: string;
  target: string;
  status: string;
  started: string;
  simulated: boolean;
  summary: RunSummary;
  labels: Record<string, string>;
  predictions: Record<string, { runtime_s: number; j_per_output_token: number; avg_power_w: number; output_tokens_per_s: number; basis: string }>;
  /** Total power over time, decimated for drawing. */
  power: { t: number; w: number }[];
  notes: string[];
  error?: string;
  slurm?: { job_id: string; state?: string; queue_wait_s?: number; nodes?: string[] };
  /** HELM's denoised runtime per point, where the point was repeated. */
  denoised: Record<string, DenoisedFit>;
}

export type HostToResult = { type: 'result'; runs: ResultRun[]; calibrationError?: number | null };

export type ViewToHost =
  | { type: 'ready' }
  | { type: 'cancel' }
  | { type: 'openResult'; runId: string }
  | { type: 'exportCsv'; runId: string }
  | { type: 'savePng'; name: string; dataUrl: string }
  | { type: 'openLog'; runId: string };

/** Validates a message from a webview: anything else is dropped. */
export function parseViewMessage(value: unknown): ViewToHost | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  switch (m.type) {
    case 'ready':
    case 'cancel':
      return { type: m.type };
    case 'openResult':
    case 'exportCsv':
    case 'openLog':
      return typeof m.runId === 'string' && /^[A-Za-z0-9._-]+$/.test(m.runId) ? { type: m.type, runId: m.runId } : undefined;
    case 'savePng':
      return typeof m.name === 'string' && /^[A-Za-z0-9._-]+$/.test(m.name) && typeof m.dataUrl === 'string' && m.dataUrl.startsWith('data:image/png;base64,')
        ? { type: 'savePng', name: m.name, dataUrl: m.dataUrl }
        : undefined;
    default:
      return undefined;
  }
}

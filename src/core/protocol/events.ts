/**
 * The agent's event stream (docs/protocol.md). Types shared by the dispatcher, the summary, the
 * store and the webview. Parsing is defensive: a garbled line becomes a located problem, not a crash.
 */
export const PROTOCOL_VERSION = 1;

export interface GpuInfo {
  index: number;
  name: string;
  uuid?: string;
  memory_mb?: number;
  power_limit_w?: number;
  default_limit_w?: number;
  min_limit_w?: number;
  max_limit_w?: number;
  energy_counter?: boolean;
  /** What this GPU's `p_w` is: an instantaneous reading, or the driver's average over `power_average_window_s`. */
  power_reading?: 'instant' | 'interval_average';
  power_average_window_s?: number;
  /** MIG mode on: power is the whole GPU's, for every instance together. */
  mig?: boolean | null;
}

export interface GpuSample {
  i: number;
  p_w: number;
  e_j?: number;
  util?: number;
  mem_util?: number;
  sm_mhz?: number;
  temp_c?: number;
  limit_w?: number;
  /** The driver's averaged power beside an instantaneous `p_w`, where it has both. */
  p_avg_w?: number;
}

interface Base {
  v: number;
  seq: number;
  t: number;
  /** Which node sent it, on multi-node runs (added by the dispatcher, not the agent). */
  node?: string;
}

export type Phase = 'baseline' | 'server_start' | 'server_ready' | 'cap' | 'warmup' | 'measure' | 'cooldown' | 'restore' | 'server_stop';

export interface HelloEvent extends Base {
  type: 'hello';
  run_id: string;
  host: string;
  agent_version: string;
  python?: string;
  pid: number;
  pgid?: number;
  driver?: string;
  telemetry: { source: string; interval_s: number; power_reading?: 'instant' | 'interval_average'; power_average_window_s?: number; warnings?: string[] };
  simulated: boolean;
  capabilities?: string[];
  gpus: GpuInfo[];
}
export interface PhaseEvent extends Base {
  type: 'phase';
  phase: Phase;
  point?: string;
  repeat?: number;
}
export interface SampleEvent extends Base {
  type: 'sample';
  gpus: GpuSample[];
  point?: string;
  dt_s?: number;
  /** HTTP requests sent and not yet answered, when a load is running. */
  inflight?: number;
  /** GPUs whose reading failed this tick (the others are in `gpus`). */
  missing?: number[];
}
export interface RequestEvent extends Base {
  type: 'request';
  point: string;
  repeat?: number;
  i: number;
  ok: boolean;
  warmup?: boolean;
  t_start: number;
  t_end: number;
  prompt_tokens: number;
  output_tokens: number;
  ttft_s?: number | null;
  latency_s: number;
  itl_s?: number[];
  error?: string;
  /** How output tokens were counted: the engine's `usage`, or the streamed chunks that carried text. */
  tokens_from?: 'usage' | 'chunks';
  /** The HTTP status when the engine answered with an error (429 and 503 are throttling). */
  http_status?: number;
}
export interface PointEvent extends Base {
  type: 'point';
  point: string;
  repeat?: number;
  state: 'start' | 'end';
  status?: 'ok' | 'error' | 'cancelled' | 'timeout';
  requests?: number;
  errors?: number;
  /** Requests refused with 429/503 (counted in `errors` too). */
  throttled?: number;
  tokens_from?: 'usage' | 'chunks' | 'mixed';
}
export interface CapEvent extends Base {
  type: 'cap';
  action: 'set' | 'restore';
  gpus: { i: number; from_w: number; to_w: number }[];
}
export interface LogEvent extends Base {
  type: 'log';
  level: 'debug' | 'info' | 'warn';
  msg: string;
  source?: 'agent' | 'server';
}
export interface ErrorEvent extends Base {
  type: 'error';
  where: string;
  message: string;
  fatal: boolean;
  point?: string;
  detail?: string;
}
export interface DoneEvent extends Base {
  type: 'done';
  status: 'ok' | 'error' | 'cancelled';
  caps_restored: boolean;
  reason?: string;
}

export type AgentEvent = HelloEvent | PhaseEvent | SampleEvent | RequestEvent | PointEvent | CapEvent | LogEvent | ErrorEvent | DoneEvent;
export type EventType = AgentEvent['type'];

const REQUIRED: Record<EventType, string[]> = {
  hello: ['run_id', 'gpus'],
  phase: ['phase'],
  sample: ['gpus'],
  request: ['point', 'latency_s', 'output_tokens'],
  point: ['point', 'state'],
  cap: ['action', 'gpus'],
  log: ['msg'],
  error: ['message'],
  done: ['status'],
};

export type ParsedLine = { ok: true; event: AgentEvent } | { ok: false; problem: string };

/** Parses one NDJSON line of the agent's stream; says what is wrong with a garbled one. */
export function parseEventLine(line: string): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, problem: `not JSON: ${JSON.stringify(line.length > 80 ? `${line.slice(0, 77)}...` : line)}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, problem: 'not a JSON object' };
  const e = value as Record<string, unknown>;
  if (typeof e.seq !== 'number' || !Number.isInteger(e.seq) || e.seq < 0) return { ok: false, problem: 'missing or invalid "seq"' };
  if (typeof e.t !== 'number' || !Number.isFinite(e.t)) return { ok: false, problem: `event ${e.seq}: missing or invalid "t"` };
  const type = e.type as EventType;
  const required = REQUIRED[type];
  if (!required) return { ok: false, problem: `event ${e.seq}: unknown type ${JSON.stringify(e.type)}` };
  const missing = required.filter((k) => e[k] === undefined);
  if (missing.length) return { ok: false, problem: `event ${e.seq} (${type}): missing ${missing.join(', ')}` };
  if (type === 'sample' && !Array.isArray(e.gpus)) return { ok: false, problem: `event ${e.seq} (sample): "gpus" is not a list` };
  if (e.v !== undefined && e.v !== PROTOCOL_VERSION) return { ok: false, problem: `event ${e.seq}: protocol version ${e.v}, this Wattbench reads ${PROTOCOL_VERSION}` };
  return { ok: true, event: value as AgentEvent };
}

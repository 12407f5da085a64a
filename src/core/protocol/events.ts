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
  /** Absent only in streams not written by the agent (parseEventLine accepts them). */
  telemetry?: { source: string; interval_s: number; power_reading?: 'instant' | 'interval_average'; power_average_window_s?: number; warnings?: string[] };
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
  /** Measured requests in flight at once: the most, and the time-weighted mean. */
  inflight_max?: number;
  inflight_mean?: number;
  /** Request-rate points: requests sent per second. */
  request_rate_achieved?: number;
  /** How late the load generator's loop ran (ms). `client_behind`: with loop stamps when p99 > 5 or max > 50;
   * with kernel stamps when max > 5 and more than 0.5% of the tokens, or 1% of the first tokens, were read
   * together with the one after or before. */
  client_lag_ms?: { p50: number; p99: number; max: number };
  client_behind?: boolean;
  /** `kernel`: the socket's receive timestamps; `loop`: when the event loop read the bytes. */
  arrival_stamps?: 'kernel' | 'loop' | 'mixed';
  /** Processes that sent the point's requests (1: the agent's own loop). */
  load_processes?: number;
  /** Share of token chunks read together with the one before (their gap is the read's, not the engine's). */
  arrivals_shared_read?: number;
  /** Share of requests whose first token came in the same read as the second (TTFT late by a gap). */
  first_tokens_shared_read?: number;
  /** What the point asked for (concurrency points / request-rate points), beside what was achieved. */
  concurrency?: number;
  request_rate?: number;
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
/** The inference engine's own metrics, scraped from its Prometheus endpoint (names the same for every engine). */
export interface EngineValues {
  /** Requests in the engine's running batch. */
  running?: number;
  /** Requests queued, not yet scheduled. */
  waiting?: number;
  /** KV-cache in use, 0..1. */
  kv_cache_usage?: number;
  /** Preemptions since the engine started (a counter). */
  preemptions_total?: number;
}
export interface EngineEvent extends Base {
  type: 'engine';
  values: EngineValues;
  point?: string;
}
export interface DoneEvent extends Base {
  type: 'done';
  status: 'ok' | 'error' | 'cancelled';
  caps_restored: boolean;
  reason?: string;
}

export type AgentEvent = HelloEvent | PhaseEvent | SampleEvent | RequestEvent | PointEvent | CapEvent | LogEvent | ErrorEvent | EngineEvent | DoneEvent;
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
  engine: ['values'],
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
  if (e.t < 0 || e.t > MAX_T) return { ok: false, problem: `event ${e.seq}: "t" ${e.t} is not a time` };
  const type = e.type as EventType;
  // Own keys only: a type named "toString" or "__proto__" is unknown, not Object.prototype's.
  const required = typeof type === 'string' && Object.hasOwn(REQUIRED, type) ? REQUIRED[type] : undefined;
  if (!required) return { ok: false, problem: `event ${e.seq}: unknown type ${JSON.stringify(e.type)?.slice(0, 40)}` };
  const missing = required.filter((k) => e[k] === undefined);
  if (missing.length) return { ok: false, problem: `event ${e.seq} (${type}): missing ${missing.join(', ')}` };
  if (e.v !== undefined && e.v !== PROTOCOL_VERSION) return { ok: false, problem: `event ${e.seq}: protocol version ${e.v}, this Wattbench reads ${PROTOCOL_VERSION}` };
  const wrong = CHECKS[type](e);
  if (wrong) return { ok: false, problem: `event ${e.seq} (${type}): ${wrong}` };
  return { ok: true, event: value as AgentEvent };
}

/** Event times are epoch seconds (or seconds from 0 in made-up streams): anything past year 5000 is garbage. */
const MAX_T = 1e11;

/**
 * What a field must hold for the summary to compute with it. The agent writes nothing else; a line that
 * does (a garbled file, another program's output) is a located problem, never a wrong figure or a crash.
 */
type Shape =
  | 'string'
  | 'bool'
  | 'object'
  | { num: [min: number, max: number]; int?: boolean; nullable?: boolean }
  | { list: Shape }
  | { fields: Record<string, Shape>; optional?: string[] };

const count = (max = 1e12): Shape => ({ num: [0, max], int: true });
const watts: Shape = { num: [0, 1e5] };
const seconds: Shape = { num: [0, 1e8] };
const gpuInfo: Shape = { fields: { index: count(1e6), name: 'string' }, optional: ['name'] };
const SHAPES: Record<EventType, { fields: Record<string, Shape>; optional?: string[] }> = {
  hello: { fields: { run_id: 'string', gpus: { list: gpuInfo }, telemetry: { fields: { source: 'string', interval_s: seconds }, optional: ['interval_s'] } }, optional: ['telemetry'] },
  phase: { fields: { phase: 'string', point: 'string', repeat: count() }, optional: ['point', 'repeat'] },
  sample: {
    fields: { gpus: { list: { fields: { i: count(1e6), p_w: watts, e_j: { num: [0, 1e15] } }, optional: ['p_w', 'e_j'] } }, inflight: count() },
    optional: ['inflight'],
  },
  request: {
    fields: {
      point: 'string', ok: 'bool', warmup: 'bool', repeat: count(), t_start: { num: [0, MAX_T] }, t_end: { num: [0, MAX_T] },
      prompt_tokens: { num: [0, 1e9], int: true, nullable: true }, output_tokens: count(1e9), latency_s: seconds,
      ttft_s: { num: [0, 1e8], nullable: true }, error: 'string', http_status: count(999),
    },
    optional: ['ok', 'warmup', 'repeat', 't_start', 't_end', 'prompt_tokens', 'ttft_s', 'itl_s', 'error', 'http_status'],
  },
  point: { fields: { point: 'string', state: 'string', status: 'string', repeat: count() }, optional: ['status', 'repeat'] },
  cap: { fields: { action: 'string', gpus: { list: { fields: { i: count(1e6), from_w: { num: [0, 1e5], nullable: true }, to_w: watts }, optional: ['from_w'] } } } },
  log: { fields: { msg: 'string' } },
  error: { fields: { message: 'string', where: 'string' }, optional: ['where'] },
  engine: {
    fields: {
      values: {
        fields: { running: { num: [0, 1e9] }, waiting: { num: [0, 1e9] }, kv_cache_usage: { num: [0, 10] }, preemptions_total: { num: [0, 1e15] } },
        optional: ['running', 'waiting', 'kv_cache_usage', 'preemptions_total'],
      },
      point: 'string',
    },
    optional: ['point'],
  },
  done: { fields: { status: 'string', caps_restored: 'bool' }, optional: ['caps_restored'] },
};

/** Checks a value against a shape; built once per shape, so the hot path allocates nothing for a good event. */
type Check = (v: unknown) => string | undefined;

const said = (v: unknown, path: string) => `"${path}" is ${JSON.stringify(v)?.slice(0, 40) ?? String(v)}`;

function compile(shape: Shape, path: string): Check {
  if (shape === 'string') return (v) => (typeof v === 'string' ? undefined : `${said(v, path)}, expected a string`);
  if (shape === 'bool') return (v) => (typeof v === 'boolean' ? undefined : `${said(v, path)}, expected true or false`);
  if (shape === 'object') return (v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? undefined : `${said(v, path)}, expected an object`);
  if ('num' in shape) {
    const [min, max] = shape.num;
    const { int, nullable } = shape;
    const expected = `expected ${int ? 'a whole number' : 'a number'} from ${min} to ${max}`;
    return (v) => {
      if (v === null && nullable) return undefined;
      // Comparisons are false for NaN, so this also refuses non-numbers and NaN; Infinity fails the range.
      if (typeof v === 'number' && v >= min && v <= max && (!int || Number.isInteger(v))) return undefined;
      return `${said(v, path)}, ${expected}`;
    };
  }
  if ('list' in shape) {
    const item = compile(shape.list, `${path}[]`);
    return (v) => {
      if (!Array.isArray(v)) return `${said(v, path)}, expected a list`;
      for (let i = 0; i < v.length; i++) {
        const wrong = item(v[i]);
        if (wrong) return wrong.replace(`${path}[]`, `${path}[${i}]`);
      }
      return undefined;
    };
  }
  const fields = compileFields(shape, path ? `${path}.` : '');
  return (v) => (typeof v !== 'object' || v === null || Array.isArray(v) ? `${said(v, path)}, expected an object` : fields(v as Record<string, unknown>));
}

function compileFields(shape: { fields: Record<string, Shape>; optional?: string[] }, prefix: string): (v: Record<string, unknown>) => string | undefined {
  const checks = Object.entries(shape.fields).map(([key, inner]) => [key, compile(inner, `${prefix}${key}`), shape.optional?.includes(key) ?? false] as const);
  return (v) => {
    for (const [key, check, optional] of checks) {
      const value = v[key];
      if (value === undefined && optional) continue;
      const wrong = check(value);
      if (wrong) return wrong;
    }
    return undefined;
  };
}

const CHECKS = Object.fromEntries(Object.entries(SHAPES).map(([type, shape]) => [type, compileFields(shape, '')])) as Record<EventType, (v: Record<string, unknown>) => string | undefined>;

// A request carries one inter-token latency per token: checked in a plain loop, not a closure per value.
const checkRequestFields = CHECKS.request;
CHECKS.request = (e) => {
  const itl = e.itl_s;
  if (itl !== undefined) {
    if (!Array.isArray(itl)) return `${said(itl, 'itl_s')}, expected a list`;
    for (let k = 0; k < itl.length; k++) {
      const x = itl[k];
      if (!(typeof x === 'number' && x >= 0 && x <= 1e8)) return `${said(x, `itl_s[${k}]`)}, expected a number from 0 to 100000000`;
    }
  }
  return checkRequestFields(e);
};

// Samples are most of a stream (one per tick, a reading per GPU): a straight-line check lets a good one
// through at the cost of a few comparisons, and only a doubtful one goes to the general check for its message.
const checkSampleFully = CHECKS.sample;
CHECKS.sample = (e) => {
  const gpus = e.gpus;
  if (!Array.isArray(gpus) || (e.inflight !== undefined && !(Number.isInteger(e.inflight) && (e.inflight as number) >= 0))) return checkSampleFully(e);
  for (let k = 0; k < gpus.length; k++) {
    const g = gpus[k] as { i?: unknown; p_w?: unknown; e_j?: unknown } | null;
    if (typeof g !== 'object' || g === null || !Number.isInteger(g.i) || (g.i as number) < 0 || (g.i as number) > 1e6) return checkSampleFully(e);
    const p = g.p_w;
    if (p !== undefined && !(typeof p === 'number' && p >= 0 && p <= 1e5)) return checkSampleFully(e);
    const j = g.e_j;
    if (j !== undefined && !(typeof j === 'number' && j >= 0 && j <= 1e15)) return checkSampleFully(e);
  }
  return undefined;
};

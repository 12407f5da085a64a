/**
 * Agent events shaped like a real run on NVML hardware (docs/protocol.md), generated lazily and
 * deterministically so a day-long run never exists in memory at once and every run of the bench
 * reads the same stream.
 */
import type { AgentEvent, GpuInfo, GpuSample, RequestEvent } from '../src/core/protocol/events';

export interface RunShape {
  gpus: number;
  hz: number;
  /** Seconds of measurement, split evenly over the points. */
  measureS: number;
  idleBaselineS: number;
  points: number;
  requestsPerS: number;
  /** Output tokens per request, uniform in [min, max]; each request carries one ITL per token after the first. */
  outputTokens: { min: number; max: number };
  seed: number;
}

/** The day: 24 h of 8 GPUs sampled at 10 Hz (~7 M GPU readings) and ~1 M requests. */
export const DAY_RUN: RunShape = {
  gpus: 8,
  hz: 10,
  measureS: 24 * 3600,
  idleBaselineS: 10,
  points: 12,
  requestsPerS: 1_000_000 / (24 * 3600),
  outputTokens: { min: 64, max: 192 },
  seed: 1,
};

export function scaled(shape: RunShape, fraction: number): RunShape {
  return { ...shape, measureS: shape.measureS * fraction };
}

/** Events the generator will produce (for sizing, without generating them). */
export function countEvents(shape: RunShape): { samples: number; requests: number } {
  return { samples: Math.round((shape.idleBaselineS + shape.measureS) * shape.hz), requests: Math.floor(shape.measureS * shape.requestsPerS) };
}

/** mulberry32: small, fast and good enough to vary lengths and latencies reproducibly. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const T0 = 1_763_780_000;
const IDLE_W = 70;
const BUSY_W = 520;
const round6 = (x: number) => Math.round(x * 1e6) / 1e6;
const round3 = (x: number) => Math.round(x * 1e3) / 1e3;

/** The id of the run's `p`-th point, as the config's sweep would name it. */
export function pointId(p: number): string {
  return `concurrency-${2 ** (p % 9)}_cap-${700 - 25 * Math.floor(p / 9)}W`;
}

export function* agentEvents(shape: RunShape): Generator<AgentEvent> {
  const rand = random(shape.seed);
  let seq = 0;
  const base = (t: number) => ({ v: 1, seq: seq++, t });
  const energy = new Array<number>(shape.gpus).fill(0);
  const gpus: GpuInfo[] = Array.from({ length: shape.gpus }, (_, index) => ({
    index,
    name: 'NVIDIA H100 80GB HBM3',
    uuid: `GPU-${index.toString(16).padStart(8, '0')}-bench`,
    memory_mb: 81559,
    power_limit_w: 700,
    default_limit_w: 700,
    min_limit_w: 200,
    max_limit_w: 700,
    energy_counter: true,
  }));
  yield {
    ...base(T0),
    type: 'hello',
    run_id: 'bench-run',
    host: 'gpu-bench',
    agent_version: 'bench',
    pid: 4242,
    pgid: 4242,
    driver: 'NVML 550.54.15',
    telemetry: { source: 'nvml', interval_s: 1 / shape.hz },
    simulated: false,
    capabilities: ['power', 'energy_counter', 'power_limit', 'util'],
    gpus,
  };

  let tick = 0;
  const dt = 1 / shape.hz;
  const tickTime = () => T0 + tick * dt + (rand() - 0.5) * 0.002;
  let lastSampleT = T0;
  function sample(t: number, busy: boolean, point?: string): AgentEvent {
    tick++;
    const rows: GpuSample[] = [];
    for (let i = 0; i < shape.gpus; i++) {
      const p = round3(busy ? BUSY_W + (rand() - 0.5) * 120 : IDLE_W + rand() * 4);
      energy[i] += p * (t - lastSampleT);
      rows.push({ i, p_w: p, e_j: round3(energy[i]), util: busy ? 90 + Math.floor(rand() * 10) : 0, mem_util: busy ? 60 : 0, sm_mhz: busy ? 1980 : 345, temp_c: busy ? 64 : 33, limit_w: 700 });
    }
    const event: AgentEvent = { ...base(t), type: 'sample', gpus: rows, ...(point !== undefined && { point }), dt_s: round6(t - lastSampleT) };
    lastSampleT = t;
    return event;
  }

  yield { ...base(T0), type: 'phase', phase: 'baseline' };
  for (let k = 0; k < shape.idleBaselineS * shape.hz; k++) yield sample(tickTime(), false);
  yield { ...base(tickTime()), type: 'phase', phase: 'server_start' };
  yield { ...base(tickTime()), type: 'phase', phase: 'server_ready' };

  const ticksPerPoint = Math.round((shape.measureS * shape.hz) / shape.points);
  const requestGap = 1 / shape.requestsPerS;
  for (let p = 0; p < shape.points; p++) {
    const point = pointId(p);
    yield { ...base(tickTime()), type: 'point', point, state: 'start' };
    yield { ...base(tickTime()), type: 'phase', phase: 'measure', point };
    let nextEnd = tickTime() + requestGap;
    let index = 0;
    for (let k = 0; k < ticksPerPoint; k++) {
      const t = tickTime();
      // Requests that finished since the previous tick arrive before this tick's sample, as from the agent.
      while (nextEnd <= t) {
        yield request(point, index++, nextEnd);
        nextEnd += requestGap * (0.5 + rand());
      }
      yield sample(t, true, point);
    }
    yield { ...base(tickTime()), type: 'phase', phase: 'cooldown', point };
    yield { ...base(tickTime()), type: 'point', point, state: 'end', status: 'ok', requests: index, errors: 0 };
  }
  yield { ...base(tickTime()), type: 'done', status: 'ok', caps_restored: true };

  function request(point: string, i: number, tEnd: number): RequestEvent {
    const { min, max } = shape.outputTokens;
    const outputTokens = min + Math.floor(rand() * (max - min + 1));
    const ttft = 0.05 + rand() * 0.2;
    const itl = new Array<number>(outputTokens - 1);
    let latency = ttft;
    for (let k = 0; k < itl.length; k++) {
      itl[k] = round6(0.012 + rand() * 0.01);
      latency += itl[k];
    }
    return {
      ...base(tEnd),
      type: 'request',
      point,
      i,
      ok: true,
      warmup: false,
      t_start: tEnd - latency,
      t_end: tEnd,
      prompt_tokens: 256 + Math.floor(rand() * 256),
      output_tokens: outputTokens,
      ttft_s: round6(ttft),
      latency_s: round6(latency),
      itl_s: itl,
    };
  }
}

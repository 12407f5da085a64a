/**
 * The simulated server's step rule (docs/protocol.md, "SimProfile"). The prior evaluates exactly
 * these functions, so a simulated run measures what the prediction says, up to queueing.
 */

export interface SimProfile {
  v: 1;
  gpu: {
    name: string;
    count: number;
    idle_w: number;
    tdp_w: number;
    min_limit_w: number;
    max_limit_w: number;
    memory_mb: number;
  };
  prefill: { fixed_s: number; s_per_token: number; util: number };
  decode: {
    fixed_s: number;
    s_per_seq: number;
    s_per_ctx_token: number;
    util_base: number;
    util_per_seq: number;
    util_max: number;
  };
  cap: { time_exponent: number };
  noise: { rel_std: number; seed: number };
}

export interface StepOutcome {
  /** Step duration after any power-cap slowdown. */
  seconds: number;
  /** Utilisation u in [0, 1] the step demands. */
  util: number;
  /** Demanded power per GPU, D = idle + u * (tdp - idle). */
  demandW: number;
  /** Power drawn per GPU: D, or the limit when the limit is below D. */
  drawW: number;
  /** Time multiplier from the cap, 1 when uncapped. */
  slowdown: number;
}

/** A prefill step over `promptTokens` tokens (all waiting prompts together). */
export function prefillStep(p: SimProfile, promptTokens: number, limitW?: number): StepOutcome {
  const t = p.prefill.fixed_s + promptTokens * p.prefill.s_per_token;
  return underLimit(p, t, p.prefill.util, limitW);
}

/** A decode step over `batch` running sequences holding `contextTokens` tokens of context in total. */
export function decodeStep(p: SimProfile, batch: number, contextTokens: number, limitW?: number): StepOutcome {
  const d = p.decode;
  const t = d.fixed_s + batch * d.s_per_seq + contextTokens * d.s_per_ctx_token;
  return underLimit(p, t, decodeUtil(p, batch), limitW);
}

export function decodeUtil(p: SimProfile, batch: number): number {
  const d = p.decode;
  return Math.min(d.util_max, d.util_base + d.util_per_seq * batch);
}

export function demandedPower(p: SimProfile, util: number): number {
  return p.gpu.idle_w + util * (p.gpu.tdp_w - p.gpu.idle_w);
}

/**
 * The cap rule: with limit L below the demand D the GPU draws L and the step stretches by
 * ((D - idle) / (L - idle)) ** time_exponent.
 */
export function underLimit(p: SimProfile, seconds: number, util: number, limitW?: number): StepOutcome {
  const idle = p.gpu.idle_w;
  const demandW = demandedPower(p, util);
  if (limitW === undefined || limitW >= demandW) return { seconds, util, demandW, drawW: demandW, slowdown: 1 };
  const slowdown = Math.pow((demandW - idle) / (limitW - idle), p.cap.time_exponent);
  return { seconds: seconds * slowdown, util, demandW, drawW: limitW, slowdown };
}

/** The limit a GPU accepts: requests outside [min, max] are clamped the way nvidia-smi's range forces. */
export function effectiveLimit(p: SimProfile, requestedW?: number): number | undefined {
  if (requestedW === undefined) return undefined;
  return Math.min(Math.max(requestedW, p.gpu.min_limit_w), p.gpu.max_limit_w);
}

import type { CalibrationParams } from './roofline';

/** Calibration entries apply to this GPU, model and engine; model "*" pools every model on the GPU. */
export interface CalibrationKey {
  gpu: string;
  model: string;
  engine: string;
}

export interface CalibrationEntry {
  key: CalibrationKey;
  params: CalibrationParams;
  /** Measurements the fit used. */
  n: number;
  /**
   * Leave-one-out RMS relative error of J/token (or energy, runtime, tokens/s, power: the first a
   * point has); 10-fold above 20 points; null below two points.
   */
  loo_error: number | null;
  /** RMS relative error of the fit on its own points. */
  fit_error: number;
  sources: string[];
}

export interface CalibrationProfile {
  v: 1;
  entries: CalibrationEntry[];
}

export const ANY_MODEL = '*';
export const DEFAULT_ENGINE = 'default';

export function emptyProfile(): CalibrationProfile {
  return { v: 1, entries: [] };
}

/**
 * The entry for a point: the exact GPU/model/engine first, then the GPU's pooled entry for that
 * engine. A request without an engine matches entries made without one.
 */
export function findCalibration(
  profile: CalibrationProfile | undefined,
  gpuId: string,
  modelId: string,
  engine?: string,
): CalibrationEntry | undefined {
  if (!profile) return undefined;
  const eng = engine ?? DEFAULT_ENGINE;
  const on = (model: string) => profile.entries.find((e) => e.key.gpu === gpuId && e.key.model === model && e.key.engine === eng);
  return on(modelId) ?? on(ANY_MODEL);
}

export type ProfileParse = { profile: CalibrationProfile } | { error: string };

const positive = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

/**
 * Reads a calibration profile written by `calibrate` (or by hand). A profile that fails here
 * would otherwise make every prediction NaN, so the first wrong field is named instead.
 */
export function parseCalibrationProfile(text: string): ProfileParse {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { error: `not JSON (${(e as Error).message})` };
  }
  if (typeof raw !== 'object' || raw === null || (raw as { v?: unknown }).v !== 1 || !Array.isArray((raw as { entries?: unknown }).entries)) {
    return { error: 'not a Wattbench calibration profile (expected {"v": 1, "entries": [...]})' };
  }
  const entries = (raw as { entries: unknown[] }).entries;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i] as Partial<CalibrationEntry> | null;
    const at = `entries[${i}]`;
    if (typeof e !== 'object' || e === null) return { error: `${at} is not an object` };
    const key = e.key as Partial<CalibrationKey> | undefined;
    for (const field of ['gpu', 'model', 'engine'] as const) {
      if (typeof key?.[field] !== 'string') return { error: `${at}.key.${field} must be a string` };
    }
    for (const field of ['bandwidth', 'compute', 'power'] as const) {
      if (!positive(e.params?.[field])) return { error: `${at}.params.${field} must be a positive number` };
    }
  }
  return { profile: raw as CalibrationProfile };
}

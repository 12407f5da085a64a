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

/** Energy → money and CO2, with the user's settings. */

export interface CostSettings {
  /** Electricity price, $/kWh. */
  usdPerKWh: number;
  /** Grid carbon intensity, gCO2e/kWh. */
  gCO2PerKWh: number;
  /** Power usage effectiveness: facility energy / IT energy (1 = count GPU energy only). */
  pue: number;
  /** Rental or amortised price of one GPU for an hour, $; undefined when unknown. */
  usdPerGpuHour?: number;
}

/**
 * Defaults, each from a public figure; users should set their own.
 * - $0.13/kWh: US average commercial retail electricity price, 2024 (EIA Electric Power Monthly, Table 5.6.A).
 * - 480 gCO2/kWh: world average power-sector carbon intensity, 2023 (Ember Global Electricity Review 2024).
 * - PUE 1.58: average annual data-centre PUE (Uptime Institute Global Data Center Survey 2023).
 */
export const DEFAULT_COST_SETTINGS: CostSettings = { usdPerKWh: 0.13, gCO2PerKWh: 480, pue: 1.58 };

const J_PER_KWH = 3.6e6;

export interface CostEstimate {
  /** GPU energy as measured or predicted. */
  gpu_kwh: number;
  /** GPU energy × PUE: what the facility draws for it. */
  facility_kwh: number;
  electricity_usd: number;
  co2_g: number;
  gpu_hours: number;
  /** GPU time at usdPerGpuHour; null when no price is set. */
  gpu_usd: number | null;
  /** Electricity plus GPU time (electricity alone when no GPU price is set). */
  total_usd: number;
}

export function costOf(energyJ: number, runtimeS: number, gpuCount: number, settings: Partial<CostSettings> = {}): CostEstimate {
  const s = { ...DEFAULT_COST_SETTINGS, ...settings };
  for (const [k, v] of Object.entries(s)) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new Error(`cost setting ${k} must be a number ≥ 0 (got ${v})`);
  }
  if (s.pue < 1) throw new Error(`PUE is facility energy over IT energy, so at least 1 (got ${s.pue})`);
  const gpuKWh = energyJ / J_PER_KWH;
  const facilityKWh = gpuKWh * s.pue;
  const electricity = facilityKWh * s.usdPerKWh;
  const gpuHours = (runtimeS * gpuCount) / 3600;
  const gpuUsd = s.usdPerGpuHour === undefined ? null : gpuHours * s.usdPerGpuHour;
  return {
    gpu_kwh: gpuKWh,
    facility_kwh: facilityKWh,
    electricity_usd: electricity,
    co2_g: facilityKWh * s.gCO2PerKWh,
    gpu_hours: gpuHours,
    gpu_usd: gpuUsd,
    total_usd: electricity + (gpuUsd ?? 0),
  };
}

/** Dollars per million output tokens for a point, from its cost and token count. */
export function usdPerMillionTokens(cost: CostEstimate, outputTokens: number): number {
  return (cost.total_usd / outputTokens) * 1e6;
}

/**
 * Published measurements the estimator is fitted to and checked against, and their readers: the
 * ML.ENERGY leaderboard's CSV rows, and the power-cap experiment of "From Words to Watts".
 */
import { resolveModel, type Measurement } from './calibrate';
import { getGpu, lookupModel, withDtype, DTYPES, type Dtype, type ModelShape } from './catalog';
import { predictPointUsing } from './predict';

// ML.ENERGY leaderboard rows

/** One row of the ML.ENERGY v3 sample CSV; cells may be empty. avg_power_w there is all GPUs together. */
export interface MlEnergyRow {
  model: string;
  hf_id: string;
  params_b?: number;
  layers?: number;
  hidden?: number;
  heads?: number;
  kv_heads?: number;
  intermediate?: number;
  dtype?: string;
  gpu: string;
  n_gpus: number;
  batch: number;
  j_per_output_token?: number;
  avg_power_w?: number;
  output_tok_per_s?: number;
}

const NUMERIC_COLUMNS = new Set([
  'params_b', 'layers', 'hidden', 'heads', 'kv_heads', 'intermediate', 'n_gpus', 'batch',
  'j_per_output_token', 'avg_power_w', 'output_tok_per_s',
]);

/** Parses CSV text (header row, commas, optional double quotes); empty cells are left out. */
export function parseCsv(text: string): Record<string, string>[] {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  if (!lines.length) return [];
  const header = splitCsvLine(lines[0]!).map((h) => h.trim());
  return lines.slice(1).map((line) => {
    const cells = splitCsvLine(line);
    const row: Record<string, string> = {};
    header.forEach((h, i) => {
      const v = cells[i]?.trim();
      if (v) row[h] = v;
    });
    return row;
  });
}

function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    }
    else cur += c;
  }
  out.push(cur);
  return out;
}

export function parseMlEnergyCsv(text: string): MlEnergyRow[] {
  return parseCsv(text).map((cells, i) => {
    const row: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(cells)) {
      if (!NUMERIC_COLUMNS.has(k)) row[k] = v;
      else {
        const x = Number(v);
        if (!Number.isFinite(x)) throw new Error(`ML.ENERGY CSV row ${i + 2}: ${k} is not a number ("${v}")`);
        row[k] = x;
      }
    }
    for (const k of ['model', 'gpu', 'n_gpus', 'batch'] as const) {
      if (row[k] === undefined) throw new Error(`ML.ENERGY CSV row ${i + 2}: missing ${k}`);
    }
    return row as unknown as MlEnergyRow;
  });
}

export interface MlEnergyOptions {
  /** Mean prompt and output length of the task; lm-arena-chat: 256 and 717. */
  inputTokens?: number;
  outputTokens?: number;
  engine?: string;
}

/** The model of a row: the catalog entry for its Hugging Face id, else a shape from its columns. */
export function mlEnergyModel(row: MlEnergyRow): ModelShape {
  const dtype = (DTYPES as readonly string[]).includes(row.dtype ?? '') ? (row.dtype as Dtype) : undefined;
  for (const name of [row.hf_id, row.model]) {
    const hit = name ? lookupModel(name) : undefined;
    if (hit?.ok) return dtype ? withDtype(hit.value, dtype) : hit.value;
  }
  const need = ['params_b', 'layers', 'hidden', 'heads', 'kv_heads'] as const;
  const missing = need.filter((k) => row[k] === undefined);
  if (missing.length) throw new Error(`ML.ENERGY row for ${row.model}: not in the catalog and missing ${missing.join(', ')}`);
  const m: ModelShape = {
    id: row.hf_id || row.model,
    name: row.model,
    paramsB: row.params_b!,
    layers: row.layers!,
    hidden: row.hidden!,
    heads: row.heads!,
    kvHeads: row.kv_heads!,
    dtype: dtype ?? 'bf16',
  };
  if (row.intermediate !== undefined) m.intermediate = row.intermediate;
  return m;
}

export function mlEnergyMeasurements(rows: MlEnergyRow[], opts: MlEnergyOptions = {}): Measurement[] {
  return rows.map((row) => {
    const m: Measurement = {
      model: mlEnergyModel(row),
      gpu: getGpu(row.gpu),
      gpuCount: row.n_gpus,
      batch: row.batch,
      inputTokens: opts.inputTokens ?? 256,
      outputTokens: opts.outputTokens ?? 717,
      source: `ML.ENERGY v3 ${row.model} on ${row.n_gpus}×${row.gpu}, batch ${row.batch}`,
    };
    if (opts.engine) m.engine = opts.engine;
    if (row.j_per_output_token !== undefined) m.j_per_output_token = row.j_per_output_token;
    if (row.output_tok_per_s !== undefined) m.output_tokens_per_s = row.output_tok_per_s;
    if (row.avg_power_w !== undefined) m.avg_power_w = row.avg_power_w / row.n_gpus;
    return m;
  });
}

// The cap rule's exponent, fitted to "From Words to Watts"

/**
 * "From Words to Watts" (Samsi et al., HPEC 2023): LLaMA-65B on 4×A100 80GB, GSM8K, batch 64,
 * capped at 175 W instead of 250 W: time +6.23/+6.51/+7.40% and energy −21.82/−23.95/−23.87% for
 * max output length 256/512/1024. Their FairScale generation loop runs to the max length, so that
 * is the number of decode steps; GSM8K questions are about 64 tokens.
 */
export const WORDS_TO_WATTS_CAP = {
  model: 'llama-65b',
  gpu: 'A100-80GB',
  gpuCount: 4,
  batch: 64,
  inputTokens: 64,
  numPrompts: 4096,
  fromW: 250,
  toW: 175,
  points: [
    { outputTokens: 256, timeChange: 0.0623, energyChange: -0.2182 },
    { outputTokens: 512, timeChange: 0.0651, energyChange: -0.2395 },
    { outputTokens: 1024, timeChange: 0.074, energyChange: -0.2387 },
  ],
  meanTimeChange: 0.067,
  meanEnergyChange: -0.232,
};

export interface CapEffect {
  outputTokens: number;
  timeChange: number;
  energyChange: number;
}

/** Predicted time and energy change of the Words-to-Watts cap experiment under a given exponent. */
export function wordsToWattsCapEffect(capTimeExponent?: number): CapEffect[] {
  const a = WORDS_TO_WATTS_CAP;
  const base = {
    model: resolveModel(a.model),
    gpu: getGpu(a.gpu),
    gpuCount: a.gpuCount,
    inputTokens: a.inputTokens,
    numPrompts: a.numPrompts,
    concurrency: a.batch,
  };
  return a.points.map(({ outputTokens }) => {
    const at = (powerCapW: number) => predictPointUsing({ ...base, outputTokens, powerCapW }, { capTimeExponent });
    const from = at(a.fromW);
    const to = at(a.toW);
    return { outputTokens, timeChange: to.runtime_s / from.runtime_s - 1, energyChange: to.energy_j / from.energy_j - 1 };
  });
}

/** The exponent for which the prior reproduces the mean Words-to-Watts time increase (bisection). */
export function fitCapTimeExponent(): number {
  const target = WORDS_TO_WATTS_CAP.meanTimeChange;
  const meanTime = (e: number) => {
    const fx = wordsToWattsCapEffect(e);
    return fx.reduce((s, x) => s + x.timeChange, 0) / fx.length;
  };
  let lo = 0;
  let hi = 2;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (meanTime(mid) < target) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}


/**
 * The ML.ENERGY Leaderboard v3 rows (data/published/mlenergy-v3-leaderboard.csv, written by
 * scripts/mlenergy-leaderboard.py from github.com/ml-energy/leaderboard): every LLM configuration of
 * its three text tasks, as measurements the prior is fitted to and checked against.
 */
import type { Measurement } from './calibrate';
import { getGpu, lookupModel, withDtype, DTYPES, type Dtype, type ModelShape } from './catalog';
import { parseCsv } from './published';
import { isMoe } from './shape';

export type LeaderboardTask = 'lm-arena-chat' | 'gpqa' | 'sourcegraph-fim';

/**
 * Mean prompt length of each task. The leaderboard publishes output lengths, not prompt lengths: these
 * are assumptions, said in every row's source. LM Arena chat prompts and GPQA questions are short;
 * fill-in-the-middle sends a file's prefix and suffix, so its rows are kept out of the accuracy targets.
 */
export const TASK_PROMPT_TOKENS: Record<LeaderboardTask, number> = { 'lm-arena-chat': 256, gpqa: 300, 'sourcegraph-fim': 1500 };

/**
 * Rows the prior is fitted to and scored on. Kept out, and shown as context: fill-in-the-middle (its prompt
 * length is not published and dominates its cost), and GPQA on B200 — host-bound runs: median ITL 30–48 ms
 * for 8B–14B dense models at batch 8–128, flat in the batch, 3–5× the same models' H100 runs, at a third of
 * the B200's power range (accuracy.ts prints the comparison). A GPU-side model cannot see that stall.
 */
export function isScored(p: Pick<LeaderboardPoint, 'task' | 'gpu'>): boolean {
  return p.task === 'lm-arena-chat' || (p.task === 'gpqa' && p.gpu !== 'B200');
}

export interface LeaderboardPoint {
  task: LeaderboardTask;
  measurement: Measurement;
  model: ModelShape;
  /** One architecture, whatever its checkpoint's name or precision: what leave-one-model-out holds out. */
  family: string;
  moe: boolean;
  gpu: string;
  gpuCount: number;
  expertParallel: boolean;
  batch: number;
  /** Measured median inter-token latency, s. */
  itlS?: number;
}

function num(cells: Record<string, string>, key: string, line: number): number {
  const x = Number(cells[key]);
  if (cells[key] === undefined || !Number.isFinite(x)) throw new Error(`leaderboard CSV line ${line}: ${key} is not a number ("${cells[key] ?? ''}")`);
  return x;
}

export function parseLeaderboardCsv(text: string): LeaderboardPoint[] {
  return parseCsv(text).map((cells, i) => {
    const line = i + 2;
    const task = cells.task as LeaderboardTask;
    if (!(task in TASK_PROMPT_TOKENS)) throw new Error(`leaderboard CSV line ${line}: unknown task "${cells.task}"`);
    const found = lookupModel(cells.hf_id ?? '');
    if (!found.ok) throw new Error(`leaderboard CSV line ${line}: ${found.message}`);
    const dtype = (DTYPES as readonly string[]).includes(cells.dtype ?? '') ? (cells.dtype as Dtype) : found.value.dtype;
    const model = withDtype(found.value, dtype);
    const gpuCount = num(cells, 'n_gpus', line);
    const batch = num(cells, 'avg_batch', line);
    const outputTokens = num(cells, 'avg_output_len', line);
    const inputTokens = TASK_PROMPT_TOKENS[task];
    const expertParallel = num(cells, 'ep', line) > 1;
    const running = cells.running_output_ctx ? Number(cells.running_output_ctx) : outputTokens / 2;
    const measurement: Measurement = {
      model,
      gpu: getGpu(cells.gpu!),
      gpuCount,
      batch,
      inputTokens,
      outputTokens: Math.max(2, Math.round(outputTokens)),
      contextPerSeq: inputTokens + running,
      j_per_output_token: num(cells, 'j_per_output_token', line),
      output_tokens_per_s: num(cells, 'output_tok_per_s', line),
      avg_power_w: num(cells, 'avg_power_w', line) / gpuCount,
      source: `${cells.source}: ${cells.hf_id} (${task}) on ${gpuCount}×${cells.gpu}${expertParallel ? ' EP' : ''}, max_num_seqs ${cells.max_num_seqs}; prompt length ${inputTokens} assumed`,
    };
    if (expertParallel) measurement.expertParallel = true;
    // The rows say tensor_parallel 1 with expert_parallel N but data_parallel 1: read as attention split over
    // the N GPUs (vLLM --tensor-parallel-size N --enable-expert-parallel). Reading it as data-parallel
    // attention fits the measurements worse (loss 0.048 against 0.035).
    const itl = Number(cells.median_itl_ms);
    return {
      task,
      measurement,
      model,
      family: familyOf(model),
      moe: isMoe(model),
      gpu: cells.gpu!,
      gpuCount,
      expertParallel,
      batch,
      ...(Number.isFinite(itl) && itl > 0 && { itlS: itl / 1000 }),
    };
  });
}

/** Checkpoints of one architecture (Llama 3.1 and 3.3 70B, an FP8 copy, a Thinking variant) are one family. */
export function familyOf(m: ModelShape): string {
  return [m.layers, m.hidden, m.heads, m.kvHeads, m.experts ?? 0, m.expertsPerToken ?? 0].join('/');
}

/** The batch regimes the accuracy table groups by. */
export function batchRegime(batch: number): string {
  return batch <= 8 ? 'batch ≤ 8' : batch <= 64 ? 'batch 9–64' : batch <= 256 ? 'batch 65–256' : 'batch > 256';
}

/**
 * Prompt lengths of a workload's dataset file, for estimates: without a tokenizer, about four characters
 * per token (BPE tokenizers on English text), and the estimate says so.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { DatasetLengths, DatasetStats } from '../estimate/config-estimate';

export const CHARS_PER_TOKEN = 4;
const cache = new Map<string, { mtimeMs: number; size: number; stats: DatasetStats | undefined }>();

function promptOf(record: unknown): string | undefined {
  if (typeof record === 'string') return record;
  if (!record || typeof record !== 'object') return undefined;
  const r = record as Record<string, unknown>;
  if (Array.isArray(r.conversations)) {
    for (const turn of r.conversations as Record<string, unknown>[]) {
      const who = turn?.from ?? turn?.role;
      if (who === 'human' || who === 'user') return String(turn.value ?? turn.content ?? '');
    }
    return undefined;
  }
  if (typeof r.instruction === 'string') return typeof r.input === 'string' && r.input ? `${r.instruction}\n\n${r.input}` : r.instruction;
  if (typeof r.question === 'string') return r.question;
  if (typeof r.prompt === 'string') return r.prompt;
  return undefined;
}

/** Mean prompt length of a JSONL file or JSON array (alpaca, gsm8k, sharegpt or plain prompts); undefined when unreadable. */
export function readDatasetStats(path: string): DatasetStats | undefined {
  let st;
  try {
    st = statSync(path);
  } catch {
    return undefined;
  }
  const hit = cache.get(path);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.stats;
  let stats: DatasetStats | undefined;
  try {
    const text = readFileSync(path, 'utf8');
    const records: unknown[] = text.trimStart().startsWith('[')
      ? (JSON.parse(text) as unknown[])
      : text.split(/\r?\n/).filter((l) => l.trim()).map((l) => JSON.parse(l) as unknown);
    const lengths = records.map(promptOf).filter((p): p is string => typeof p === 'string').map((p) => p.length / CHARS_PER_TOKEN);
    if (lengths.length) stats = { prompts: lengths.length, meanPromptTokens: lengths.reduce((a, x) => a + x, 0) / lengths.length, method: `characters / ${CHARS_PER_TOKEN}, no tokenizer` };
  } catch {
    stats = undefined;
  }
  cache.set(path, { mtimeMs: st.mtimeMs, size: st.size, stats });
  return stats;
}

/** A DatasetLengths that reads paths relative to the config's directory. */
export function datasetLengthsFrom(configDir: string): DatasetLengths {
  return (path) => readDatasetStats(resolve(configDir, path));
}

/**
 * The ML.ENERGY benchmark's LLM `results.json` (ml-energy/benchmark, mlenergy/benchmark/llm/benchmark.py):
 * vLLM-style latencies (ms) and Zeus energy measurements over the entire benchmark and over its steady state.
 */
import { Fields, isObject, parseJson } from './fields';
import { totalPower, type PowerTimeline } from './power-timeline';
import { scaled, statOf } from './stats';
import type { ImportedEnergy, ImportedRun, Stat } from './types';

export function readMlEnergy(text: string, file: string): ImportedRun {
  const root = new Fields(file, parseJson(text, file));
  if (!isObject(root.root)) root.fail('', 'expected a JSON object (ML.ENERGY results.json)');
  const durationS = root.num('duration');
  const completed = root.num('completed');
  const numPrompts = root.optNum('num_prompts');
  const input = root.num('total_input_tokens');
  const output = root.num('total_output_tokens');
  const entire = measurement(root, 'entire_benchmark_measurement');
  const steadyEnergy = measurement(root, 'steady_state_measurement');
  const perRequest = root.optArr('results');
  // Latencies from the per-request results where the file has them (successful requests), else its ms figures.
  const ok = perRequest?.map((_, i) => root.sub(`results.${i}`)).filter((r) => r.has('success') && (r.root as Record<string, unknown>).success === true);
  const ttft = ok?.length ? statOf(ok.map((r) => r.num('ttft'))) : fileStat(root, 'ttft', completed);
  const itl = ok?.length ? statOf(ok.flatMap((r) => r.nums('itl'))) : fileStat(root, 'itl', completed);
  const e2e = ok?.length ? statOf(ok.map((r) => r.num('latency'))) : fileStat(root, 'e2el', completed);
  const ssStart = root.optNum('timeline.steady_state_start_time');
  const ssEnd = root.optNum('timeline.steady_state_end_time');
  const ssJpt = root.optNum('steady_state_energy_per_token');
  const ssJ = root.optNum('steady_state_energy') ?? steadyEnergy?.totalJ;
  const params: Record<string, unknown> = {};
  // Client-side concurrency only; max_num_seqs is the server's batch limit (kept apart below).
  const concurrency = root.optNum('max_concurrency');
  if (concurrency !== undefined) params.concurrency = concurrency;
  // "inf" (every request at once) as vLLM's benchmark writes it.
  const rate = root.optStr('request_rate') === 'inf' ? 'inf' : root.optNum('request_rate');
  if (rate !== undefined) params.request_rate = rate;
  if (numPrompts !== undefined) params.num_prompts = numPrompts;
  params.input_tokens = Math.round(input / Math.max(1, completed));
  params.output_tokens = Math.round(output / Math.max(1, completed));
  const maxNumSeqs = root.optNum('max_num_seqs');
  if (maxNumSeqs !== undefined) params.max_num_seqs = maxNumSeqs;
  const gpuModel = root.optStr('gpu_model');
  const numGpus = root.optNum('num_gpus');
  const model = root.optStr('model_id');
  const start = root.optNum('timeline.benchmark_start_time');
  return {
    tool: 'mlenergy',
    files: [file],
    name: `ML.ENERGY · ${model?.split('/').pop() ?? 'unknown model'}`,
    model,
    started: start !== undefined ? new Date(start * 1000).toISOString() : mlDate(root.optStr('date')),
    power: powerTimeline(root),
    gpus: gpuModel ? Array.from({ length: numGpus ?? entire?.perGpu.length ?? 1 }, (_, index) => ({ index, name: gpuModel })) : undefined,
    points: [
      {
        id: 'benchmark',
        label: `${maxNumSeqs !== undefined ? `max_num_seqs ${maxNumSeqs}` : 'benchmark'}${numGpus ? ` · ${numGpus}× ${gpuModel ?? 'GPU'}` : ''}`,
        params,
        status: completed > 0 ? 'ok' : 'error',
        start,
        durationS,
        requests: { ok: completed, errors: (numPrompts ?? completed) - completed },
        tokens: { input, output },
        throughput: {
          outputTokensPerS: root.optNum('output_throughput') ?? output / durationS,
          totalTokensPerS: root.optNum('total_token_throughput') ?? (input + output) / durationS,
          requestsPerS: root.optNum('request_throughput') ?? completed / durationS,
        },
        latency: { ttft, itl, e2e },
        tokensFrom: 'usage',
        energy: entire,
        steady:
          ssStart !== undefined && ssEnd !== undefined && ssJ !== undefined && ssJpt !== undefined && ssJpt > 0
            ? { start: ssStart, end: ssEnd, durationS: root.optNum('steady_state_duration') ?? ssEnd - ssStart, energyJ: ssJ, outputTokens: Math.round(ssJ / ssJpt) }
            : undefined,
      },
    ],
    notes: [
      'Imported from the ML.ENERGY benchmark: latencies recomputed from its per-request results (successful ones; percentiles by linear interpolation), in seconds.',
      "ML.ENERGY ITL is over every gap between streamed chunks, like Wattbench; its TPOT (per request, first token excluded) is not shown as ITL.",
      'Output tokens from the server\'s usage stats (the benchmark asks for continuous usage), else its tokenizer.',
      'Energy: Zeus (NVML energy counter where the GPU has one) over the entire benchmark, all GPUs; ' +
        "the steady window is the benchmark's own steady state (from max_num_seqs requests' first token to the last max_num_seqs'), " +
        'and its J/token is the file\'s steady_state_energy_per_token. Per-request energy in the file is that J/token times output length, not measured, and is not used.',
    ],
  };
}

/**
 * Zeus's `PowerMonitor.get_all_power_timelines()` as the benchmark stores it under `timeline.power`:
 * {domain: {gpu: [[t, W]]}}. The GPUs' own power (`device_instant`, else the driver's `device_average`),
 * summed; `memory_average` is part of it and is not added. Absent when the file has none.
 */
function powerTimeline(root: Fields): PowerTimeline | undefined {
  for (const domain of ['device_instant', 'device_average']) {
    const path = `timeline.power.${domain}`;
    if (!root.has(path)) continue;
    const gpus = Object.keys(root.sub(path).root as Record<string, unknown>).map((gpu) =>
      root.arr(`${path}.${gpu}`).map((_, i) => [root.num(`${path}.${gpu}.${i}.0`), root.num(`${path}.${gpu}.${i}.1`)] as [number, number]),
    );
    const timeline = totalPower(gpus);
    if (timeline.length) return timeline;
  }
  return undefined;
}

/** A Zeus Measurement as asdict writes it: {time, gpu_energy: {index: J}, …}. */
function measurement(root: Fields, path: string): ImportedEnergy | undefined {
  if (!root.has(path)) return undefined;
  const m = root.sub(path);
  const energies = m.sub('gpu_energy');
  const perGpu = Object.keys(energies.root as Record<string, unknown>).map((gpu) => ({ gpu, energyJ: energies.num(gpu) }));
  return { method: 'counter', totalJ: perGpu.reduce((s, g) => s + g.energyJ, 0), perGpu, durationS: m.num('time') };
}

function fileStat(root: Fields, metric: string, n: number): Stat | undefined {
  const mean = root.optNum(`mean_${metric}_ms`);
  return mean === undefined ? undefined : scaled({ n, mean, p50: root.optNum(`median_${metric}_ms`), p90: root.optNum(`p90_${metric}_ms`), p99: root.optNum(`p99_${metric}_ms`) }, 1e-3);
}

function mlDate(date: string | undefined): string | undefined {
  const m = date && /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})$/.exec(date);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}` : undefined;
}

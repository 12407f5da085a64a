/**
 * 3. Estimator: predicting and annotating every point of a 1,000-point sweep (estimateConfig on
 * loadConfig's points) against parsing and validating the file that declares them (loadConfig).
 */
import { loadConfig } from '../src/core/config';
import { estimateConfig } from '../src/core/estimate/config-estimate';
import { judge, median, now, round, spread, type Figure } from './figure';
import { profileHere } from './profile';

const CONCURRENCY = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const POWER_CAP_W = [250, 300, 350, 400, 450, 500, 550, 600, 650, 700];
const OUTPUT_TOKENS = [64, 128, 192, 256, 384, 512, 717, 1024, 1536, 2048];

/** A realistic config whose sweep is the Cartesian product 10 × 10 × 10. */
export const SWEEP_CONFIG = `# 1,000 points: concurrency × power cap × output length
name: bench-1000-points
description: Llama-3.1-8B on 1×H100, a sweep wide enough to stress the estimator.
target: gpu-h100
server:
  command: vllm serve meta-llama/Llama-3.1-8B-Instruct --max-num-seqs 512 --port 8000
  engine: vllm
model:
  id: meta-llama/Llama-3.1-8B-Instruct
  dtype: bf16
gpus:
  type: H100-SXM-80GB
  count: 1
workload:
  dataset: synthetic
  input_tokens: { mean: 256, std: 32, min: 64, max: 512 }
  num_prompts: 512
  warmup: 8
sweep:
  concurrency: [${CONCURRENCY.join(', ')}]
  power_cap_w: [${POWER_CAP_W.join(', ')}]
  output_tokens: [${OUTPUT_TOKENS.join(', ')}]
telemetry:
  source: auto
  interval: 100ms
  idle_baseline: 10s
`;

const WARMUP = 3;
const PASSES = 101;

export async function estimator(): Promise<Figure> {
  const load = () => loadConfig(SWEEP_CONFIG);
  const first = load();
  if (!first.config) throw new Error(`the bench's sweep config is invalid: ${first.diagnostics.map((d) => d.message).join('; ')}`);
  if (first.points.length !== 1000) throw new Error(`the bench's sweep has ${first.points.length} points, not 1,000`);
  const config = first.config;
  const points = first.points;
  const estimate = () => {
    const result = estimateConfig(config, points);
    if (!result.total || result.points.some((p) => !p.prediction)) throw new Error(`estimateConfig left points without a prediction: ${result.error ?? result.points.find((p) => p.error)?.error}`);
    return result;
  };
  const timeOnce = (work: () => unknown) => {
    const start = now();
    work();
    return now() - start;
  };
  const coldEstimate = timeOnce(estimate);
  for (let i = 0; i < WARMUP; i++) {
    timeOnce(load);
    timeOnce(estimate);
  }
  const loadMs: number[] = [];
  const estimateMs: number[] = [];
  for (let i = 0; i < PASSES; i++) {
    loadMs.push(timeOnce(load));
    estimateMs.push(timeOnce(estimate));
  }
  const value = median(estimateMs);
  const baseline = median(loadMs);
  const figure: Figure = {
    title: 'Estimator, 1,000-point sweep',
    value: round(value),
    unit: 'ms',
    baseline: { value: round(baseline), unit: 'ms', what: 'loadConfig of the same file (parse, schema check, resolve, sweep expansion)' },
    ratio: round(value / baseline),
    target: { on: 'ratio', op: '<', limit: 1 },
    method:
      'A YAML config (vLLM, Llama-3.1-8B, 1×H100) whose sweep is concurrency × power_cap_w × output_tokens, 10 values each. ' +
      'Value: estimateConfig(config, points) with no calibration profile (the roofline prior: every point\'s runtime, power, energy, J/token, TTFT and HELM idealized runtime, plus the totals and bands the CodeLens shows; ' +
      'a point\'s breakdown, basis sentence and band are built when a hover or --json reads them). ' +
      `Baseline: loadConfig(text). Median of ${PASSES} alternating passes after ${WARMUP} warm-up passes, in a bundled child. ` +
      'Not included: drawing the inlay hints and hovers in VS Code (src/vscode/estimates.ts), which read this result.',
    details: {
      points: points.length,
      estimate_ms: spread(estimateMs),
      load_ms: spread(loadMs),
      first_estimate_ms: round(coldEstimate),
    },
  };
  if (!judge(figure).met)
    figure.details!.hotspots = await profileHere(() => {
      for (let i = 0; i < 20; i++) estimate();
    });
  return figure;
}

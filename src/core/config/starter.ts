/** The commented starter file written by "Wattbench: New Benchmark Config". It validates as it is. */
export function starterConfig(name: string, options: { simulated: boolean; schemaPath?: string }): string {
  const target = options.simulated
    ? `target: local              # "local", an alias from ~/.ssh/config, user@host:port, a list, or { slurm: ... }`
    : `target: my-gpu-host        # an alias from ~/.ssh/config, user@host:port, a list of hosts, or { slurm: ... }`;
  const server = options.simulated
    ? `server:
  sim: true                  # Wattbench's built-in simulated server and GPU: no GPU or weights needed`
    : `server:
  command: vllm serve meta-llama/Llama-3.1-8B-Instruct --port 8000   # or leave out to use a running server
  base_url: http://127.0.0.1:8000/v1
  ready_timeout: 15m`;
  return `${options.schemaPath ? `$schema: ${options.schemaPath}\n` : ''}# A Wattbench benchmark config. Hover a key for its meaning; the CodeLens above shows the estimate.
name: ${name}
description: What this benchmark measures and why.
${target}
${server}
model:
  id: meta-llama/Llama-3.1-8B-Instruct   # a catalog model; for others give params_b, layers, hidden, heads, kv_heads
gpus:
  type: H100-SXM-80GB
  count: 1
workload:
  dataset: synthetic         # or a JSONL/JSON file (alpaca, gsm8k, sharegpt or plain prompts)
  input_tokens: 256
  output_tokens: 256
  num_prompts: 64
  warmup: 2
sweep:                       # every combination of these lists is one point
  concurrency: [1, 8, 32]
  # power_cap_w: [300W, 250W]
telemetry:
  source: ${options.simulated ? 'sim' : 'auto'}${' '.repeat(options.simulated ? 15 : 14)}# auto tries NVML, then nvidia-smi, then amd-smi
  interval: 100ms
  idle_baseline: 5s
cost:
  usd_per_kwh: 0.15
  gco2_per_kwh: 400
`;
}

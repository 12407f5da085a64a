/**
 * The one source of truth for the config format. `schemas/wattbench.schema.json` is generated from
 * this (`npm run gen:schema`), the input types are `Static<>` of it, and a test checks both agree.
 */
import { Type, type SchemaOptions, type Static, type TLiteral, type TSchema, type TUnion } from '@sinclair/typebox';

/** A union of string literals that keeps the literal types for Static<>. */
function OneOf<const T extends readonly string[]>(values: T, options: SchemaOptions): TUnion<{ -readonly [K in keyof T]: TLiteral<T[K]> }> {
  return Type.Union(values.map((v) => Type.Literal(v)), options) as never;
}

const DURATION_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|sec|m|min|h)?\\s*$';
const POWER_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*(W|w|kW|kw)?\\s*$';

export const Duration = Type.Union(
  [
    Type.Number({ minimum: 0, description: 'Seconds.' }),
    Type.String({ pattern: DURATION_PATTERN, description: 'A duration such as "30s", "10m", "1h" or "100ms".' }),
  ],
  { errorMessage: 'Expected a duration such as 30s, 10m, 1h or 100ms (a bare number means seconds).', 'x-unit': 'duration' },
);

/** A Duration with a description of its own (the hover text of the key). */
const DurationOf = (description: string) =>
  Type.Union([...Duration.anyOf], { errorMessage: Duration.errorMessage as string, 'x-unit': 'duration', description });

export const Power = Type.Union(
  [
    Type.Number({ exclusiveMinimum: 0, description: 'Watts.' }),
    Type.String({ pattern: POWER_PATTERN, description: 'A power such as "250W" or "0.3kW".' }),
  ],
  { errorMessage: 'Expected a power such as 250W or 0.3kW (a bare number means watts).', 'x-unit': 'power' },
);

const PositiveInt = (description: string, extra: object = {}) =>
  Type.Integer({ minimum: 1, description, ...extra });

export const LengthDistribution = Type.Union(
  [
    PositiveInt('Every request has exactly this many tokens.'),
    Type.Object(
      {
        dist: Type.Optional(
          Type.Union([Type.Literal('fixed'), Type.Literal('normal'), Type.Literal('uniform'), Type.Literal('lognormal')], {
            description: 'Shape of the distribution (default normal when std is given, else fixed).',
          }),
        ),
        mean: Type.Number({ exclusiveMinimum: 0, description: 'Mean number of tokens.' }),
        std: Type.Optional(Type.Number({ minimum: 0, description: 'Standard deviation in tokens.' })),
        min: Type.Optional(PositiveInt('Smallest length drawn.')),
        max: Type.Optional(PositiveInt('Largest length drawn.')),
      },
      { additionalProperties: false },
    ),
  ],
  { errorMessage: 'Expected a token count (e.g. 256) or a distribution such as { mean: 256, std: 64 }.' },
);

const HostString = Type.String({
  minLength: 1,
  description: '"local", an alias from ~/.ssh/config, or user@host[:port].',
});

export const SlurmTarget = Type.Object(
  {
    login: Type.String({ minLength: 1, description: 'SSH host of the login node (alias or user@host[:port]).' }),
    // Written into #SBATCH lines, which Slurm splits at blanks and cuts at '#': one word only.
    partition: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.,:@+-]+$', errorMessage: 'a partition name (letters, digits and _ . , : @ + - only)', description: 'Partition (sbatch --partition).' })),
    nodes: Type.Optional(PositiveInt('Number of nodes (sbatch --nodes).', { default: 1 })),
    gpus_per_node: Type.Optional(PositiveInt('GPUs per node (sbatch --gres=gpu:N).')),
    time_limit: Type.Optional(Duration),
    account: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.,:@+-]+$', errorMessage: 'an account name (letters, digits and _ . , : @ + - only)', description: 'Account to charge (sbatch --account).' })),
    sbatch_options: Type.Optional(
      Type.Array(Type.String({ pattern: '^-[^\\s#]+$', errorMessage: 'one sbatch option without blanks or #, e.g. "--qos=high"' }), { description: 'Extra sbatch options, e.g. "--qos=high".' }),
    ),
    setup: Type.Optional(
      Type.Array(Type.String(), { description: 'Shell lines run before the agent (module load, source venv/bin/activate).' }),
    ),
    workdir: Type.Optional(Type.String({ pattern: '^/[^\\s#\'"$`\\\\]*$', errorMessage: 'an absolute path without blanks, quotes, $, ` or #', description: 'Directory on the shared filesystem for run files.' })),
  },
  { additionalProperties: false },
);

export const Target = Type.Union(
  [
    HostString,
    Type.Array(HostString, { minItems: 1, description: 'Several hosts: sweep points are spread over them.' }),
    Type.Object({ slurm: SlurmTarget }, { additionalProperties: false }),
  ],
  {
    description: 'Where the benchmark runs.',
    errorMessage: 'Expected "local", an SSH host, a list of hosts, or { slurm: { login: ... } }.',
  },
);

export const Server = Type.Object(
  {
    sim: Type.Optional(
      Type.Boolean({
        description: "Use Wattbench's built-in simulated OpenAI-compatible server (no GPU or weights needed).",
      }),
    ),
    command: Type.Optional(
      Type.String({ minLength: 1, description: 'Shell command that starts the inference server (vLLM, SGLang, TGI, llama.cpp, ...).' }),
    ),
    base_url: Type.Optional(
      Type.String({ pattern: '^https?://', description: 'OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1.' }),
    ),
    api: Type.Optional(
      Type.Union([Type.Literal('completions'), Type.Literal('chat'), Type.Literal('generate')], {
        description: "Endpoint: /completions or /chat/completions under base_url, or `generate`: TGI's native /generate_stream on the server's root (its `details` give the generated token count).",
      }),
    ),
    served_model: Type.Optional(Type.String({ description: 'Model name sent in requests (default: model.id).' })),
    engine: Type.Optional(
      Type.String({
        description:
          'Engine preset: vllm, sglang, tgi, llama.cpp, ollama, trtllm, lmdeploy, openai or generic (default: guessed from `command`). ' +
          'Sets the readiness probe, the engine metrics scraped beside power, the request fields that make it generate exactly max_tokens, and keys calibration.',
      }),
    ),
    ready_timeout: Type.Optional(Duration),
    env: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'Environment variables for the server.' })),
    api_key_env: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
        description:
          "Name of an environment variable on the host holding the API key, sent as `Authorization: Bearer` with every request and readiness probe (default OPENAI_API_KEY for engine `openai`). The key itself never goes in the config or the job.",
      }),
    ),
  },
  { additionalProperties: false },
);

export const DType = OneOf(['fp32', 'bf16', 'fp16', 'fp8', 'int8', 'int4'], { description: 'Weight data type.' });

export const Model = Type.Object(
  {
    id: Type.String({ minLength: 1, description: 'Model id (Hugging Face id or a built-in catalog name).' }),
    params_b: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Parameters, in billions.' })),
    layers: Type.Optional(PositiveInt('Transformer layers.')),
    hidden: Type.Optional(PositiveInt('Hidden size (d_model).')),
    heads: Type.Optional(PositiveInt('Attention heads.')),
    kv_heads: Type.Optional(PositiveInt('Key/value heads (grouped-query attention).')),
    intermediate: Type.Optional(PositiveInt('MLP intermediate size.')),
    vocab: Type.Optional(PositiveInt('Vocabulary size.')),
    dtype: Type.Optional(DType),
    experts: Type.Optional(PositiveInt('Mixture-of-experts: number of experts.')),
    experts_per_token: Type.Optional(PositiveInt('Mixture-of-experts: experts active per token.')),
    active_params_b: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Mixture-of-experts: active parameters, in billions.' })),
    config: Type.Optional(Type.String({ minLength: 1, description: "A local Hugging Face config.json, or a model directory holding one (relative to this config): the model's shape is read from it." })),
    head_dim: Type.Optional(PositiveInt('Attention head width, where it is not hidden / heads (Qwen3, Gemma 3, Mistral-Nemo).')),
    kv_lora_rank: Type.Optional(PositiveInt('Multi-head latent attention (DeepSeek-V2/V3, Kimi K2): width of the compressed KV latent the cache holds.')),
    q_lora_rank: Type.Optional(PositiveInt('Multi-head latent attention: width of the low-rank query projection.')),
    qk_rope_head_dim: Type.Optional(PositiveInt('Multi-head latent attention: rotary part of each query/key head (cached beside the latent).')),
    qk_nope_head_dim: Type.Optional(PositiveInt('Multi-head latent attention: non-rotary part of each query/key head.')),
    v_head_dim: Type.Optional(PositiveInt('Multi-head latent attention: value head width.')),
    shared_experts: Type.Optional(Type.Integer({ minimum: 0, description: 'Mixture-of-experts: always-active shared experts per MoE layer.' })),
    moe_intermediate: Type.Optional(PositiveInt('Mixture-of-experts: MLP width of one expert.')),
    dense_layers: Type.Optional(Type.Integer({ minimum: 0, description: 'Mixture-of-experts: layers with a dense MLP instead of experts (DeepSeek first_k_dense_replace).' })),
    sliding_window: Type.Optional(PositiveInt('Sliding-window attention: tokens a windowed layer attends to.')),
    sliding_layers: Type.Optional(Type.Integer({ minimum: 0, description: 'Sliding-window attention: how many layers are windowed (default all, when sliding_window is given).' })),
    tied_embeddings: Type.Optional(Type.Boolean({ description: 'The output head shares the input embedding matrix (tie_word_embeddings).' })),
  },
  { additionalProperties: false },
);

export const Gpus = Type.Object(
  {
    type: Type.Optional(Type.String({ description: 'Expected GPU type, e.g. H100-SXM-80GB (used for estimates; checked on the host).' })),
    count: Type.Optional(PositiveInt('Number of GPUs used (tensor parallel size).', { default: 1 })),
    indices: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1, description: 'GPU indices on the host.' })),
    power_cap_w: Type.Optional(Power),
  },
  { additionalProperties: false },
);

export const DatasetFormat = OneOf(['auto', 'alpaca', 'gsm8k', 'sharegpt', 'prompts'], { description: 'Layout of the dataset file.' });

// Unwrapped field schemas, so the workload and the sweep lists share one definition of each.
const Dataset = Type.String({ minLength: 1, description: '"synthetic", or a JSONL/JSON file in the workspace (relative to this config).' });
const NumPrompts = PositiveInt('Requests measured per point.');
const MaxTokens = PositiveInt('Maximum output tokens per request.');
const Concurrency = PositiveInt('Requests kept in flight.');
const RequestRate = Type.Number({ exclusiveMinimum: 0, description: 'Requests per second (Poisson arrivals).' });
const Temperature = Type.Number({ minimum: 0, maximum: 2, description: 'Sampling temperature.' });
const GpuCount = PositiveInt('Number of GPUs (tensor parallel size).');

export const Workload = Type.Object(
  {
    dataset: Type.Optional(Dataset),
    format: Type.Optional(DatasetFormat),
    input_tokens: Type.Optional(LengthDistribution),
    output_tokens: Type.Optional(LengthDistribution),
    num_prompts: Type.Optional(NumPrompts),
    max_tokens: Type.Optional(MaxTokens),
    concurrency: Type.Optional(Concurrency),
    request_rate: Type.Optional(RequestRate),
    warmup: Type.Optional(Type.Integer({ minimum: 0, description: 'Warm-up requests sent before measuring.' })),
    temperature: Type.Optional(Temperature),
    top_p: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, description: 'Nucleus sampling.' })),
    client_processes: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 64,
        description:
          'Processes the agent sends this load from (default: one per 128 streams, or per 5,000 chunks/s at a request rate, up to the CPUs the agent may run on (its affinity: a Slurm step\'s or a container\'s cpuset) and 8). 1 keeps every request on one event loop.',
      }),
    ),
    ignore_eos: Type.Optional(Type.Boolean({ description: 'Generate exactly max_tokens / output_tokens (default true).' })),
    time_limit: Type.Optional(Duration),
    command: Type.Optional(Type.String({ minLength: 1, description: 'Run this command as the workload instead of HTTP load.' })),
    tool: Type.Optional(
      Type.Union([Type.Literal('vllm-bench'), Type.Literal('guidellm'), Type.Literal('aiperf')], {
        description: 'Run this benchmark tool against the server as the workload; its per-request timings become the run\'s requests.',
      }),
    ),
    tool_args: Type.Optional(
      Type.Array(Type.String(), { description: 'The tool\'s own CLI arguments, after those Wattbench sets (target, model, output).' }),
    ),
    seed: Type.Optional(Type.Integer({ description: 'Seed for synthetic prompts and arrivals.' })),
  },
  { additionalProperties: false },
);

const sweepValues = {
  concurrency: Concurrency,
  request_rate: RequestRate,
  max_tokens: MaxTokens,
  num_prompts: NumPrompts,
  input_tokens: LengthDistribution,
  output_tokens: LengthDistribution,
  temperature: Temperature,
  dataset: Dataset,
  power_cap_w: Power,
  gpu_count: GpuCount,
};
export type SweepKey = keyof typeof sweepValues;
export const SWEEPABLE_KEYS = Object.keys(sweepValues) as SweepKey[];

const listOf = <T extends TSchema>(key: string, item: T) =>
  Type.Optional(Type.Array(item, { minItems: 1, description: `Values of ${key} to sweep.` }));

/**
 * Service-level objectives: a request is good when it meets every one given (vLLM's `bench serve
 * --goodput`); a point meets the SLO when `percentile`% of its measured requests meet each objective.
 */
export const Slo = Type.Object(
  {
    ttft: Type.Optional(DurationOf('Time to first token each request must meet, e.g. 500ms.')),
    itl: Type.Optional(DurationOf('Mean inter-token latency of each request, e.g. 50ms.')),
    tpot: Type.Optional(DurationOf("Time per output token of each request after the first: (e2e − TTFT) / (output tokens − 1), vLLM's TPOT.")),
    e2e: Type.Optional(DurationOf('End-to-end latency of each request, e.g. 20s.')),
    percentile: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100, description: 'The SLO is met when this share (%) of measured requests meets each objective (default 99).' })),
  },
  { additionalProperties: false, minProperties: 1, description: 'Latency objectives per request: attainment, goodput and energy per SLO-meeting token are reported against them.' },
);

export const SweepPoint = Type.Partial(Type.Object({ ...sweepValues, slo: Slo }, { additionalProperties: false }), {
  additionalProperties: false,
  minProperties: 1,
  description: 'One explicit point: values for sweepable fields.',
});

export const Sweep = Type.Object(
  {
    concurrency: listOf('concurrency', Concurrency),
    request_rate: listOf('request_rate', RequestRate),
    max_tokens: listOf('max_tokens', MaxTokens),
    num_prompts: listOf('num_prompts', NumPrompts),
    input_tokens: listOf('input_tokens', LengthDistribution),
    output_tokens: listOf('output_tokens', LengthDistribution),
    temperature: listOf('temperature', Temperature),
    dataset: listOf('dataset', Dataset),
    power_cap_w: listOf('power_cap_w', Power),
    gpu_count: listOf('gpu_count', GpuCount),
    points: Type.Optional(Type.Array(SweepPoint, { minItems: 1, description: 'Explicit points, crossed with any lists above.' })),
  },
  { additionalProperties: false, description: 'Lists of values (their Cartesian product) and/or explicit points.' },
);

export const Telemetry = Type.Object(
  {
    source: Type.Optional(
      OneOf(['auto', 'nvml', 'nvidia-smi', 'amd-smi', 'sim'], {
        description: 'Where power and energy come from ("sim" simulates GPUs).',
      }),
    ),
    interval: Type.Optional(Duration),
    idle_baseline: Type.Optional(Duration),
  },
  { additionalProperties: false },
);

export const Cost = Type.Object(
  {
    usd_per_kwh: Type.Optional(Type.Number({ minimum: 0, description: 'Electricity price, $/kWh.' })),
    gco2_per_kwh: Type.Optional(Type.Number({ minimum: 0, description: 'Grid carbon intensity, gCO2/kWh.' })),
    pue: Type.Optional(Type.Number({ minimum: 1, description: 'Data-centre power usage effectiveness (≥ 1).' })),
    usd_per_gpu_hour: Type.Optional(Type.Number({ minimum: 0, description: 'Price of one GPU-hour, $.' })),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String()),
    name: Type.String({ minLength: 1, description: 'Short name of this benchmark.' }),
    description: Type.Optional(Type.String()),
    target: Type.Optional(Target),
    server: Type.Optional(Server),
    model: Model,
    gpus: Type.Optional(Gpus),
    workload: Type.Optional(Workload),
    sweep: Type.Optional(Sweep),
    telemetry: Type.Optional(Telemetry),
    repeats: Type.Optional(PositiveInt('Repeat each point this many times (the denoised runtime uses the minimum).')),
    cost: Type.Optional(Cost),
    slo: Type.Optional(Slo),
  },
  {
    $id: 'https://wattbench.dev/schemas/wattbench.schema.json',
    title: 'Wattbench benchmark config',
    additionalProperties: false,
  },
);

export type ConfigInput = Static<typeof ConfigSchema>;
export type TargetInput = Static<typeof Target>;
export type SlurmTargetInput = Static<typeof SlurmTarget>;
export type WorkloadInput = Static<typeof Workload>;
export type LengthInput = Static<typeof LengthDistribution>;
export type SweepPointInput = Static<typeof SweepPoint>;
export type SloInput = Static<typeof Slo>;

/** The JSON Schema document written to schemas/wattbench.schema.json. */
export function jsonSchemaDocument(): object {
  return JSON.parse(
    JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...ConfigSchema }),
  );
}

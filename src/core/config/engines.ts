/**
 * Engine presets: what Wattbench knows about each inference server — how to tell it is ready, where its
 * Prometheus metrics are and what they are called, and which request fields make it generate exactly
 * `max_tokens`. `server.engine` names one (or it is guessed from `server.command` / `server.base_url`);
 * the preset's effect goes into the job (`src/core/run/job.ts`) for the agent.
 */

/** The values of the agent's `engine` event, the same for every engine (docs/protocol.md). */
export type EngineMetric = 'running' | 'waiting' | 'kv_cache_usage' | 'preemptions_total';

export const ENGINE_NAMES = ['vllm', 'sglang', 'tgi', 'llama.cpp', 'ollama', 'trtllm', 'lmdeploy', 'openai', 'sim', 'generic'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/** How the engine is made to generate exactly `max_tokens` when the workload asks (`ignore_eos`). */
export type ExactLength =
  | { kind: 'fields'; fields: Record<string, unknown>; note?: string }
  /** The engine's OpenAI route cannot: nothing is sent, output lengths vary, a warning says so. */
  | { kind: 'unsupported'; why: string }
  /** Unknown engine: the workload's `ignore_eos` is sent as-is (the agent's behaviour before presets). */
  | { kind: 'passthrough' };

export interface EnginePreset {
  name: EngineName;
  label: string;
  /**
   * Readiness probes, tried in order; ready at the first that answers 200. A path starting with `/` is from
   * the server's root, any other is relative to `base_url` (`models` → `base_url/models`). null: the agent's
   * default (`base_url/models`, then `/health`).
   */
  probePaths: string[] | null;
  /** The Prometheus text metrics, from the server's root; null when the engine has none. */
  metricsPath: string | null;
  /** What has to be true for `metricsPath` to answer: a flag on the server's command line. */
  metricsFlag?: string;
  /** The engine's metric names for each normalised value, in order of preference (renamed ones: newest first). */
  metrics: Partial<Record<EngineMetric, string[]>>;
  exactLength: ExactLength;
  /** Whether the OpenAI route lives under `/v1` of the server (so a base_url without it hits the native API). */
  openAiUnderV1: boolean;
  /** The host's environment variable holding the API key, sent as `Authorization: Bearer` (a hosted API). */
  apiKeyEnv?: string;
  /** Where each fact above comes from. */
  sources: string[];
}

const IGNORE_EOS: ExactLength = { kind: 'fields', fields: { ignore_eos: true } };

export const ENGINE_PRESETS: Record<EngineName, EnginePreset> = {
  vllm: {
    name: 'vllm',
    label: 'vLLM',
    probePaths: ['/health', 'models'],
    metricsPath: '/metrics',
    metrics: {
      running: ['vllm:num_requests_running'],
      waiting: ['vllm:num_requests_waiting'],
      // renamed in the V1 engine (0.10 serves only the new name; 0.7 only the old one)
      kv_cache_usage: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
      preemptions_total: ['vllm:num_preemptions_total'],
    },
    exactLength: {
      kind: 'fields',
      fields: { ignore_eos: true },
      note: '`min_tokens` would say the same per request but needs each point\'s max_tokens; `ignore_eos` alone already runs to max_tokens',
    },
    openAiUnderV1: true,
    sources: [
      'https://docs.vllm.ai/en/latest/usage/metrics/ (metric names; kv_cache_usage_perc replaces gpu_cache_usage_perc in V1)',
      'https://docs.vllm.ai/en/latest/serving/openai_compatible_server/ (extra sampling parameters: ignore_eos, min_tokens; /health)',
      'test/fixtures/metrics/vllm-0.7-gpu-cache.prom, vllm-0.10-kv-cache.prom (real /metrics excerpts)',
    ],
  },
  sglang: {
    name: 'sglang',
    label: 'SGLang',
    // /health_generate would run one generation per probe; /health is enough to know the server is up
    probePaths: ['/health', 'models'],
    metricsPath: '/metrics',
    metricsFlag: '--enable-metrics',
    metrics: {
      running: ['sglang:num_running_reqs'],
      waiting: ['sglang:num_queue_reqs'],
      kv_cache_usage: ['sglang:token_usage'],
    },
    exactLength: IGNORE_EOS,
    openAiUnderV1: true,
    sources: [
      'https://docs.sglang.ai/references/production_metrics.html (--enable-metrics; sglang:num_running_reqs, num_queue_reqs, token_usage)',
      'https://docs.sglang.ai/backend/sampling_params.html (ignore_eos)',
      'sgl-project/sglang#13485 (real /metrics of 0.5.1: test/fixtures/metrics/sglang-0.5.1.prom)',
    ],
  },
  tgi: {
    name: 'tgi',
    label: 'Text Generation Inference',
    probePaths: ['/health'],
    metricsPath: '/metrics',
    metrics: { running: ['tgi_batch_current_size'], waiting: ['tgi_queue_size'] },
    exactLength: {
      kind: 'unsupported',
      why: "TGI's OpenAI route (/v1/chat/completions, /v1/completions) has no ignore_eos: requests stop at the model's end of sequence, so output lengths vary",
    },
    openAiUnderV1: true,
    sources: [
      'https://huggingface.co/docs/text-generation-inference/reference/metrics (tgi_batch_current_size, tgi_queue_size)',
      'https://huggingface.co/docs/text-generation-inference/reference/api_reference (/health, the Messages API)',
    ],
  },
  'llama.cpp': {
    name: 'llama.cpp',
    label: 'llama.cpp server',
    probePaths: ['/health'], // 503 while the model loads, 200 once it can serve
    metricsPath: '/metrics',
    metricsFlag: '--metrics',
    metrics: {
      running: ['llamacpp:requests_processing'],
      waiting: ['llamacpp:requests_deferred'],
      // removed from newer builds (ggml-org/llama.cpp#13660): read where it is still served
      kv_cache_usage: ['llamacpp:kv_cache_usage_ratio'],
    },
    exactLength: {
      kind: 'fields',
      fields: { ignore_eos: true },
      note: 'the OpenAI route takes max_tokens as n_predict',
    },
    openAiUnderV1: true,
    sources: [
      'https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md (/health 503 while loading; --metrics; ignore_eos; n_predict)',
      'ggml-org/llama.cpp#11512, #22879 (metric names; kv_cache_usage_ratio removed)',
    ],
  },
  ollama: {
    name: 'ollama',
    label: 'Ollama',
    probePaths: ['/api/version', '/'],
    metricsPath: null,
    metrics: {},
    exactLength: {
      kind: 'unsupported',
      why: "Ollama's OpenAI route has no ignore_eos (only its native /api/generate options do): output lengths vary",
    },
    openAiUnderV1: true,
    sources: ['https://github.com/ollama/ollama/blob/main/docs/api.md (/api/version; no metrics endpoint)', 'https://github.com/ollama/ollama/blob/main/docs/openai.md'],
  },
  trtllm: {
    name: 'trtllm',
    label: 'TensorRT-LLM (trtllm-serve)',
    probePaths: ['/health', 'models'],
    // its /metrics answers JSON iteration statistics, not the Prometheus text format
    metricsPath: null,
    metrics: {},
    exactLength: IGNORE_EOS,
    openAiUnderV1: true,
    sources: ['https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve.html (/health, /metrics as JSON iteration stats; ignore_eos in the OpenAI protocol)'],
  },
  lmdeploy: {
    name: 'lmdeploy',
    label: 'LMDeploy',
    probePaths: ['/health', 'models'],
    // `--enable-metrics` serves /metrics, but its metric names are not verified here: not scraped
    metricsPath: null,
    metrics: {},
    exactLength: IGNORE_EOS,
    openAiUnderV1: true,
    sources: ['https://lmdeploy.readthedocs.io/en/latest/llm/api_server.html (OpenAI route; ignore_eos)'],
  },
  openai: {
    name: 'openai',
    label: 'OpenAI API',
    probePaths: ['models'],
    metricsPath: null,
    metrics: {},
    exactLength: {
      kind: 'unsupported',
      why: 'the OpenAI API accepts no engine fields (ignore_eos is not sent): output lengths vary',
    },
    openAiUnderV1: true,
    apiKeyEnv: 'OPENAI_API_KEY',
    sources: ['https://platform.openai.com/docs/api-reference/completions', 'https://platform.openai.com/docs/api-reference/authentication'],
  },
  sim: {
    name: 'sim',
    label: "Wattbench's simulated server",
    probePaths: null,
    metricsPath: null,
    metrics: {},
    exactLength: { kind: 'passthrough' },
    openAiUnderV1: true,
    sources: ['agent/wattbench_agent/simserver.py'],
  },
  generic: {
    name: 'generic',
    label: 'an OpenAI-compatible server',
    probePaths: null,
    metricsPath: null,
    metrics: {},
    exactLength: { kind: 'passthrough' },
    openAiUnderV1: false,
    sources: [],
  },
};

const ALIASES: Record<string, EngineName> = {
  'llama-cpp': 'llama.cpp',
  llamacpp: 'llama.cpp',
  'llama-server': 'llama.cpp',
  'text-generation-inference': 'tgi',
  'tensorrt-llm': 'trtllm',
  'trt-llm': 'trtllm',
  'trtllm-serve': 'trtllm',
  unknown: 'generic',
};

/** The preset `server.engine` names, or undefined when it names none. */
export function lookupEngine(name: string): EnginePreset | undefined {
  const key = name.trim().toLowerCase();
  const hit = (ENGINE_NAMES as readonly string[]).includes(key) ? (key as EngineName) : ALIASES[key];
  return hit ? ENGINE_PRESETS[hit] : undefined;
}

/** The engine a command line starts, or a base_url points at, when `server.engine` does not say. */
export function guessEngine(command: string | undefined, baseUrl: string | undefined): EngineName {
  if (command) {
    const words: [string, EngineName][] = [
      ['vllm', 'vllm'], ['sglang', 'sglang'], ['text-generation-launcher', 'tgi'], ['llama-server', 'llama.cpp'],
      ['ollama', 'ollama'], ['trtllm', 'trtllm'], ['lmdeploy', 'lmdeploy'],
    ];
    const hit = words.find(([w]) => command.includes(w));
    if (hit) return hit[1];
  }
  if (baseUrl && /^https?:\/\/api\.openai\.com(:\d+)?(\/|$)/i.test(baseUrl)) return 'openai';
  return 'generic';
}

/** What the preset puts into the job for the agent. */
export interface EnginePlan {
  engine: EngineName;
  /** Merged into every request body; null: the workload's `ignore_eos` is sent as before. */
  requestFields: Record<string, unknown> | null;
  probePaths: string[] | null;
  metricsUrl: string | null;
  metrics: Partial<Record<EngineMetric, string[]>>;
  /** Why something the config asks for cannot be had (shown as a warning or note on `server.engine`). */
  notes: { severity: 'warning' | 'info'; code: string; message: string }[];
}

/** The server's root for a base_url: `http://h:8000/v1` → `http://h:8000`. */
export function serverRoot(baseUrl: string): string {
  const url = new URL(baseUrl);
  return `${url.protocol}//${url.host}`;
}

export function planEngine(preset: EnginePreset, server: { baseUrl: string; command?: string; sim: boolean }, ignoreEos: boolean): EnginePlan {
  const notes: EnginePlan['notes'] = [];
  let requestFields: Record<string, unknown> | null = null;
  const exact = preset.exactLength;
  if (exact.kind === 'fields') requestFields = ignoreEos ? { ...exact.fields } : {};
  else if (exact.kind === 'unsupported') {
    requestFields = {};
    if (ignoreEos) {
      const message = `${preset.label}: ${exact.why}. Token counts come from the server's usage report; set \`workload.ignore_eos: false\` to silence this.`;
      notes.push({ severity: 'warning', code: 'engine-no-exact-length', message });
    }
  }
  let metricsUrl: string | null = null;
  if (preset.metricsPath && !server.sim) {
    const flagMissing = preset.metricsFlag !== undefined && server.command !== undefined && !server.command.includes(preset.metricsFlag);
    if (flagMissing) {
      const message = `${preset.label} serves its metrics (running requests, KV-cache usage) only with \`${preset.metricsFlag}\`: add it to \`server.command\` to see them beside power.`;
      notes.push({ severity: 'info', code: 'engine-metrics-off', message });
    } else metricsUrl = serverRoot(server.baseUrl) + preset.metricsPath;
  }
  return { engine: preset.name, requestFields, probePaths: preset.probePaths, metricsUrl, metrics: metricsUrl ? preset.metrics : {}, notes };
}

/** True when base_url's path lacks the `/v1` the engine's OpenAI route lives under. */
export function missesV1(preset: EnginePreset, baseUrl: string): boolean {
  if (!preset.openAiUnderV1 || preset.name === 'sim') return false;
  let path: string;
  try {
    path = new URL(baseUrl).pathname;
  } catch {
    return false;
  }
  return !/(^|\/)v1(\/|$)/.test(path);
}

import { displayName, type GpuSpec, type ModelShape } from './catalog';
import { DTYPE_BYTES, kvBytesPerToken, kvBytesPerTokenPerGpu, stateBytesPerSeqPerGpu, weightBytes } from './shape';

/** Share of GPU memory an engine claims (vLLM's gpu_memory_utilization default). */
export const ENGINE_MEMORY_FRACTION = 0.9;
/** Per-GPU memory an engine keeps for activations, CUDA graphs and communication buffers. */
export const RUNTIME_RESERVE_GB = 2;

export interface FitReport {
  fits: boolean;
  weightsGB: number;
  haveGB: number;
  /** Memory left for the KV cache on all GPUs together. */
  kvRoomGB: number;
  /** KV cache of one request at its full length (prompt + output). */
  kvGBPerRequest: number;
  /** Requests whose full-length KV cache fits at once. */
  maxRequests: number;
  /** Smallest GPU count for which weights and one request fit. */
  minGpuCount: number;
  /** Smallest GPU count in fp8, when the model is wider than fp8. */
  minGpuCountFp8?: number;
  message?: string;
}

export class EstimateError extends Error {
  constructor(
    readonly code: 'model-does-not-fit' | 'invalid-request',
    message: string,
    readonly detail?: FitReport,
  ) {
    super(message);
    this.name = 'EstimateError';
  }
}

const GB = 1e9;

function kvRoom(model: ModelShape, gpu: GpuSpec, gpuCount: number): number {
  return gpuCount * (gpu.memoryGB * ENGINE_MEMORY_FRACTION - RUNTIME_RESERVE_GB) * GB - weightBytes(model);
}

function minCountFor(model: ModelShape, gpu: GpuSpec, tokensPerRequest: number): number {
  const need = weightBytes(model) + kvBytesPerToken(model, tokensPerRequest) * tokensPerRequest + (model.stateBytesPerSeq ?? 0);
  const usablePerGpu = (gpu.memoryGB * ENGINE_MEMORY_FRACTION - RUNTIME_RESERVE_GB) * GB;
  return Math.max(1, Math.ceil(need / usablePerGpu));
}

/**
 * Does the model fit on `gpuCount` GPUs with room for at least one request of `tokensPerRequest`
 * tokens of KV cache? The message names the need, what is there, and the fix.
 */
export function checkFit(model: ModelShape, gpu: GpuSpec, gpuCount: number, tokensPerRequest: number): FitReport {
  const weightsGB = weightBytes(model) / GB;
  const haveGB = gpuCount * gpu.memoryGB;
  const roomBytes = kvRoom(model, gpu, gpuCount);
  const perRequest = seqBytesAllGpus(model, gpuCount, Math.max(tokensPerRequest, 1));
  const maxRequests = roomBytes > 0 ? Math.floor(roomBytes / perRequest) : 0;
  const report: FitReport = {
    fits: maxRequests >= 1,
    weightsGB,
    haveGB,
    kvRoomGB: roomBytes / GB,
    kvGBPerRequest: perRequest / GB,
    maxRequests,
    minGpuCount: minCountFor(model, gpu, tokensPerRequest),
  };
  if (DTYPE_BYTES[model.dtype] > DTYPE_BYTES.fp8) {
    report.minGpuCountFp8 = minCountFor({ ...model, dtype: 'fp8' }, gpu, tokensPerRequest);
  }
  if (report.fits) return report;

  const name = displayName(model);
  const where = `${gpuCount}×${gpu.id} has ${fmtGB(haveGB)} GB`;
  const orFp8 = report.minGpuCountFp8 !== undefined ? ' or fp8' : '';
  if (weightsGB > haveGB) {
    // Weights alone overflow: the count that holds the weights is the first thing to fix.
    const weightsCount = Math.ceil(weightsGB / gpu.memoryGB);
    report.message = `${name} in ${model.dtype} needs ${fmtGB(weightsGB)} GB; ${where} — use gpus.count ≥ ${weightsCount}${orFp8}`;
  } else {
    report.message =
      `${name} in ${model.dtype} needs ${fmtGB(weightsGB)} GB of weights plus ${fmtGB(report.kvGBPerRequest)} GB of KV cache ` +
      `per ${Math.round(tokensPerRequest)}-token request; ${where}, ${fmtGB(Math.max(report.kvRoomGB, 0))} GB of it left for the KV cache ` +
      `after the engine's ${Math.round((1 - ENGINE_MEMORY_FRACTION) * 100)}% headroom — use gpus.count ≥ ${report.minGpuCount}${orFp8}`;
  }
  return report;
}

function fmtGB(x: number): string {
  return x >= 100 ? String(Math.round(x)) : x >= 10 ? x.toFixed(0) : x.toFixed(1);
}

/** Largest number of sequences whose KV cache fits, at `avgContext` tokens each. */
export function kvCapacitySequences(model: ModelShape, gpu: GpuSpec, gpuCount: number, avgContext: number): number {
  const room = kvRoom(model, gpu, gpuCount);
  if (room <= 0) return 0;
  return Math.floor(room / seqBytesAllGpus(model, gpuCount, Math.max(avgContext, 1)));
}

/** Cache bytes of one sequence at `context` tokens summed over the GPUs (replicated KV heads and MLA latents count on each). */
function seqBytesAllGpus(model: ModelShape, gpuCount: number, context: number): number {
  return (kvBytesPerTokenPerGpu(model, gpuCount, context) * context + stateBytesPerSeqPerGpu(model, gpuCount)) * gpuCount;
}

/**
 * From what a host's driver reports about a GPU to a catalog entry: the product name NVML
 * (`nvmlDeviceGetName`, the same as `nvidia-smi --query-gpu=name`) or rocm-smi/amd-smi gives, plus its
 * memory, which tells apart names that two variants share. A GPU the catalog does not know gets an
 * estimated spec from its generation's per-SM rates and what the driver said, marked so.
 */
import type { GpuInfo } from '../protocol/events';
import { listGpus, normalizeKey, type GpuSpec } from './catalog';

export interface DeviceMatch {
  gpu: GpuSpec;
  /** `name`: the reported name is one of the entry's deviceNames; `family`: its model tokens matched. */
  by: 'name' | 'family';
}

/** Words that say who made a card, not which one it is. */
const VENDOR_WORDS = new Set(['nvidia', 'tesla', 'geforce', 'amd', 'instinct', 'radeon', 'quadro']);

/** "NVIDIA A100-SXM4-80GB" → ["a100", "sxm4", "80gb"]. */
function tokens(name: string): string[] {
  return name
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((t) => t && !VENDOR_WORDS.has(t));
}

function memoryGiB(memoryMiB: number | undefined): number | undefined {
  return memoryMiB !== undefined && memoryMiB > 0 ? memoryMiB / 1024 : undefined;
}

/** Relative distance of a datasheet size (GB, as vendors round it) from the GiB the driver reports. */
function memoryDistance(gpu: GpuSpec, gib: number | undefined): number {
  return gib === undefined ? 0 : Math.abs(gpu.memoryGB - gib) / gpu.memoryGB;
}

/**
 * The catalog entry for the GPU a driver reports as `name` with `memoryMiB` of memory, or undefined when
 * no entry is that model. Exact device names win; otherwise the name's model tokens ("h100") with its form
 * factor (sxm, pcie, nvl) and the memory closest to the reported one.
 */
export function lookupGpuByDeviceName(name: string, memoryMiB?: number): DeviceMatch | undefined {
  const gpus = listGpus();
  const gib = memoryGiB(memoryMiB);
  const closest = (list: GpuSpec[]) => list.reduce((a, b) => (memoryDistance(b, gib) < memoryDistance(a, gib) ? b : a));
  const key = normalizeKey(name);
  const named = gpus.filter((g) => (g.deviceNames ?? []).some((d) => normalizeKey(d) === key));
  if (named.length > 0) return { gpu: closest(named), by: 'name' };
  const words = tokens(name);
  const family = gpus.filter((g) => g.family?.length && g.family.every((t) => words.includes(t)));
  if (family.length === 0) return undefined;
  // The longest family wins ("rtx 6000 ada" over a bare "6000"), then the form factor the name says.
  const longest = Math.max(...family.map((g) => g.family!.length));
  const candidates = family.filter((g) => g.family!.length === longest);
  const formed = candidates.filter((g) => g.formFactor && words.some((w) => w.startsWith(g.formFactor!)));
  return { gpu: closest(formed.length > 0 ? formed : candidates), by: 'family' };
}

/** What a host's driver says about a GPU (the agent's `hello` GpuInfo, with what NVML adds when asked). */
export interface DriverReport {
  name: string;
  memoryMiB: number;
  /** Maximum SM (graphics) clock, MHz (nvmlDeviceGetMaxClockInfo(NVML_CLOCK_SM)). */
  maxClockMHz?: number;
  /** Streaming multiprocessors (NVIDIA) or compute units (AMD). */
  smCount?: number;
  /** CUDA compute capability, e.g. "8.9" (nvmlDeviceGetCudaComputeCapability). */
  computeCapability?: string;
  /** The current (default) power limit, W. */
  powerLimitW: number;
  minLimitW?: number;
  maxLimitW?: number;
  /** Memory bus width, bits (nvmlDeviceGetMemoryBusWidth). */
  memoryBusWidth?: number;
  /** Maximum memory clock, MHz (nvmlDeviceGetMaxClockInfo(NVML_CLOCK_MEM)). */
  memClockMHz?: number;
}

/** Dense tensor throughput per SM (per CU on AMD) per clock of one GPU generation, and a catalog GPU of it. */
interface Generation {
  label: string;
  /** The catalog entry whose datasheet the rates come from, and what stands in for what the driver did not say. */
  reference: string;
  /** FLOP per SM per clock; how each follows from the reference's datasheet is in the comment beside it. */
  bf16: number;
  fp8: number | null;
  int8: number | null;
  fp4: number | null;
  /** GeForce cards run bf16/fp16 and fp8 with fp32 accumulate at half these rates. */
  geforceHalf?: boolean;
  pcieGBs: number;
}

// Each rate is the reference GPU's datasheet dense peak over (SMs × boost clock):
const GENERATIONS: Record<string, Generation> = {
  // V100 SXM2: 125e12 / (80 SMs × 1530 MHz) = 1021 ≈ 1024 (8 tensor cores × 64 FMA × 2).
  volta: { label: 'Volta', reference: 'V100-SXM2-32GB', bf16: 1024, fp8: null, int8: null, fp4: null, pcieGBs: 32 },
  // T4: 65e12 / (40 × 1590 MHz) = 1022; int8 130e12 → 2044.
  turing: { label: 'Turing', reference: 'T4', bf16: 1024, fp8: null, int8: 2048, fp4: null, pcieGBs: 32 },
  // A100: 312e12 / (108 × 1410 MHz) = 2049; int8 624e12 → 4098.
  ga100: { label: 'Ampere (GA100)', reference: 'A100-SXM4-80GB', bf16: 2048, fp8: null, int8: 4096, fp4: null, pcieGBs: 64 },
  // A40: 149.7e12 / (84 × 1740 MHz) = 1024; int8 299.3e12 → 2048.
  ampere: { label: 'Ampere (GA10x)', reference: 'A40', bf16: 1024, fp8: null, int8: 2048, fp4: null, geforceHalf: true, pcieGBs: 64 },
  // L40S: 362.05e12 / (142 × 2520 MHz) = 1012 ≈ 1024; fp8 and int8 733e12 → 2048.
  ada: { label: 'Ada Lovelace', reference: 'L40S', bf16: 1024, fp8: 2048, int8: 2048, fp4: null, geforceHalf: true, pcieGBs: 64 },
  // H100 SXM: 989.4e12 / (132 × 1830 MHz) = 4096; fp8 and int8 1978.9e12 → 8192.
  hopper: { label: 'Hopper', reference: 'H100-SXM-80GB', bf16: 4096, fp8: 8192, int8: 8192, fp4: null, pcieGBs: 128 },
  // B200: 2.25e15 dense over 148 SMs is 8192 per SM per clock at 1.86 GHz (2× Hopper), fp8 and int8 2×, fp4 4×.
  blackwell: { label: 'Blackwell', reference: 'B200', bf16: 8192, fp8: 16384, int8: 16384, fp4: 32768, pcieGBs: 128 },
  // RTX 5090 (GeForce, half rate): 209.5e12 / (170 × 2407 MHz) = 512, so 1024 at full rate; int8 838e12 → 2048; fp4 1676e12 → 4096.
  blackwellRtx: { label: 'Blackwell (RTX)', reference: 'RTX-5090', bf16: 1024, fp8: 2048, int8: 2048, fp4: 4096, geforceHalf: true, pcieGBs: 128 },
  // MI250X: 383e12 / (220 CUs × 1700 MHz) = 1024 per CU; int8 the same.
  cdna2: { label: 'CDNA 2', reference: 'MI250X', bf16: 1024, fp8: null, int8: 1024, fp4: null, pcieGBs: 64 },
  // MI300X: 1307.4e12 / (304 CUs × 2100 MHz) = 2048 per CU; fp8 and int8 2614.9e12 → 4096.
  cdna3: { label: 'CDNA 3', reference: 'MI300X', bf16: 2048, fp8: 4096, int8: 4096, fp4: null, pcieGBs: 128 },
};

const BY_CAPABILITY: Record<string, keyof typeof GENERATIONS> = {
  '7.0': 'volta', '7.2': 'volta', '7.5': 'turing', '8.0': 'ga100', '8.6': 'ampere', '8.7': 'ampere', '8.9': 'ada',
  '9.0': 'hopper', '10.0': 'blackwell', '10.3': 'blackwell', '12.0': 'blackwellRtx',
};

/** A generation from the name's model number when the driver gave no compute capability. */
const BY_NAME: [RegExp, keyof typeof GENERATIONS][] = [
  [/\bv100/, 'volta'],
  [/\bt4\b|\brtx 20\d0|\bquadro rtx/, 'turing'],
  [/\ba(100|800|30)\b/, 'ga100'],
  [/\ba(10g?|16|2|40)\b|\brtx 30\d0|\brtx a\d{4}/, 'ampere'],
  [/\bl(4|40s?|20)\b|\brtx 40\d0|\bada\b/, 'ada'],
  [/\bg?h(100|200|800|20)\b/, 'hopper'],
  [/\bg?b(100|200|300)\b/, 'blackwell'],
  [/\brtx 50\d0|\brtx pro \d{4} blackwell/, 'blackwellRtx'],
  [/\bmi2\d0/, 'cdna2'],
  [/\bmi3\d\d/, 'cdna3'],
];

function generationOf(report: DriverReport): { gen: Generation; from: string } | undefined {
  const byCc = report.computeCapability && BY_CAPABILITY[report.computeCapability];
  if (byCc) return { gen: GENERATIONS[byCc]!, from: `compute capability ${report.computeCapability}` };
  const lower = report.name.toLowerCase();
  const hit = BY_NAME.find(([re]) => re.test(lower));
  return hit && { gen: GENERATIONS[hit[1]]!, from: `the name "${report.name}"` };
}

const round3 = (x: number) => Number(x.toPrecision(3));

/**
 * An estimated GpuSpec for a GPU the catalog does not know, from what its driver reports: FLOP/s from the
 * SM count × clock × its generation's per-SM rate (the generation from the compute capability or the name),
 * bandwidth from bus width × memory clock (× 2, double data rate), the power figures from the driver.
 * What the driver did not say comes from the generation's reference GPU; `source` says which is which.
 */
export function gpuFromDriverReport(report: DriverReport): GpuSpec {
  const found = generationOf(report);
  const gen = found?.gen ?? GENERATIONS.ampere!;
  const ref = listGpus().find((g) => g.id === gen.reference)!;
  const said: string[] = [];
  const geforce = /geforce/i.test(report.name) && gen.geforceHalf ? 0.5 : 1;
  let flops: Pick<GpuSpec, 'flopsBf16' | 'flopsFp8' | 'flopsInt8' | 'flopsFp4'>;
  if (report.smCount && report.maxClockMHz) {
    const perClock = report.smCount * report.maxClockMHz * 1e6;
    flops = {
      flopsBf16: perClock * gen.bf16 * geforce,
      flopsFp8: gen.fp8 === null ? null : perClock * gen.fp8 * geforce,
      flopsInt8: gen.int8 === null ? null : perClock * gen.int8,
      flopsFp4: gen.fp4 === null ? null : perClock * gen.fp4,
    };
    said.push(
      `FLOP/s = ${report.smCount} SMs × ${report.maxClockMHz} MHz × ${gen.label}'s ${gen.bf16 * geforce} dense bf16 FLOP per SM per clock` +
        `${geforce < 1 ? ' (GeForce: half rate with fp32 accumulate)' : ''} (${round3(flops.flopsBf16 / 1e12)} TFLOPS bf16)`,
    );
  } else {
    flops = { flopsBf16: ref.flopsBf16, flopsFp8: ref.flopsFp8, flopsInt8: ref.flopsInt8 ?? null, flopsFp4: ref.flopsFp4 ?? null };
    said.push(`FLOP/s of ${ref.id} (SM count and clock not reported)`);
  }
  let memoryBWGBs = ref.memoryBWGBs;
  if (report.memoryBusWidth && report.memClockMHz) {
    memoryBWGBs = round3((report.memoryBusWidth / 8) * report.memClockMHz * 2 * 1e6 / 1e9);
    said.push(`bandwidth = ${report.memoryBusWidth}-bit bus × ${report.memClockMHz} MHz × 2 (double data rate) = ${memoryBWGBs} GB/s`);
  } else said.push(`bandwidth of ${ref.id} (bus width and memory clock not reported)`);
  // A report without a power limit (0: the driver would not say) takes the reference's power figures.
  const known = report.powerLimitW > 0;
  const tdpW = known ? report.powerLimitW : ref.tdpW;
  const idleW = known ? round3(report.powerLimitW * (ref.idleW / ref.tdpW)) : ref.idleW;
  said.push(
    (known
      ? `power limit ${report.powerLimitW} W taken as TDP; idle assumed ${idleW} W (${ref.id}'s idle/TDP ratio)`
      : `TDP and idle of ${ref.id} (no power limit reported)`) + `; interconnect assumed PCIe (${gen.pcieGBs} GB/s)`,
  );
  const minLimitW = report.minLimitW ?? (known ? round3(report.powerLimitW / 2) : ref.minLimitW);
  const maxLimitW = report.maxLimitW ?? (known ? report.powerLimitW : ref.maxLimitW);
  const generation = found ? `${gen.label}, from ${found.from}` : `generation unknown: ${gen.label} assumed`;
  return {
    id: `estimated:${report.name}`,
    name: report.name,
    ...flops,
    memoryGB: round3(report.memoryMiB / 1024),
    memoryBWGBs,
    interconnect: 'PCIe (assumed)',
    interconnectGBs: gen.pcieGBs,
    tdpW,
    idleW,
    minLimitW,
    maxLimitW,
    vendor: /\bamd\b|instinct|radeon/i.test(report.name) ? 'amd' : 'nvidia',
    arch: gen.label,
    computeCapability: report.computeCapability,
    estimated: true,
    source: `estimated from the driver's report of "${report.name}" (not in the catalog; ${generation}): ${said.join('; ')}`,
  };
}

/** The GPU a host reported, from the catalog where it knows it, else estimated from the report. */
export function gpuForDriverReport(report: DriverReport): GpuSpec {
  return lookupGpuByDeviceName(report.name, report.memoryMiB)?.gpu ?? gpuFromDriverReport(report);
}

/**
 * The estimate's GPU for a GPU a host's agent reported in its `hello` (or `probe`): what a config without
 * `gpus.type` should be estimated on once its host is known. The hello carries the name, memory and power
 * limits; the SM count, clocks and bus width are not in it, so an unknown GPU takes those from its generation.
 */
export function gpuForHostGpu(info: GpuInfo): GpuSpec {
  return gpuForDriverReport({
    name: info.name,
    memoryMiB: info.memory_mb ?? 0,
    powerLimitW: info.default_limit_w ?? info.power_limit_w ?? info.max_limit_w ?? 0,
    ...(info.min_limit_w != null && { minLimitW: info.min_limit_w }),
    ...(info.max_limit_w != null && { maxLimitW: info.max_limit_w }),
  });
}

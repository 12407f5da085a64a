import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import gpuData from '../../src/core/estimate/data/gpus.json';
import { getGpu, listGpus, lookupGpu } from '../../src/core/estimate/catalog';
import { gpuForHostGpu, gpuFromDriverReport, lookupGpuByDeviceName } from '../../src/core/estimate/gpu-device';

const REQUIRED = [
  'V100-SXM2-32GB', 'A10', 'A10G', 'A40', 'L4', 'L40', 'L40S', 'RTX-4090', 'RTX-5090', 'RTX-6000-Ada', 'A100-SXM4-40GB',
  'A100-SXM4-80GB', 'A100-PCIe-40GB', 'A100-PCIe-80GB', 'H100-SXM-80GB', 'H100-PCIe-80GB', 'H100-NVL-94GB', 'H200-SXM-141GB',
  'GH200-96GB', 'H20', 'B200', 'GB200', 'MI250X', 'MI300X', 'MI325X',
];

describe('GPU catalog: every entry', () => {
  it('holds the GPUs people run, each with a source naming a datasheet (or saying there is none)', () => {
    const ids = listGpus().map((g) => g.id);
    for (const id of REQUIRED) assert.ok(ids.includes(id), id);
    assert.equal(new Set(ids).size, ids.length, 'ids are unique');
    for (const g of listGpus()) {
      assert.match(g.source, /datasheet|whitepaper/i, g.id);
      assert.ok(g.vendor === 'nvidia' || g.vendor === 'amd', g.id);
      assert.ok(g.deviceNames!.length > 0 && g.family!.length > 0, g.id);
    }
  });

  it('never resolves one alias or device name to two entries', () => {
    const seen = new Map<string, string>();
    for (const g of listGpus()) {
      for (const key of [g.id, ...g.aliases!].map((k) => k.toLowerCase().replace(/[^a-z0-9]/g, ''))) {
        assert.ok(!seen.has(key) || seen.get(key) === g.id, `${key}: ${seen.get(key)} and ${g.id}`);
        seen.set(key, g.id);
      }
    }
    const names = listGpus().flatMap((g) => g.deviceNames!);
    assert.equal(new Set(names).size, names.length);
  });

  it('has physically sane numbers', () => {
    for (const g of gpuData.gpus) {
      // Dense bf16 peaks run from 65 TFLOPS (T4, fp16) to 2.5 PFLOPS (GB200).
      assert.ok(g.flopsBf16 >= 60e12 && g.flopsBf16 <= 2.6e15, g.id);
      // HBM parts from 900 GB/s (V100) to 8 TB/s (B200), GDDR from 300 GB/s (L4) to 1.8 TB/s (RTX 5090).
      assert.ok(g.memoryBWGBs >= 300 && g.memoryBWGBs <= 8000, g.id);
      assert.ok(g.memoryGB >= 16 && g.memoryGB <= 256, g.id);
      // Reading all of memory once takes 18 ms (RTX 5090) to 80 ms (L4): anything outside 5-100 ms is a typo.
      const fullReadS = g.memoryGB / g.memoryBWGBs;
      assert.ok(fullReadS > 0.005 && fullReadS < 0.1, `${g.id} reads its memory in ${fullReadS} s`);
      assert.ok(g.idleW < g.minLimitW && g.minLimitW < g.maxLimitW && g.tdpW <= g.maxLimitW, `${g.id} power range`);
      assert.ok(g.idleW >= 0.04 * g.tdpW && g.idleW <= 0.3 * g.tdpW, `${g.id} idle ${g.idleW} W of ${g.tdpW} W`);
    }
  });

  it('has fp8 at twice bf16 on Hopper, Ada, Blackwell and CDNA 3, and none before', () => {
    const ratio = (a: number | null | undefined, b: number | null | undefined) => (a ?? NaN) / (b ?? NaN);
    for (const g of listGpus()) {
      const geforce = /GeForce/.test(g.name);
      if (['Hopper', 'Ada Lovelace', 'Blackwell', 'CDNA 3'].includes(g.arch!)) {
        // Within 3%: datasheets round on their own (L40S: 362.05 bf16 beside 733 fp8).
        assert.ok(Math.abs(ratio(g.flopsFp8, g.flopsBf16) - 2) < 0.06, `${g.id}: fp8 ${g.flopsFp8}`);
        // int8 runs at the fp8 rate; GeForce's fp8 figure is its halved fp32-accumulate one.
        assert.ok(Math.abs(ratio(g.flopsInt8, g.flopsFp8) - (geforce ? 2 : 1)) < 0.01, `${g.id} int8`);
      } else assert.equal(g.flopsFp8, null, g.id);
      // fp4 tensor cores came with Blackwell, at twice fp8 (GeForce: twice its fp16-accumulate fp8).
      assert.equal(g.flopsFp4 !== null, g.arch === 'Blackwell', `${g.id} fp4`);
      if (g.flopsFp4 != null) assert.ok(Math.abs(ratio(g.flopsFp4, g.flopsFp8) - (geforce ? 4 : 2)) < 0.01, `${g.id} fp4`);
    }
    // Ampere's and Turing's int8 is twice their bf16/fp16; V100 has no int8 tensor cores.
    for (const id of ['A100-SXM4-80GB', 'A10', 'A40', 'T4']) assert.ok(Math.abs(ratio(getGpu(id).flopsInt8, getGpu(id).flopsBf16) - 2) < 0.01, id);
    assert.equal(getGpu('V100').flopsInt8, null);
  });

  it('quotes the dense datasheet figures, not the sparse ones', () => {
    const near = (a: number | null | undefined, b: number, what: string) => assert.ok(a != null && Math.abs(a - b) / b < 0.001, `${what}: ${a} vs ${b}`);
    // Sparse datasheet figures halved: H100 SXM bf16 1,979 TFLOPS; H100 NVL 1,671; HGX B200's 8-GPU 36 PFLOPS bf16;
    // GB200 NVL72's 72-GPU 1,440 PFLOPS fp4; RTX 5090's 3,352 AI TOPS (fp4).
    near(getGpu('H100').flopsBf16, 1979e12 / 2, 'H100');
    near(getGpu('H100-NVL').flopsBf16, 1671e12 / 2, 'H100 NVL');
    near(getGpu('B200').flopsBf16, 36e15 / 8 / 2, 'B200');
    near(getGpu('GB200').flopsFp4, 1440e15 / 72 / 2, 'GB200 fp4');
    near(getGpu('RTX-5090').flopsFp4, 3352e12 / 2, 'RTX 5090 fp4');
  });

  it('keeps the short names resolving as before', () => {
    assert.equal(getGpu('H100').id, 'H100-SXM-80GB');
    assert.equal(getGpu('A100').id, 'A100-SXM4-80GB');
    assert.equal(getGpu('V100').id, 'V100-SXM2-32GB');
    assert.equal(getGpu('gh200').id, 'GH200-96GB');
    assert.equal(getGpu('4090').id, 'RTX-4090');
    assert.equal(getGpu('l40').id, 'L40');
    assert.equal(lookupGpu('H10').ok, false);
  });
});

describe('lookupGpuByDeviceName', () => {
  // [name as NVML / nvidia-smi / rocm-smi report it, memory in MiB as reported, the entry]. Names as public logs
  // show them (RunPod's GPU type ids are nvidia-smi's names; rocm-smi's "Card Series"); MiB as nvidia-smi prints them.
  const REPORTED: [string, number | undefined, string][] = [
    ['Tesla V100-SXM2-32GB', 32510, 'V100-SXM2-32GB'],
    ['Tesla V100-SXM2-16GB', 16160, 'V100-SXM2-16GB'],
    ['Tesla V100-PCIE-16GB', 16160, 'V100-PCIe-16GB'],
    ['Tesla T4', 15360, 'T4'],
    ['NVIDIA A10', 23028, 'A10'],
    ['NVIDIA A10G', 23028, 'A10G'],
    ['NVIDIA A40', 46068, 'A40'],
    ['NVIDIA L4', 23034, 'L4'],
    ['NVIDIA L40', 46068, 'L40'],
    ['NVIDIA L40S', 46068, 'L40S'],
    ['NVIDIA GeForce RTX 4090', 24564, 'RTX-4090'],
    ['NVIDIA GeForce RTX 5090', 32607, 'RTX-5090'],
    ['NVIDIA RTX 6000 Ada Generation', 49140, 'RTX-6000-Ada'],
    ['NVIDIA A100-SXM4-40GB', 40960, 'A100-SXM4-40GB'],
    ['NVIDIA A100-SXM4-80GB', 81920, 'A100-SXM4-80GB'],
    ['A100-SXM-80GB', 81251, 'A100-SXM4-80GB'],
    ['NVIDIA A100-PCIE-40GB', 40960, 'A100-PCIe-40GB'],
    ['NVIDIA A100 80GB PCIe', 81920, 'A100-PCIe-80GB'],
    ['NVIDIA H100 80GB HBM3', 81559, 'H100-SXM-80GB'],
    ['NVIDIA H100 PCIe', 81559, 'H100-PCIe-80GB'],
    ['NVIDIA H100 NVL', 95830, 'H100-NVL-94GB'],
    ['NVIDIA H200', 143771, 'H200-SXM-141GB'],
    ['NVIDIA H200 NVL', 143771, 'H200-NVL-141GB'],
    ['NVIDIA GH200 480GB', 97871, 'GH200-96GB'],
    ['NVIDIA GH200 144G HBM3e', 146081, 'GH200-144GB'],
    ['NVIDIA H20', 97871, 'H20'],
    ['NVIDIA B200', 183359, 'B200'],
    ['NVIDIA GB200', 189471, 'GB200'],
    ['AMD Instinct MI250X', 65520, 'MI250X'],
    ['AMD Instinct MI300X', 196592, 'MI300X'],
    ['AMD Instinct MI300X OAM', 196592, 'MI300X'],
    ['AMD Instinct MI300X VF', 196592, 'MI300X'],
    ['AMD Instinct MI325X', 262128, 'MI325X'],
  ];

  it('maps every real driver name to its entry', () => {
    for (const [name, mib, id] of REPORTED) {
      const hit = lookupGpuByDeviceName(name, mib);
      assert.equal(hit?.gpu.id, id, name);
      assert.equal(hit?.by, 'name', name);
    }
  });

  it('lists every entry it knows a real name of', () => {
    const named = new Set(REPORTED.map(([, , id]) => id));
    for (const id of REQUIRED) assert.ok(named.has(id), `${id} has a real driver name in this test`);
  });

  it('tells variants apart by the name\'s form factor and by memory when the name is not listed', () => {
    // Spellings not in deviceNames (other driver versions, other tools), matched by model tokens.
    assert.deepEqual(lookupGpuByDeviceName('NVIDIA H100 SXM5 80GB', 81559), { gpu: getGpu('H100-SXM-80GB'), by: 'family' });
    assert.equal(lookupGpuByDeviceName('H100 PCIe 80GB')?.gpu.id, 'H100-PCIe-80GB');
    assert.equal(lookupGpuByDeviceName('NVIDIA H100 NVL 94GB', 95830)?.gpu.id, 'H100-NVL-94GB');
    assert.equal(lookupGpuByDeviceName('NVIDIA A100-SXM4-40GB-X', 40960)?.gpu.id, 'A100-SXM4-40GB');
    assert.equal(lookupGpuByDeviceName('NVIDIA A100-SXM4-XX', 81920)?.gpu.id, 'A100-SXM4-80GB');
    assert.equal(lookupGpuByDeviceName('NVIDIA H200 141GB HBM3e', 143771)?.gpu.id, 'H200-SXM-141GB');
    assert.equal(lookupGpuByDeviceName('AMD INSTINCT MI300X', 196592)?.gpu.id, 'MI300X');
    // L4 is not L40, A10 is not A100, H20 is not H200: tokens, not substrings.
    assert.equal(lookupGpuByDeviceName('NVIDIA L4 24GB')?.gpu.id, 'L4');
    assert.equal(lookupGpuByDeviceName('NVIDIA A10 PCIe')?.gpu.id, 'A10');
    assert.equal(lookupGpuByDeviceName('NVIDIA H20 HBM3')?.gpu.id, 'H20');
  });

  it('answers undefined for GPUs the catalog does not have', () => {
    for (const name of ['NVIDIA GeForce RTX 3090', 'NVIDIA RTX A6000', 'NVIDIA Stub GPU 0', 'AMD Radeon RX 7900 XTX', ''])
      assert.equal(lookupGpuByDeviceName(name, 24576), undefined, name);
  });
});

describe('gpuFromDriverReport', () => {
  it('estimates an unknown GPU from SMs × clock × its generation, and says exactly so', () => {
    // An RTX A6000 (Ampere GA102, compute capability 8.6): 84 SMs at 1800 MHz, 48 GB GDDR6 on a 384-bit bus at
    // 8001 MHz, 300 W. By hand: 84 × 1.8e9 × 1024 = 154.8 TFLOPS bf16 (NVIDIA's datasheet: 309.7 sparse, 154.8 dense);
    // 384 / 8 × 8001e6 × 2 = 768 GB/s (datasheet: 768 GB/s).
    const gpu = gpuFromDriverReport({
      name: 'NVIDIA RTX A6000', memoryMiB: 49140, maxClockMHz: 1800, smCount: 84, computeCapability: '8.6',
      powerLimitW: 300, minLimitW: 100, maxLimitW: 300, memoryBusWidth: 384, memClockMHz: 8001,
    });
    assert.equal(gpu.estimated, true);
    assert.ok(Math.abs(gpu.flopsBf16 - 154.8e12) / 154.8e12 < 0.001, String(gpu.flopsBf16));
    assert.equal(gpu.flopsFp8, null); // Ampere has no fp8
    assert.equal(gpu.memoryBWGBs, 768);
    assert.equal(gpu.memoryGB, 48);
    assert.equal(gpu.tdpW, 300);
    assert.equal(gpu.minLimitW, 100);
    assert.match(gpu.source, /^estimated from the driver's report of "NVIDIA RTX A6000" \(not in the catalog; Ampere \(GA10x\), from compute capability 8\.6\)/);
    assert.match(gpu.source, /84 SMs × 1800 MHz × Ampere \(GA10x\)'s 1024 dense bf16 FLOP per SM per clock/);
    assert.match(gpu.source, /384-bit bus × 8001 MHz × 2 \(double data rate\) = 768 GB\/s/);
  });

  it('halves bf16 on GeForce cards, as their fp32-accumulate rate is', () => {
    // An RTX 3090: 82 SMs × 1695 MHz × 1024 / 2 = 71.2 TFLOPS (NVIDIA's Ampere GA102 whitepaper: 71 dense, fp32 accumulate).
    const gpu = gpuFromDriverReport({ name: 'NVIDIA GeForce RTX 3090', memoryMiB: 24576, smCount: 82, maxClockMHz: 1695, powerLimitW: 350 });
    assert.ok(Math.abs(gpu.flopsBf16 - 71.2e12) / 71.2e12 < 0.002, String(gpu.flopsBf16));
    assert.match(gpu.source, /Ampere \(GA10x\), from the name "NVIDIA GeForce RTX 3090"/);
  });

  it('takes what the driver did not report from the generation\'s reference GPU and says which', () => {
    const gpu = gpuFromDriverReport({ name: 'NVIDIA H800', memoryMiB: 81559, powerLimitW: 700 });
    const h100 = getGpu('H100-SXM-80GB');
    assert.equal(gpu.flopsBf16, h100.flopsBf16);
    assert.equal(gpu.memoryBWGBs, h100.memoryBWGBs);
    assert.equal(gpu.idleW, 70); // 700 W × H100's 70 / 700
    assert.match(gpu.source, /FLOP\/s of H100-SXM-80GB \(SM count and clock not reported\)/);
    assert.match(gpu.source, /bandwidth of H100-SXM-80GB \(bus width and memory clock not reported\)/);
  });

  it('says when it cannot even tell the generation', () => {
    const gpu = gpuFromDriverReport({ name: 'NVIDIA Stub GPU 0', memoryMiB: 81920, powerLimitW: 300 });
    assert.equal(gpu.estimated, true);
    assert.match(gpu.source, /generation unknown: Ampere \(GA10x\) assumed/);
  });

  it('uses the catalog for a known GPU a host reports, and estimates the others', () => {
    assert.equal(gpuForHostGpu({ index: 0, name: 'NVIDIA H100 80GB HBM3', memory_mb: 81559, power_limit_w: 700 }).id, 'H100-SXM-80GB');
    const unknown = gpuForHostGpu({ index: 0, name: 'NVIDIA Stub GPU 0', memory_mb: 81920, power_limit_w: 250, default_limit_w: 300, min_limit_w: 100, max_limit_w: 350 });
    assert.equal(unknown.estimated, true);
    assert.deepEqual([unknown.tdpW, unknown.minLimitW, unknown.maxLimitW, unknown.memoryGB], [300, 100, 350, 80]);
  });
});

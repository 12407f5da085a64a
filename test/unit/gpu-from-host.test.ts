// A config without gpus.type is estimated on the GPU its host reported (the agent's hello: Test Host Connection's
// probe, or a run), recorded per host on this machine. Expected catalog entries are looked up in gpus.json by the
// reported name here, not through the code under test.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../src/core/config';
import { DEFAULT_GPU, estimateConfig, gpuFromConfig } from '../../src/core/estimate/config-estimate';
import { estimateHost, gpusOfHello, HostGpuStore, reportedGpuFor } from '../../src/core/models/host-gpus';
import type { GpuInfo } from '../../src/core/protocol/events';

const GPUS = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'src', 'core', 'estimate', 'data', 'gpus.json'), 'utf8')) as { gpus: { id: string; deviceNames?: string[]; memoryGB: number }[] }).gpus;
/** A catalog GPU an 8B model fits on, with one device name no other entry has, and what its driver would say. */
const KNOWN = GPUS.find((g) => g.memoryGB >= 40 && g.deviceNames?.length === 1 && !GPUS.some((o) => o !== g && o.deviceNames?.includes(g.deviceNames![0])))!;
const KNOWN_INFO: GpuInfo = { index: 0, name: KNOWN.deviceNames![0], memory_mb: Math.round((KNOWN.memoryGB * 1e9) / 2 ** 20), default_limit_w: 700 };
const UNKNOWN_INFO: GpuInfo = { index: 0, name: 'NVIDIA Zorblax Z9 48GB', memory_mb: 49152, default_limit_w: 300, min_limit_w: 150, max_limit_w: 300 };

const tmp = mkdtempSync(join(tmpdir(), 'wattbench-hostgpus-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const config = (target: string, gpus = '') => {
  const loaded = loadConfig(`name: x\nserver: { sim: true }\nmodel: { id: meta-llama/Llama-3.1-8B-Instruct }\n${target}${gpus}`);
  assert.ok(loaded.config, loaded.diagnostics.map((d) => d.message).join('; '));
  return loaded;
};

describe('the GPU a host reported, for configs without gpus.type', () => {
  it('takes the catalog entry of a known GPU and says which host reported it', () => {
    const loaded = config('target: gpu1\n');
    const estimate = estimateConfig(loaded.config!, loaded.points, { reported: { host: 'gpu1', gpu: KNOWN_INFO } });
    assert.equal(estimate.gpu?.id, KNOWN.id);
    assert.ok(estimate.total, estimate.error);
    assert.ok(estimate.assumptions.includes(`gpus.type not given: the host gpu1 reported ${KNOWN_INFO.name} → ${KNOWN.id}`), estimate.assumptions.join('\n'));
  });

  it('estimates a GPU the catalog does not know from its report, and says so', () => {
    const loaded = config('target: gpu1\n');
    const estimate = estimateConfig(loaded.config!, loaded.points, { reported: { host: 'gpu1', gpu: UNKNOWN_INFO } });
    assert.equal(estimate.gpu?.estimated, true);
    assert.equal(estimate.gpu?.memoryGB, 48);
    assert.equal(estimate.gpu?.maxLimitW, 300);
    assert.ok(estimate.assumptions.some((a) => a.startsWith(`gpus.type not given: the host gpu1 reported ${UNKNOWN_INFO.name} → estimated`)), estimate.assumptions.join('\n'));
  });

  it('gpus.type wins over a report; no report falls back to the default', () => {
    const typed = config('target: gpu1\n', 'gpus: { type: A100-SXM4-80GB }\n');
    const typedGpu = gpuFromConfig(typed.config!, UNKNOWN_INFO);
    assert.equal(typedGpu.ok && typedGpu.value.id, 'A100-SXM4-80GB');
    const plain = config('target: gpu1\n');
    const estimate = estimateConfig(plain.config!, plain.points);
    assert.equal(estimate.gpu?.id, DEFAULT_GPU);
    assert.ok(estimate.assumptions.includes(`gpus.type not given: assumed ${DEFAULT_GPU}`));
  });

  it('the config\'s host: the ssh target, the first of a list, this machine; no Slurm login node', () => {
    assert.equal(estimateHost(config('target: gpu1\n').config!), 'gpu1');
    assert.equal(estimateHost(config('target: [gpu2, gpu3]\n').config!), 'gpu2');
    assert.equal(estimateHost(config('target: local\n').config!), 'local');
    assert.equal(estimateHost(config('target:\n  slurm: { login: login1, partition: gpu }\n').config!), undefined);
  });

  it('records the reported GPUs per host and picks the config\'s host\'s first one', () => {
    const store = new HostGpuStore(join(tmp, 'host-gpus.json'));
    assert.equal(store.get('gpu2'), undefined);
    store.record('gpu2', [KNOWN_INFO, { ...UNKNOWN_INFO, index: 1 }], new Date('2025-01-02T03:04:05Z'));
    store.record('other', [UNKNOWN_INFO]);
    const again = new HostGpuStore(store.file);
    assert.equal(again.get('gpu2')?.recorded_at, '2025-01-02T03:04:05.000Z');
    assert.equal(again.all().length, 2);
    const reported = reportedGpuFor(config('target: [gpu2, other]\n').config!, (h) => again.get(h));
    assert.deepEqual(reported, { host: 'gpu2', gpu: KNOWN_INFO });
    assert.equal(reportedGpuFor(config('target: [gpu2]\n', 'gpus: { type: A100-SXM4-80GB }\n').config!, (h) => again.get(h)), undefined);
    assert.equal(reportedGpuFor(config('target: nowhere\n').config!, (h) => again.get(h)), undefined);
  });

  it('records nothing from a simulated hello or one without named GPUs', () => {
    assert.deepEqual(gpusOfHello({ type: 'hello', simulated: false, gpus: [KNOWN_INFO] }), [KNOWN_INFO]);
    assert.equal(gpusOfHello({ type: 'hello', simulated: true, gpus: [KNOWN_INFO] }), undefined);
    assert.equal(gpusOfHello({ type: 'hello', simulated: false, gpus: [] }), undefined);
    assert.equal(gpusOfHello({ type: 'error', gpus: [KNOWN_INFO] }), undefined);
  });
});

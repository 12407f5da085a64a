/**
 * The GPUs each host's agent reported (the `hello` of `probe` from Test Host Connection, or of a run), recorded on
 * this machine in one JSON file like the hosts' Hugging Face caches (host-cache.ts), so that a config without
 * `gpus.type` is estimated on the GPU its host has.
 */
import type { ResolvedConfig } from '../config/model';
import type { ReportedGpu } from '../estimate/config-estimate';
import type { GpuInfo } from '../protocol/events';
import { HostRecords } from './host-records';

export interface RecordedHostGpus {
  host: string;
  recorded_at: string;
  gpus: GpuInfo[];
}

/**
 * The GPUs of a `hello` event worth recording: none from a simulated backend (its GPUs are not the host's), and only
 * entries with a name. Undefined when there is nothing to record.
 */
export function gpusOfHello(event: { type?: string; simulated?: boolean; gpus?: unknown }): GpuInfo[] | undefined {
  if (event.type !== 'hello' || event.simulated === true || !Array.isArray(event.gpus)) return undefined;
  const gpus = event.gpus.filter((g): g is GpuInfo => typeof (g as GpuInfo | null)?.name === 'string' && (g as GpuInfo).name.trim() !== '');
  return gpus.length ? gpus : undefined;
}

/**
 * The host whose GPUs a config's estimate uses: the ssh target, the first of a host list, this machine for a local
 * one. A Slurm job's GPUs are not its login node's: none.
 */
export function estimateHost(config: Pick<ResolvedConfig, 'target'>): string | undefined {
  const target = config.target;
  if (target.kind === 'local') return 'local';
  if (target.kind === 'ssh') return target.host;
  if (target.kind === 'hosts') return target.hosts[0];
  return undefined;
}

/** What `config` is estimated on when it names no GPU type: its host's first reported GPU, if one was recorded. */
export function reportedGpuFor(config: Pick<ResolvedConfig, 'target' | 'gpus'>, recorded: (host: string) => RecordedHostGpus | undefined): ReportedGpu | undefined {
  if (config.gpus.type) return undefined;
  const host = estimateHost(config);
  const gpu = host === undefined ? undefined : recorded(host)?.gpus[0];
  return host !== undefined && gpu ? { host, gpu } : undefined;
}

export class HostGpuStore extends HostRecords<RecordedHostGpus> {
  record(host: string, gpus: GpuInfo[], now = new Date()): RecordedHostGpus {
    return this.put(host, { host, recorded_at: now.toISOString(), gpus });
  }
}

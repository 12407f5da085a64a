/**
 * What the GPU hosts' Hugging Face caches hold, as the agent's `hf-configs` reported it: read over the transport
 * when the user asked for something on that host (Test Host Connection, a run), and recorded on this machine
 * (one JSON file) so that estimates use it later without touching the host.
 */
import { shq } from '../transport/shell';
import type { Transport } from '../transport/types';
import { HostRecords } from './host-records';
import { parseLenientJson } from './lenient-json';

/** One model the host has, as `hf-configs` prints it (docs/protocol.md). */
export interface HostModel {
  id: string;
  revision: string;
  path: string;
  /** The config.json's content; absent when it was over the size cap or unreadable (`error` says which). */
  config?: unknown;
  error?: string;
}

export interface HostCacheReport {
  cache_dir: string;
  models: HostModel[];
}

export interface RecordedHostCache extends HostCacheReport {
  host: string;
  recorded_at: string;
}

/** Parses the one JSON line `hf-configs` prints; throws with what was wrong. */
export function parseHostCacheReport(stdout: string): HostCacheReport {
  const line = stdout.trim().split('\n').pop() ?? '';
  // The agent's json.dumps writes Infinity where a config.json has it.
  const parsed = parseLenientJson(line) as Partial<HostCacheReport>;
  if (typeof parsed.cache_dir !== 'string' || !Array.isArray(parsed.models)) throw new Error(`hf-configs printed no model list: ${line.slice(0, 200)}`);
  const models = parsed.models.filter((m): m is HostModel => typeof m?.id === 'string' && typeof m.revision === 'string' && typeof m.path === 'string');
  return { cache_dir: parsed.cache_dir, models };
}

/** Runs `hf-configs` with the agent installed at `agentPath` on the transport's host. */
export async function readHostCache(transport: Transport, agentPath: string): Promise<HostCacheReport> {
  const result = await transport.exec(`python3 ${shq(agentPath)} hf-configs`, { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(`hf-configs on ${transport.label} failed (exit ${result.code ?? result.signal}): ${(result.stderr || result.stdout).trim().slice(-300)}`);
  return parseHostCacheReport(result.stdout);
}

/**
 * What a run's agent found in the host's cache at its start (`RUN_DIR/hf-configs.json`, docs/protocol.md); undefined
 * when the run has none (an older agent). For the run's host to be recorded without another exec of the agent.
 */
export async function readRunHostCache(transport: Transport, runDir: string): Promise<HostCacheReport | undefined> {
  const result = await transport.exec(`cat ${shq(`${runDir}/hf-configs.json`)} 2>/dev/null`, { timeoutMs: 30_000 });
  if (result.code !== 0 || !result.stdout.trim()) return undefined;
  return parseHostCacheReport(result.stdout);
}

/** The recorded caches of every host, in one file (the extension's global storage). */
export class HostCacheStore extends HostRecords<RecordedHostCache> {
  record(host: string, report: HostCacheReport, now = new Date()): RecordedHostCache {
    return this.put(host, { host, recorded_at: now.toISOString(), ...report });
  }
}

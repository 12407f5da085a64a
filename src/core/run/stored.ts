/**
 * A run's record in the store, both ways: created as a run starts, with the prices it is summarised at,
 * and reopened later (re-summarised, followed again, calibrated on, reported) from what it wrote down.
 * Every reopen goes through `openStoredRun`, so a stored run is always read, priced and replayed alike.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config';
import { DEFAULT_COST, type CostSettings, type ResolvedConfig, type ResolvedPoint } from '../config/model';
import { newRunId, readEventsSync, readMeta, type RemoteHandle, type RunMeta, type RunStore, type RunWriter, type StoredCost } from '../store/store';
import type { RunSpec } from './launch';
import { sloPlan } from './slo';
import { Summarizer } from './summarize';

/** The run's folder in the store, with its meta as it starts, and a summarizer priced for it. */
export function createRunRecord(spec: RunSpec, target: string, id = newRunId(spec.config.name)): { writer: RunWriter; summarizer: Summarizer } {
  const writer = spec.store.create(
    {
      run_id: id,
      config_name: spec.config.name,
      config_file: spec.configFile,
      target,
      status: 'running',
      started: new Date().toISOString(),
      points: spec.points.map((p) => ({ id: p.id, label: p.label, params: p.params as Record<string, unknown>, power_cap_w: p.powerCapW })),
      remotes: [],
      cost: storedCost(spec.config.cost),
      predictions: spec.predictions,
      notes: [],
    },
    spec.configText,
  );
  return { writer, summarizer: summarizerFor(spec.config, spec.config.cost, spec.points) };
}

/** A summarizer priced with `cost`, judging each point against its SLO; per node over several hosts. */
export function summarizerFor(
  config: Pick<ResolvedConfig, 'cost' | 'target' | 'slo'>,
  cost: CostSettings = config.cost,
  points: Pick<ResolvedPoint, 'id' | 'slo'>[] = [],
): Summarizer {
  return new Summarizer({ cost, pointsPerNode: config.target.kind === 'hosts', slo: sloPlan(config.slo, points) });
}

/** What a stored run says of itself: its meta, and its config and points when config.yaml still validates. */
export interface StoredRun {
  dir: string;
  meta: RunMeta;
  configText?: string;
  config?: ResolvedConfig;
  /** The points this run measured (a Run Point run holds fewer than its config's sweep). */
  points: ResolvedPoint[];
  /** The prices the run was summarised at when it ran. */
  cost: CostSettings;
}

export function openStoredRun(dir: string, meta: RunMeta = readMeta(dir)): StoredRun {
  const configPath = join(dir, 'config.yaml');
  const configText = existsSync(configPath) ? readFileSync(configPath, 'utf8') : undefined;
  const loaded = configText === undefined ? undefined : loadConfig(configText);
  const wanted = new Set(meta.points.map((p) => p.id));
  const cost = costFromMeta(meta.cost) ?? loaded?.config?.cost ?? DEFAULT_COST;
  return { dir, meta, configText, config: loaded?.config && { ...loaded.config, cost }, points: loaded?.points.filter((p) => wanted.has(p.id)) ?? [], cost };
}

/** A fresh summarizer for a stored run, priced as it was when it ran, so re-summarising gives the figures the run wrote. */
export function summarizerForStoredRun(run: StoredRun): Summarizer {
  if (run.config) return summarizerFor(run.config, run.cost, run.points);
  return new Summarizer({ cost: run.cost, pointsPerNode: !!run.meta.hosts?.length });
}

/**
 * Feeds a stored run's (or attempt's) events into `summarizer` before following it again, and moves
 * each handle past them: the stored file may hold events past the offset last written to meta, and seq
 * settles which are new. With several nodes, each handle follows its own node's events.
 */
export function replayStored(dir: string, summarizer: Summarizer, handles: RemoteHandle[]): void {
  const lastSeq = new Map<string | undefined, number>();
  for (const event of readEventsSync(dir)) {
    summarizer.add(event);
    lastSeq.set(event.node, Math.max(lastSeq.get(event.node) ?? -1, event.seq));
  }
  for (const handle of handles) {
    const seen = handles.length > 1 ? lastSeq.get(handle.node) : Math.max(-1, ...lastSeq.values());
    if (seen !== undefined) handle.nextSeq = Math.max(handle.nextSeq, seen + 1);
  }
}

export type FollowKind = 'single' | 'multihost' | 'slurm';

/**
 * Runs the store says were still going when last seen, each with how it is followed again (one host from
 * its offset, several hosts from their attempt folders, Slurm by asking Slurm); runs that cannot be
 * (their record predates `hosts`) are returned apart so the caller can say so. Only runs that
 * `startedHere` vouches for are either: the others (a copied or committed workspace) are `foreign`, left
 * untouched, since following them would run commands on a host because a file said so.
 */
export function runsToReattach(
  store: RunStore,
  startedHere: (dir: string) => boolean,
): { followable: { meta: RunMeta; kind: FollowKind }[]; orphaned: RunMeta[]; foreign: RunMeta[] } {
  const followable: { meta: RunMeta; kind: FollowKind }[] = [];
  const orphaned: RunMeta[] = [];
  const foreign: RunMeta[] = [];
  for (const { meta, dir } of store.list()) {
    if (meta.status !== 'running') continue;
    if (!startedHere(dir)) {
      foreign.push(meta);
      continue;
    }
    const kind = followKind(meta);
    if (kind) followable.push({ meta, kind });
    else if (meta.remotes.length > 0) orphaned.push(meta);
  }
  return { followable, orphaned, foreign };
}

function followKind(meta: RunMeta): FollowKind | undefined {
  if (meta.slurm?.job_id) return 'slurm';
  if (meta.hosts?.length) return 'multihost';
  if (meta.remotes.length === 1 && meta.remotes[0].pid !== undefined && !meta.remotes[0].node) return 'single';
  return undefined;
}

/** Marks a run that cannot be followed again, saying where it may still be going. */
export function markOrphaned(store: RunStore, meta: RunMeta, reason = 'its record does not say how'): void {
  const writer = store.open(meta.run_id);
  const where = meta.target;
  writer.note(`Wattbench restarted while this run was going and cannot follow it again (${reason}); it may still be running on ${where}. What was received before is kept.`);
  writer.updateMeta({ status: 'lost', error: `lost track of the run when Wattbench restarted; it may still be running on ${where}` });
  writer.close();
}

/** The cost settings as meta.json holds them (snake_case on disk, docs/protocol.md). */
function storedCost(cost: CostSettings): StoredCost {
  return { usd_per_kwh: cost.usdPerKwh, gco2_per_kwh: cost.gco2PerKwh, pue: cost.pue, usd_per_gpu_hour: cost.usdPerGpuHour };
}

function costFromMeta(stored: StoredCost | undefined): CostSettings | undefined {
  if (!stored) return undefined;
  const numbers = [stored.usd_per_kwh, stored.gco2_per_kwh, stored.pue, stored.usd_per_gpu_hour];
  if (!numbers.every((x) => typeof x === 'number' && Number.isFinite(x))) return undefined;
  return { usdPerKwh: stored.usd_per_kwh, gco2PerKwh: stored.gco2_per_kwh, pue: stored.pue, usdPerGpuHour: stored.usd_per_gpu_hour };
}

/**
 * The workspace results store: `.wattbench/runs/<run-id>/{config.yaml, meta.json, events.ndjson,
 * summary.json}` plus logs. Plain files, readable without Wattbench.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { AgentEvent } from '../protocol/events';
import { parseEventLine } from '../protocol/events';
import type { RunSummary } from '../protocol/summary';

export type RunStatus = 'running' | 'ok' | 'error' | 'cancelled' | 'lost';

export interface RemoteHandle {
  /** The target as written (alias, user@host:port, or "local"). */
  host: string;
  runDir: string;
  pid?: number;
  pgid?: number;
  /** Bytes of the remote event file already received. */
  offset: number;
  nextSeq: number;
  /** Multi-node runs: which node this stream belongs to. */
  node?: string;
}

/** The cost settings a run was priced with, as meta.json holds them. */
export interface StoredCost {
  usd_per_kwh: number;
  gco2_per_kwh: number;
  pue: number;
  usd_per_gpu_hour: number;
}

export interface RunMeta {
  run_id: string;
  config_name: string;
  /** Workspace-relative path of the config, when it came from one. */
  config_file?: string;
  target: string;
  status: RunStatus;
  started: string;
  ended?: string;
  simulated?: boolean;
  agent_version?: string;
  driver?: string;
  gpus?: { index: number; name: string; node?: string }[];
  points: { id: string; label: string; params: Record<string, unknown>; power_cap_w?: number; host?: string }[];
  remotes: RemoteHandle[];
  /** The hosts a sweep over several hosts shares its points among, so a restart can go on with them. */
  hosts?: string[];
  /** The prices the run was summarised at (settings and config resolved), so a re-summary gives the same money. */
  cost?: StoredCost;
  /** Predictions made at dispatch, to set against the measurements. */
  predictions?: Record<string, { runtime_s: number; j_per_output_token: number; avg_power_w: number; energy_j: number; output_tokens_per_s: number; basis: string }>;
  slurm?: { job_id: string; state?: string; submitted?: string; started?: string; queue_wait_s?: number; nodes?: string[] };
  /** What happened that a reader should know: reassigned points, resumed streams, restored caps. */
  notes: string[];
  error?: string;
}

export interface RunRecord {
  id: string;
  dir: string;
  meta: RunMeta;
}

export function newRunId(name: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'run';
  return `${stamp}-${slug}-${randomBytes(2).toString('hex')}`;
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

export class RunStore {
  constructor(readonly root: string) {}

  /** `<workspace>/.wattbench/runs` */
  static forWorkspace(workspace: string): RunStore {
    return new RunStore(join(workspace, '.wattbench', 'runs'));
  }

  dirOf(id: string): string {
    // No leading dot: "." and ".." would name the store itself or the folder above it.
    if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(id)) throw new Error(`not a run id: ${JSON.stringify(id)}`);
    return join(this.root, id);
  }

  create(meta: RunMeta, configText: string): RunWriter {
    const dir = this.dirOf(meta.run_id);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.yaml'), configText);
    writeJsonAtomic(join(dir, 'meta.json'), meta);
    return new RunWriter(dir, meta);
  }

  /** Opens an existing run for appending (reattaching to a run still going on a host). */
  open(id: string): RunWriter {
    const dir = this.dirOf(id);
    return new RunWriter(dir, readMeta(dir));
  }

  list(): RunRecord[] {
    if (!existsSync(this.root)) return [];
    const records: RunRecord[] = [];
    for (const id of readdirSync(this.root)) {
      const dir = join(this.root, id);
      try {
        // The folder's name is the run's id: a meta.json that says otherwise (say "..") names nothing else.
        records.push({ id, dir, meta: { ...readMeta(dir), run_id: id } });
      } catch {
        // Not a run directory (or a half-written one): the tree shows only readable runs.
      }
    }
    return records.sort((a, b) => b.meta.started.localeCompare(a.meta.started));
  }

  get(id: string): RunRecord | undefined {
    const dir = this.dirOf(id);
    return existsSync(join(dir, 'meta.json')) ? { id, dir, meta: readMeta(dir) } : undefined;
  }

  delete(id: string): void {
    rmSync(this.dirOf(id), { recursive: true, force: true });
  }
}

export function readMeta(dir: string): RunMeta {
  return JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as RunMeta;
}

export function readSummary(dir: string): RunSummary | undefined {
  const path = join(dir, 'summary.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as RunSummary) : undefined;
}

/** Every event of a stored run, streamed from disk (a day-long run does not fit in a string). */
export async function* readEvents(dir: string): AsyncGenerator<AgentEvent> {
  const path = join(dir, 'events.ndjson');
  if (!existsSync(path)) return;
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line) continue;
    const parsed = parseEventLine(line);
    if (parsed.ok) yield parsed.event;
  }
}

export function readEventsSync(dir: string): AgentEvent[] {
  const path = join(dir, 'events.ndjson');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map(parseEventLine)
    .flatMap((p) => (p.ok ? [p.event] : []));
}

/** Appends a run's events as they arrive and keeps its meta and summary current. */
export class RunWriter {
  private fd: number;
  readonly eventsPath: string;

  constructor(
    readonly dir: string,
    public meta: RunMeta,
  ) {
    this.eventsPath = join(dir, 'events.ndjson');
    this.fd = openSync(this.eventsPath, 'a');
  }

  get id(): string {
    return this.meta.run_id;
  }

  /** Appends complete lines (each without its newline). */
  appendLines(lines: string[]): void {
    if (lines.length) writeSync(this.fd, `${lines.join('\n')}\n`);
  }

  /** Makes appended events durable before the offset that covers them is written to meta. */
  sync(): void {
    fsyncSync(this.fd);
  }

  get eventBytes(): number {
    return statSync(this.eventsPath).size;
  }

  updateMeta(change: Partial<RunMeta> | ((meta: RunMeta) => void)): void {
    if (typeof change === 'function') change(this.meta);
    else Object.assign(this.meta, change);
    writeJsonAtomic(join(this.dir, 'meta.json'), this.meta);
  }

  note(text: string): void {
    this.updateMeta((m) => m.notes.push(`${new Date().toISOString()} ${text}`));
  }

  writeSummary(summary: RunSummary): void {
    writeJsonAtomic(join(this.dir, 'summary.json'), summary);
  }

  attach(name: string, content: string | Buffer): void {
    if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`bad attachment name ${name}`);
    writeFileSync(join(this.dir, name), content);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

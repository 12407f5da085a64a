import { dirname } from 'node:path';
import { datasetLengthsFrom } from '../core/workspace/datasets';
import * as vscode from 'vscode';
import type { LoadedConfig } from '../core/config';
import type { ModelSpec } from '../core/config/model';
import { lookupModel, type ModelShape } from '../core/estimate/catalog';
import { describeProvenance, type ShapeResolution } from '../core/models/resolve-shape';
import { formatDuration, formatEnergy, formatJoulesPerToken, formatPower, formatUsd } from '../core/config/units';
import { estimateConfig, modelFromSpec, type ConfigEstimate, type PointEstimate } from '../core/estimate/config-estimate';
import type { CalibrationProfile } from '../core/estimate/profile';
import { SWEEPABLE_KEYS } from '../core/config/schema';
import { type ConfigCache, CONFIG_SELECTOR, isConfigDocument, toRange } from './config-files';
import { DisposableBag } from './disposable';
import { reportedGpuFor } from '../core/models/host-gpus';
import type { HostRecords } from './models';

/** Finds a model's shape beyond the catalog (src/core/models/): a local config.json, the caches, the Hub. */
export type ShapeResolver = (spec: ModelSpec, baseDir: string | undefined) => Promise<ShapeResolution>;

const RETRY_MISS_MS = 60_000;

interface EstimateEntry {
  version: number;
  profileVersion: number;
  shapesVersion: number;
  estimate?: ConfigEstimate;
  loaded: LoadedConfig;
  /** Where the model's shape came from, for the hover. */
  provenance?: string;
}

/** Estimates per document version, shared by CodeLens, inlay hints and hovers. */
export class EstimateService implements vscode.Disposable {
  private readonly cache = new Map<string, EstimateEntry>();
  private profile?: CalibrationProfile;
  private profileVersion = 0;
  /** Shapes found (or not) by the resolver, per model spec and config folder; a promise while resolving. */
  private readonly shapes = new Map<string, { result: ShapeResolution; at: number } | Promise<void>>();
  private shapesVersion = 0;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly configs: ConfigCache,
    private readonly resolver?: ShapeResolver,
    /** What the GPU hosts reported (their caches, their GPUs): a run records its host's here. */
    readonly hosts?: HostRecords,
  ) {}

  /** Something a failed resolution depends on changed (a host's cache read, a token, a setting): try again. */
  shapesChanged(): void {
    for (const [key, value] of this.shapes) if (!(value instanceof Promise) && !value.result.ok) this.shapes.delete(key);
    this.shapesVersion++;
    this.changed.fire();
  }

  /** The shape for `spec`, resolved already; or starts resolving it (once) and says so. Never blocks. */
  private shapeFor(spec: ModelSpec, baseDir: string | undefined): { shape?: ModelShape; provenance?: string; pending?: string; error?: string } {
    const direct = modelFromSpec(spec);
    if (direct.ok)
      return { provenance: describeProvenance(lookupModel(spec.id).ok ? { kind: 'catalog', where: 'src/core/estimate/data/models.json' } : { kind: 'config', where: 'model.params_b, layers, hidden, heads' }) };
    if (!this.resolver) return {};
    const key = JSON.stringify([spec, baseDir ?? null]);
    let known = this.shapes.get(key);
    // A miss (offline, a timeout, a model not yet downloaded) is asked again after a while, on the next look.
    if (known && !(known instanceof Promise) && !known.result.ok && Date.now() - known.at > RETRY_MISS_MS) known = undefined;
    if (known === undefined) {
      const resolving = this.resolver(spec, baseDir)
        .catch((error: Error): ShapeResolution => ({ ok: false, message: `resolving ${spec.id} failed: ${error.message}`, looked: [] }))
        .then((result) => {
          this.shapes.set(key, { result, at: Date.now() });
          this.shapesVersion++;
          this.changed.fire();
        });
      this.shapes.set(key, resolving);
      return { pending: `resolving ${spec.id}…` };
    }
    if (known instanceof Promise) return { pending: `resolving ${spec.id}…` };
    const { result } = known;
    if (!result.ok) return { error: result.message };
    const notes = result.notes.length ? ` (${result.notes.join('; ')})` : '';
    return { shape: result.shape, provenance: `${describeProvenance(result.provenance)}${notes}` };
  }

  setProfile(profile: CalibrationProfile | undefined): void {
    this.profile = profile;
    this.profileVersion++;
    this.changed.fire();
  }

  get calibration(): CalibrationProfile | undefined {
    return this.profile;
  }

  get(document: vscode.TextDocument): { loaded: LoadedConfig; estimate?: ConfigEstimate; provenance?: string } {
    const key = document.uri.toString();
    const hit = this.cache.get(key);
    if (hit && hit.version === document.version && hit.profileVersion === this.profileVersion && hit.shapesVersion === this.shapesVersion) return hit;
    const loaded = this.configs.get(document);
    let estimate: ConfigEstimate | undefined;
    let provenance: string | undefined;
    if (loaded.config) {
      const baseDir = document.uri.scheme === 'file' ? dirname(document.uri.fsPath) : undefined;
      const found = this.shapeFor(loaded.config.model, baseDir);
      provenance = found.provenance;
      const datasets = baseDir === undefined ? undefined : datasetLengthsFrom(baseDir);
      const hostGpus = this.hosts?.hostGpus;
      const reported = hostGpus && reportedGpuFor(loaded.config, (h) => hostGpus.get(h));
      estimate = estimateConfig(loaded.config, loaded.points, { profile: this.profile, shapes: found.shape && (() => found.shape), datasets, reported });
      // Until the shape is found, say that it is being looked for rather than that the model is unknown.
      if (!estimate.total && (found.pending || found.error)) estimate = { ...estimate, error: found.pending ?? found.error };
    }
    const entry: EstimateEntry = { version: document.version, profileVersion: this.profileVersion, shapesVersion: this.shapesVersion, estimate, loaded, provenance };
    this.cache.set(key, entry);
    return entry;
  }

  /** The cost settings changed: every config's prices are stale. */
  settingsChanged(): void {
    this.configs.clear();
    this.cache.clear();
    this.changed.fire();
  }

  /** Fires after the user stops typing, so lenses and hints refresh without blocking keystrokes. */
  documentChanged(): void {
    this.changed.fire();
  }

  forget(document: vscode.TextDocument): void {
    this.cache.delete(document.uri.toString());
  }

  dispose(): void {
    this.changed.dispose();
  }
}

export function estimateTitle(estimate: ConfigEstimate): string {
  // A not-found message lists every place looked, one per line: the lens shows its first line, the hover all of it.
  if (!estimate.total) return `estimate unavailable: ${(estimate.error ?? 'unknown').split('\n')[0]}`;
  const t = estimate.total;
  return `≈ ${formatDuration(t.runtime_s)} · ${formatEnergy(t.energy_j)} · ${formatJoulesPerToken(t.j_per_output_token)} · ${formatUsd(t.usd)} (${t.basis})`;
}

function pointLine(p: PointEstimate): string {
  if (!p.prediction) return `| ${p.label} | ${p.error ?? 'no estimate'} | | | | | |`;
  const r = p.prediction;
  return `| ${p.label} | ${formatDuration(r.runtime_s)} | ${Math.round(r.output_tokens_per_s)} | ${formatPower(r.avg_power_w)} | ${formatJoulesPerToken(r.j_per_output_token)} (${r.low.j_per_output_token.toPrecision(2)}–${r.high.j_per_output_token.toPrecision(2)}) | ${(r.breakdown.prefill_s / Math.max(1e-9, r.runtime_s) * 100).toFixed(0)}% / ${(r.breakdown.decode_s / Math.max(1e-9, r.runtime_s) * 100).toFixed(0)}% / ${(r.breakdown.idle_share * 100).toFixed(0)}% | ${p.idealized ? `${p.idealized.runtime_s.toFixed(3)} s, ${formatUsd(p.idealized.cost_usd)}` : ''} |`;
}

/** The breakdown shown on hover: per point, with the model behind it and what it assumed. */
export function estimateMarkdown(estimate: ConfigEstimate, points: PointEstimate[], heading: string, provenance?: string): vscode.MarkdownString {
  const md = new vscode.MarkdownString(undefined, true);
  md.appendMarkdown(`**Wattbench estimate — ${heading}**\n\n`);
  if (!estimate.total && estimate.error) md.appendCodeblock(estimate.error, 'text');
  if (estimate.total && points.length === estimate.points.length) {
    const t = estimate.total;
    md.appendMarkdown(
      `Total ${estimateTitle(estimate)}; band ${formatDuration(t.low.runtime_s)}–${formatDuration(t.high.runtime_s)}, ${formatEnergy(t.low.energy_j)}–${formatEnergy(t.high.energy_j)}; ${t.gco2.toFixed(t.gco2 < 10 ? 2 : 0)} gCO2.\n\n`,
    );
  }
  md.appendMarkdown('| point | time | tok/s | W/GPU | J/token (band) | prefill / decode / idle | idealized per request |\n|---|---|---|---|---|---|---|\n');
  md.appendMarkdown(points.map(pointLine).join('\n') + '\n\n');
  const first = points.find((p) => p.prediction)?.prediction;
  if (first) {
    const b = first.breakdown;
    md.appendMarkdown(
      `Model: ${estimate.model?.id} (${estimate.model?.paramsB} B, ${estimate.model?.dtype}) on ${estimate.gpu?.name}. ` +
        `Decode step ${(b.step_s * 1000).toFixed(1)} ms at batch ${b.batch.toFixed(0)} (limited by ${b.batch_limited_by}), bound by ${b.bound}; ` +
        `GPU demand ${formatPower(b.demand_w)}, draw ${formatPower(b.draw_w)}${b.cap_slowdown > 1.001 ? `, cap slows decode ×${b.cap_slowdown.toFixed(3)}` : ''}.\n\n`,
    );
    md.appendMarkdown(`Basis: **${first.basis}** — ${first.basisDetail}\n\n`);
  }
  if (provenance) md.appendMarkdown(`Model ${provenance}\n\n`);
  for (const a of estimate.assumptions) md.appendMarkdown(`- assumed: ${a}\n`);
  md.appendMarkdown('\nIdealized runtime: HELM\'s T(p, o) = α(p) + β·(o − 1) at batch 1 on uniform hardware; cost = T × $/GPU-hour × GPUs.');
  return md;
}

/** ▶ Run · the estimate · Last result above each config; the estimate's title is computed in resolve. */
export class EstimateCodeLens implements vscode.CodeLensProvider {
  readonly onDidChangeCodeLenses: vscode.Event<void>;

  constructor(
    private readonly estimates: EstimateService,
    private readonly lastResult: (uri: vscode.Uri) => { label: string; runId: string } | undefined,
    onOtherChange: vscode.Event<void>,
  ) {
    const emitter = new vscode.EventEmitter<void>();
    estimates.onDidChange(() => emitter.fire());
    onOtherChange(() => emitter.fire());
    this.onDidChangeCodeLenses = emitter.event;
  }

  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    if (!isConfigDocument(document)) return [];
    const { loaded } = this.estimates.get(document);
    const line = loaded.source.has(['name']) ? loaded.source.rangeOf(['name'], 'key').start.line : 0;
    const range = new vscode.Range(line, 0, line, 0);
    const lenses: vscode.CodeLens[] = [];
    if (loaded.config) {
      const target = loaded.config.target;
      const where = target.kind === 'local' ? 'local' : target.kind === 'ssh' ? target.host : target.kind === 'hosts' ? `${target.hosts.length} hosts` : `Slurm via ${target.slurm.login}`;
      lenses.push(
        new vscode.CodeLens(range, {
          title: `$(play) Run on ${where} · ${loaded.points.length} point${loaded.points.length === 1 ? '' : 's'}`,
          command: 'wattbench.run',
          arguments: [document.uri],
        }),
      );
      lenses.push(new EstimateLens(range, document.uri));
      if (loaded.config.slo || loaded.points.some((p) => p.slo))
        lenses.push(new vscode.CodeLens(range, { title: '$(target) Recommend', tooltip: 'The point with the lowest J/token or $/Mtoken that meets the SLO, predicted and measured', command: 'wattbench.recommend', arguments: [document.uri] }));
    } else {
      lenses.push(new vscode.CodeLens(range, { title: '$(error) Fix the errors to run and estimate', command: 'workbench.actions.view.problems' }));
    }
    const last = this.lastResult(document.uri);
    if (last) lenses.push(new vscode.CodeLens(range, { title: `Last result: ${last.label}`, command: 'wattbench.openResult', arguments: [last.runId] }));
    return lenses;
  }

  resolveCodeLens(lens: vscode.CodeLens): vscode.CodeLens {
    if (!(lens instanceof EstimateLens)) return lens;
    const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === lens.uri.toString());
    const estimate = document ? this.estimates.get(document).estimate : undefined;
    lens.command = {
      title: estimate ? estimateTitle(estimate) : 'no estimate',
      tooltip: 'Predicted runtime, GPU energy, J per output token and electricity cost; click for the breakdown',
      command: 'wattbench.estimate',
      arguments: [lens.uri],
    };
    return lens;
  }
}

class EstimateLens extends vscode.CodeLens {
  constructor(
    range: vscode.Range,
    readonly uri: vscode.Uri,
  ) {
    super(range);
  }
}

/** `≈ 0.31 J/token` after each sweep value: the mean over the points that have it. */
export class SweepInlayHints implements vscode.InlayHintsProvider {
  readonly onDidChangeInlayHints: vscode.Event<void>;

  constructor(private readonly estimates: EstimateService) {
    this.onDidChangeInlayHints = estimates.onDidChange;
  }

  provideInlayHints(document: vscode.TextDocument, range: vscode.Range): vscode.InlayHint[] {
    if (!isConfigDocument(document)) return [];
    const { loaded, estimate, provenance } = this.estimates.get(document);
    if (!estimate?.total || !loaded.input?.sweep) return [];
    const hints: vscode.InlayHint[] = [];
    for (const key of SWEEPABLE_KEYS) {
      const values = loaded.input.sweep[key] as unknown[] | undefined;
      if (!values) continue;
      loaded.source.itemRanges(['sweep', key]).forEach((itemRange, i) => {
        const position = toRange(itemRange).end;
        if (!range.contains(position)) return;
        const matching = estimate.points.filter((p) => p.prediction && JSON.stringify(p.params[key]) === JSON.stringify(values[i]));
        if (!matching.length) return;
        const j = matching.map((p) => p.prediction!.j_per_output_token);
        const lo = Math.min(...j);
        const hi = Math.max(...j);
        const label = hi / lo < 1.05 ? `≈ ${formatJoulesPerToken((lo + hi) / 2)}` : `≈ ${lo.toPrecision(2)}–${formatJoulesPerToken(hi)}`;
        const hint = new vscode.InlayHint(position, label, vscode.InlayHintKind.Parameter);
        hint.paddingLeft = true;
        hint.tooltip = estimateMarkdown(estimate, matching, `${key} = ${JSON.stringify(values[i])}`, provenance);
        hints.push(hint);
      });
    }
    return hints;
  }
}

/** Hover on the config's name (whole estimate) or on a sweep value (its points). */
export class EstimateHover implements vscode.HoverProvider {
  constructor(private readonly estimates: EstimateService) {}

  provideHover(document: vscode.TextDocument, position: vscode.Position): vscode.Hover | undefined {
    if (!isConfigDocument(document)) return undefined;
    const { loaded, estimate, provenance } = this.estimates.get(document);
    if (!estimate || !loaded.config) return undefined;
    const nameRange = toRange(loaded.source.rangeOf(['name'], 'key'));
    if (nameRange.start.line === position.line) return new vscode.Hover(estimateMarkdown(estimate, estimate.points, loaded.config.name, provenance));
    for (const key of SWEEPABLE_KEYS) {
      const values = loaded.input?.sweep?.[key] as unknown[] | undefined;
      if (!values) continue;
      const ranges = loaded.source.itemRanges(['sweep', key]).map(toRange);
      const i = ranges.findIndex((r) => r.contains(position));
      if (i === -1) continue;
      const matching = estimate.points.filter((p) => JSON.stringify(p.params[key]) === JSON.stringify(values[i]));
      return new vscode.Hover(estimateMarkdown(estimate, matching, `${key} = ${JSON.stringify(values[i])}`, provenance), ranges[i]);
    }
    return undefined;
  }
}

export function registerEstimateProviders(bag: DisposableBag, estimates: EstimateService, lastResult: (uri: vscode.Uri) => { label: string; runId: string } | undefined, onRunsChanged: vscode.Event<void>): void {
  bag.add(vscode.languages.registerCodeLensProvider(CONFIG_SELECTOR, new EstimateCodeLens(estimates, lastResult, onRunsChanged)));
  bag.add(vscode.languages.registerInlayHintsProvider(CONFIG_SELECTOR, new SweepInlayHints(estimates)));
  bag.add(vscode.languages.registerHoverProvider(CONFIG_SELECTOR, new EstimateHover(estimates)));
}

import * as vscode from 'vscode';
import type { ConfigDiagnostic } from '../core/config';
import { type ConfigCache, CONFIG_SELECTOR, isConfigDocument, toRange } from './config-files';
import { DisposableBag } from './disposable';

const DEBOUNCE_MS = 250;
const SEVERITY: Record<ConfigDiagnostic['severity'], vscode.DiagnosticSeverity> = {
  error: vscode.DiagnosticSeverity.Error,
  warning: vscode.DiagnosticSeverity.Warning,
  info: vscode.DiagnosticSeverity.Information,
};

/** Squiggles from the core validator, on open and (debounced) on edit, with Quick Fixes for its fixes. */
export class ConfigDiagnostics implements vscode.CodeActionProvider, vscode.Disposable {
  static readonly providedCodeActionKinds = [vscode.CodeActionKind.QuickFix];
  private readonly bag = new DisposableBag();
  private readonly collection = this.bag.add(vscode.languages.createDiagnosticCollection('wattbench'));
  private readonly pending = new Map<string, NodeJS.Timeout>();
  /** The core's diagnostics behind each published one, so Quick Fixes can use their fixes. */
  private readonly published = new Map<string, ConfigDiagnostic[]>();

  constructor(
    private readonly configs: ConfigCache,
    private readonly afterRefresh: () => void = () => undefined,
  ) {
    this.bag.add(vscode.workspace.onDidOpenTextDocument((d) => this.refresh(d)));
    this.bag.add(vscode.workspace.onDidChangeTextDocument((e) => this.schedule(e.document)));
    this.bag.add(
      vscode.workspace.onDidCloseTextDocument((d) => {
        this.collection.delete(d.uri);
        this.published.delete(d.uri.toString());
        this.configs.forget(d);
      }),
    );
    this.bag.add(vscode.languages.registerCodeActionsProvider(CONFIG_SELECTOR, this, { providedCodeActionKinds: ConfigDiagnostics.providedCodeActionKinds }));
    this.bag.add({ dispose: () => this.pending.forEach((t) => clearTimeout(t)) });
    vscode.workspace.textDocuments.forEach((d) => this.refresh(d));
  }

  private schedule(document: vscode.TextDocument): void {
    if (!isConfigDocument(document)) return;
    const key = document.uri.toString();
    clearTimeout(this.pending.get(key));
    this.pending.set(key, setTimeout(() => {
      this.pending.delete(key);
      this.refresh(document);
      this.afterRefresh();
    }, DEBOUNCE_MS));
  }

  refresh(document: vscode.TextDocument): void {
    if (!isConfigDocument(document) || document.isClosed) return;
    const found = this.configs.get(document).diagnostics;
    this.published.set(document.uri.toString(), found);
    this.collection.set(document.uri, found.map((d) => {
      const diagnostic = new vscode.Diagnostic(toRange(d.range), d.message, SEVERITY[d.severity]);
      diagnostic.source = 'wattbench';
      diagnostic.code = d.code;
      return diagnostic;
    }));
  }

  provideCodeActions(document: vscode.TextDocument, _range: vscode.Range, context: vscode.CodeActionContext): vscode.CodeAction[] {
    const ours = this.published.get(document.uri.toString()) ?? [];
    const actions: vscode.CodeAction[] = [];
    for (const diagnostic of context.diagnostics) {
      if (diagnostic.source !== 'wattbench') continue;
      const match = ours.find((d) => d.fix && d.message === diagnostic.message && toRange(d.range).isEqual(diagnostic.range));
      if (!match?.fix) continue;
      const action = new vscode.CodeAction(match.fix.title, vscode.CodeActionKind.QuickFix);
      action.edit = new vscode.WorkspaceEdit();
      action.edit.replace(document.uri, toRange(match.fix.range), match.fix.newText);
      action.diagnostics = [diagnostic];
      action.isPreferred = true;
      actions.push(action);
    }
    return actions;
  }

  dispose(): void {
    this.bag.dispose();
  }
}

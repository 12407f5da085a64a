/**
 * Markdown that Wattbench writes for reading (a recommendation, an estimate) as read-only documents of its own
 * schemes, shown in the Markdown preview: an untitled document would be an unsaved editor that closing the
 * window asks to save, one more each time the command runs.
 */
import * as vscode from 'vscode';

/** One scheme per kind of document, so each one's title and tab say what it is. */
export const PREVIEW_SCHEMES = { recommendation: 'wattbench-recommendation', estimate: 'wattbench-estimate' } as const;
export type PreviewKind = keyof typeof PREVIEW_SCHEMES;

const shown = new Map<string, string>();
const changed = new vscode.EventEmitter<vscode.Uri>();

export function registerPreviewDocuments(): vscode.Disposable {
  const provider: vscode.TextDocumentContentProvider = { onDidChange: changed.event, provideTextDocumentContent: (uri) => shown.get(uri.toString()) ?? '' };
  return vscode.Disposable.from(changed, ...Object.values(PREVIEW_SCHEMES).map((scheme) => vscode.workspace.registerTextDocumentContentProvider(scheme, provider)));
}

/** Shows `markdown` as the preview of the document `title`.md of `kind`: one per title, refreshed by the next call. */
export async function showPreviewDocument(kind: PreviewKind, title: string, markdown: string): Promise<void> {
  const uri = vscode.Uri.from({ scheme: PREVIEW_SCHEMES[kind], path: `/${title.replace(/[\\/]/g, '_')}.md` });
  shown.set(uri.toString(), markdown);
  changed.fire(uri);
  const doc = await vscode.workspace.openTextDocument(uri);
  await vscode.commands.executeCommand('markdown.showPreview', doc.uri).then(undefined, () => vscode.window.showTextDocument(doc));
}

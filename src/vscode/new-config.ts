import * as vscode from 'vscode';
import { starterConfig } from '../core/config/starter';

/** "Wattbench: New Benchmark Config": asks for a name, writes a commented starter file and opens it. */
export async function newConfigCommand(): Promise<vscode.Uri | undefined> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) {
    void vscode.window.showErrorMessage('Wattbench: open a folder first; configs are files in the workspace.');
    return undefined;
  }
  const name = await vscode.window.showInputBox({
    title: 'New Wattbench config',
    prompt: 'Name of the benchmark (also the file name)',
    value: 'my-benchmark',
    validateInput: (v) => (/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v) ? undefined : 'Use letters, digits, dots, dashes and underscores.'),
  });
  if (!name) return undefined;
  const kind = await vscode.window.showQuickPick(
    [
      { label: 'Simulated GPU (try it now)', description: 'local host, built-in simulated server and GPU', simulated: true },
      { label: 'Real GPU host', description: 'SSH host running vLLM or another OpenAI-compatible server', simulated: false },
    ],
    { title: 'Where will it run?' },
  );
  if (!kind) return undefined;
  const uri = vscode.Uri.joinPath(folder.uri, `${name}.wattbench.yaml`);
  try {
    await vscode.workspace.fs.stat(uri);
    const choice = await vscode.window.showWarningMessage(`${name}.wattbench.yaml exists.`, { modal: true }, 'Overwrite');
    if (choice !== 'Overwrite') return undefined;
  } catch {
    // Does not exist yet: the usual case.
  }
  await vscode.workspace.fs.writeFile(uri, Buffer.from(starterConfig(name, { simulated: kind.simulated })));
  await vscode.window.showTextDocument(uri);
  return uri;
}

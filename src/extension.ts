import * as vscode from 'vscode';
import { ConfigCache } from './vscode/configFiles';
import { ConfigDiagnostics } from './vscode/diagnostics';
import { newConfigCommand } from './vscode/newConfig';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Wattbench', { log: true });
  const configs = new ConfigCache();
  context.subscriptions.push(
    log,
    new ConfigDiagnostics(configs),
    vscode.commands.registerCommand('wattbench.newConfig', newConfigCommand),
  );
  log.info('Wattbench activated');
}

export function deactivate(): void {}

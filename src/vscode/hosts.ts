import * as vscode from 'vscode';
import { type HostCacheStore, readHostCache } from '../core/models/host-cache';
import { gpusOfHello } from '../core/models/host-gpus';
import { findAgentSource } from '../core/run/agent-path';
import { installAgent } from '../core/run/remote';
import { shq } from '../core/transport/shell';
import { listConfiguredHosts } from '../core/transport/ssh-config';
import type { SshOptions } from '../core/transport/ssh';
import { openTransport } from '../core/transport/open';
import { hostGpusBeside } from './models';
import { SECTION } from './settings';

/** How SSH asks the user: host keys in a modal, key passphrases in a password box (kept only if asked). */
export function sshPrompts(secrets: vscode.SecretStorage): Pick<SshOptions, 'confirmHostKey' | 'passphrase'> {
  return {
    confirmHostKey: async (host, fingerprint) =>
      (await vscode.window.showWarningMessage(
        `Wattbench: ${host} is not a known host. Its key is ${fingerprint}. Connect and remember it?`,
        { modal: true, detail: 'Compare the fingerprint with the one the host administrator gives you (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the host).' },
        'Connect',
      )) === 'Connect',
    passphrase: async (keyFile) => {
      const key = `passphrase:${keyFile}`;
      const stored = await secrets.get(key);
      if (stored) return stored;
      const entered = await vscode.window.showInputBox({ title: `Passphrase for ${keyFile}`, password: true, ignoreFocusOut: true });
      if (entered === undefined) return undefined;
      const keep = await vscode.window.showInformationMessage(`Remember the passphrase of ${keyFile} in VS Code's secret storage?`, 'Remember', 'Not now');
      if (keep === 'Remember') await secrets.store(key, entered);
      return entered;
    },
  };
}

export function configuredHosts(): string[] {
  const extra = vscode.workspace.getConfiguration(SECTION).get<string[]>('hosts') ?? [];
  let fromSsh: string[] = [];
  try {
    fromSsh = listConfiguredHosts();
  } catch {
    // An unreadable ~/.ssh/config just means no hosts from it.
  }
  return ['local', ...new Set([...extra, ...fromSsh])];
}

export class HostItem extends vscode.TreeItem {
  constructor(
    readonly host: string,
    detail?: string,
  ) {
    super(host, vscode.TreeItemCollapsibleState.None);
    this.contextValue = 'wattbench.host';
    this.iconPath = new vscode.ThemeIcon(host === 'local' ? 'vm' : 'remote');
    this.description = detail ?? (host === 'local' ? 'this machine' : 'ssh');
    this.tooltip = host === 'local' ? 'Runs on this machine (the built-in simulated GPU works here)' : `SSH host ${host} (from ~/.ssh/config or the wattbench.hosts setting)`;
  }
}

export class HostsTree implements vscode.TreeDataProvider<HostItem> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly details = new Map<string, string>();

  refresh(): void {
    this.changed.fire();
  }

  setDetail(host: string, detail: string): void {
    this.details.set(host, detail);
    this.changed.fire();
  }

  getTreeItem(item: HostItem): vscode.TreeItem {
    return item;
  }

  getChildren(): HostItem[] {
    return configuredHosts().map((h) => new HostItem(h, this.details.get(h)));
  }
}

/**
 * Connects, installs the agent, and lists the GPUs it finds (or says why it cannot). With `hostCaches`, also reads
 * which models the host's Hugging Face cache holds and records them, for estimates of those models, and records the
 * GPUs it reported beside them, for estimates of configs on this host that give no `gpus.type`.
 */
export async function testHostConnection(
  host: string,
  extensionUri: vscode.Uri,
  log: vscode.LogOutputChannel,
  secrets: vscode.SecretStorage,
  hostCaches?: HostCacheStore,
): Promise<string> {
  const transport = openTransport(host, { logger: log, ...sshPrompts(secrets) });
  try {
    const agent = await installAgent(transport, findAgentSource(vscode.Uri.joinPath(extensionUri, 'dist').fsPath));
    const result = await transport.exec(`python3 ${shq(agent.path)} probe --source auto`);
    const line = result.stdout.trim().split('\n').pop() ?? '';
    const event = JSON.parse(line) as { type: string; gpus?: { name: string }[]; message?: string; driver?: string; simulated?: boolean };
    const gpus = gpusOfHello(event);
    if (hostCaches && gpus) {
      try {
        hostGpusBeside(hostCaches).record(host, gpus);
      } catch (error) {
        log.warn(`${host}: could not record its GPUs: ${(error as Error).message}`);
      }
    }
    let models = '';
    if (hostCaches) {
      // The model list is extra: a host whose cache cannot be read still tests fine.
      try {
        const recorded = hostCaches.record(host, await readHostCache(transport, agent.path));
        models = `; ${recorded.models.length} model${recorded.models.length === 1 ? '' : 's'} in its Hugging Face cache`;
        log.info(`${host}: Hugging Face cache ${recorded.cache_dir}: ${recorded.models.map((m) => m.id).join(', ') || 'empty'}`);
      } catch (error) {
        log.warn(`${host}: could not read its Hugging Face cache: ${(error as Error).message}`);
      }
    }
    if (event.type === 'hello' && event.gpus) {
      const names = event.gpus.map((g) => g.name);
      return `${names.length} GPU${names.length === 1 ? '' : 's'}: ${[...new Set(names)].join(', ')} (driver ${event.driver ?? '?'}, Python ${agent.python})${models}`;
    }
    return `reachable, Python ${agent.python}, but no GPU telemetry: ${event.message ?? line}${models}`;
  } finally {
    transport.close();
  }
}

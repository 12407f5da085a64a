import { dirname, join } from 'node:path';
import * as vscode from 'vscode';
import type { ModelSpec } from '../core/config/model';
import { HostCacheStore } from '../core/models/host-cache';
import { HostGpuStore } from '../core/models/host-gpus';
import { resolveShape, type ShapeResolution } from '../core/models/resolve-shape';
import { SECTION } from './settings';

/** The SecretStorage key of the Hugging Face token (gated models). */
const HF_TOKEN_SECRET = 'huggingface.token';
const TOKEN_HINT = 'run "Wattbench: Set Hugging Face Token", or set HF_TOKEN in the environment VS Code starts from';

/** What is recorded about the GPU hosts: their Hugging Face caches and the GPUs their agents reported. */
export interface HostRecords {
  readonly hostCaches: HostCacheStore;
  readonly hostGpus: HostGpuStore;
}

const HOST_CACHES_FILE = 'host-hf-caches.json';
const HOST_GPUS_FILE = 'host-gpus.json';

/** The reported-GPU records kept beside `hostCaches` (the same global storage folder). */
export function hostGpusBeside(hostCaches: HostCacheStore): HostGpuStore {
  return new HostGpuStore(join(dirname(hostCaches.file), HOST_GPUS_FILE));
}

/**
 * What the extension keeps to find model shapes and GPUs: Hub answers, the GPU hosts' caches and the GPUs they
 * reported, in its global storage.
 */
export class ModelShapes implements HostRecords {
  readonly hostCaches: HostCacheStore;
  readonly hostGpus: HostGpuStore;
  private readonly hubCacheDir: string;

  constructor(
    globalStorage: string,
    private readonly secrets: vscode.SecretStorage,
  ) {
    this.hubCacheDir = join(globalStorage, 'hf');
    this.hostCaches = new HostCacheStore(join(globalStorage, HOST_CACHES_FILE));
    this.hostGpus = hostGpusBeside(this.hostCaches);
  }

  /** The whole chain of src/core/models/resolve-shape.ts; the Hub only while the setting allows it. */
  async resolve(spec: ModelSpec, baseDir: string | undefined): Promise<ShapeResolution> {
    return resolveShape(spec, {
      env: process.env,
      baseDir,
      hubCacheDir: this.hubCacheDir,
      hostCaches: this.hostCaches.all(),
      fetchHub: vscode.workspace.getConfiguration(SECTION).get<boolean>('huggingFace.fetchConfigs', true),
      token: (await this.secrets.get(HF_TOKEN_SECRET)) || undefined,
      tokenHint: TOKEN_HINT,
    });
  }
}

/** "Wattbench: Set Hugging Face Token": kept in SecretStorage; an empty entry removes it. Returns whether it changed. */
export async function setHuggingFaceToken(secrets: vscode.SecretStorage): Promise<boolean> {
  const entered = await vscode.window.showInputBox({
    title: 'Hugging Face token (for gated models)',
    prompt: 'A read token from https://huggingface.co/settings/tokens of an account that accepted the model\'s terms. Leave empty to remove the stored one.',
    password: true,
    ignoreFocusOut: true,
  });
  if (entered === undefined) return false;
  if (entered.trim()) await secrets.store(HF_TOKEN_SECRET, entered.trim());
  else await secrets.delete(HF_TOKEN_SECRET);
  void vscode.window.showInformationMessage(entered.trim() ? 'Wattbench: Hugging Face token stored in VS Code\'s secret storage.' : 'Wattbench: Hugging Face token removed.');
  return true;
}

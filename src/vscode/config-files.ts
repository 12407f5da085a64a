import { dirname } from 'node:path';
import * as vscode from 'vscode';
import { CONFIG_FILE_PATTERN, type LoadedConfig, type SourceRange } from '../core/config';
import { loadWorkspaceConfig } from '../core/workspace/configs';
import { costDefaultsFromSettings } from './settings';

export const CONFIG_SELECTOR: vscode.DocumentSelector = [{ pattern: '**/*.wattbench.{yaml,yml,json}' }];

export function isConfigDocument(document: vscode.TextDocument): boolean {
  return CONFIG_FILE_PATTERN.test(document.uri.path);
}

export function toRange(range: SourceRange): vscode.Range {
  return new vscode.Range(range.start.line, range.start.col, range.end.line, range.end.col);
}

/**
 * Parses each config document once per version, so diagnostics, CodeLens, hovers and hints share
 * one parse instead of four.
 */
export class ConfigCache {
  private cache = new Map<string, { version: number; loaded: LoadedConfig }>();

  get(document: vscode.TextDocument): LoadedConfig {
    const key = document.uri.toString();
    const hit = this.cache.get(key);
    if (hit && hit.version === document.version) return hit.loaded;
    const base = document.uri.scheme === 'file' ? dirname(document.uri.fsPath) : undefined;
    const loaded = loadWorkspaceConfig(document.getText(), base, { costDefaults: costDefaultsFromSettings() });
    this.cache.set(key, { version: document.version, loaded });
    return loaded;
  }

  forget(document: vscode.TextDocument): void {
    this.cache.delete(document.uri.toString());
  }

  clear(): void {
    this.cache.clear();
  }
}

// What every view shares: the host's API, the #app element, and numbers and text made into HTML.
import type { ViewToHost } from '../src/core/protocol/webview';

declare function acquireVsCodeApi(): {
  postMessage(message: ViewToHost): void;
  setState(state: unknown): void;
  getState(): unknown;
};

/** The extension's side of the page: VS Code lets a page acquire it once. */
export const vscode = acquireVsCodeApi();
export const app = document.getElementById('app')!;

/** A theme variable of VS Code's, or `fallback` where the page has none (the bench's page). */
export const css = (name: string, fallback: string) =>
  getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

export { esc, fmt, tds, ths } from './html';

/** A card with a title and a table that scrolls sideways when it is wider than the card. */
export const tableCard = (title: string, id: string, rows: string) =>
  `<div class="card"><h2>${title}</h2><div class="scroll"><table id="${id}">${rows}</table></div></div>`;

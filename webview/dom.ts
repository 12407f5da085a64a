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

export const fmt = (v: number | undefined | null, digits = 3) =>
  v === undefined || v === null || !Number.isFinite(v) ? '–' : Number(v.toPrecision(digits)).toLocaleString();
export const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Header cells, one per (HTML) heading. */
export const ths = (heads: string[]) => heads.map((h) => `<th>${h}</th>`).join('');
/** Data cells, one per value: HTML, so text in them is escaped by the caller. */
export const tds = (values: (string | number)[]) => values.map((v) => `<td>${v}</td>`).join('');

/** A card with a title and a table that scrolls sideways when it is wider than the card. */
export const tableCard = (title: string, id: string, rows: string) =>
  `<div class="card"><h2>${title}</h2><div class="scroll"><table id="${id}">${rows}</table></div></div>`;

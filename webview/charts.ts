// chart.js as the views use it: registered once, themed by VS Code, drawn without animation or parsing.
import {
  Chart,
  Decimation,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  ScatterController,
  Tooltip,
} from 'chart.js';
import { css, vscode } from './dom';

Chart.register(LineController, ScatterController, LineElement, PointElement, LinearScale, Legend, Tooltip, Decimation);

export type XY = { x: number; y: number };

const PALETTE = [
  '--vscode-charts-blue',
  '--vscode-charts-orange',
  '--vscode-charts-green',
  '--vscode-charts-purple',
  '--vscode-charts-yellow',
  '--vscode-charts-red',
];
/** The same colours where the page has no theme (the bench's page). */
const FALLBACK = ['#3794ff', '#d18616', '#89d185', '#b180d7', '#cca700', '#f14c4c'];
export const color = (i: number) => css(PALETTE[i % PALETTE.length], FALLBACK[i % 6]);
Chart.defaults.color = css('--vscode-editor-foreground', '#ccc');
Chart.defaults.borderColor = css('--vscode-editorWidget-border', 'rgba(128,128,128,0.3)');
Chart.defaults.font.family = css('--vscode-font-family', 'sans-serif');

export function lineChart(canvas: HTMLCanvasElement, yTitle: string, extra: Record<string, unknown> = {}): Chart {
  return new Chart(canvas, {
    type: 'line',
    data: { datasets: [] },
    options: {
      animation: false,
      parsing: false,
      normalized: true,
      responsive: true,
      maintainAspectRatio: false,
      spanGaps: true,
      elements: { point: { radius: 0 }, line: { borderWidth: 1.5 } },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'seconds' } },
        y: { title: { display: true, text: yTitle }, beginAtZero: true },
      },
      plugins: { decimation: { enabled: true, algorithm: 'lttb', samples: 800 }, legend: { labels: { boxWidth: 12 } } },
      ...extra,
    },
  });
}

export function scatterChart(
  canvas: HTMLCanvasElement,
  xTitle: string,
  yTitle: string,
  extra: Record<string, unknown> = {},
): Chart {
  return new Chart(canvas, {
    type: 'scatter',
    data: { datasets: [] },
    options: {
      ...extra,
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: {
        x: { title: { display: true, text: xTitle } },
        y: { title: { display: true, text: yTitle }, beginAtZero: true },
      },
      plugins: { legend: { labels: { boxWidth: 12 } } },
    },
  });
}

/**
 * Per-point markers of a Pareto dataset: a star for a point that met its SLO, a cross for one that missed
 * it, a circle for one judged by none.
 */
export function sloMarkers(points: { slo?: { met: boolean } }[]): { pointStyle: string[]; pointRadius: number[] } {
  return {
    pointStyle: points.map((p) => (!p.slo ? 'circle' : p.slo.met ? 'star' : 'crossRot')),
    pointRadius: points.map((p) => (p.slo?.met ? 7 : 4)),
  };
}

/** The canvas of a chart with id `canvasId`, once a view's HTML is in the page. */
export const canvas = (canvasId: string) => document.getElementById(canvasId) as HTMLCanvasElement;

/** A button that asks the host to save the chart as `name`.png; it is wired once the HTML is in the page. */
function pngButton(chart: () => Chart | undefined, name: string): string {
  const id = `png-${name}`;
  queueMicrotask(() =>
    document.getElementById(id)?.addEventListener('click', () => {
      const c = chart();
      if (c) vscode.postMessage({ type: 'savePng', name, dataUrl: c.toBase64Image('image/png', 1) });
    }),
  );
  return `<button class="link" id="${id}" title="Save as PNG">PNG</button>`;
}

/** A card with a title, a PNG button saving as `png`.png, and a canvas `canvasId` for `chart` to draw in. */
export function chartCard(title: string, png: string, canvasId: string, chart: () => Chart | undefined): string {
  return (
    `<div class="card"><h2>${title} ${pngButton(chart, png)}</h2>` +
    `<div class="chart"><canvas id="${canvasId}"></canvas></div></div>`
  );
}

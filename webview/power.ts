// A run's power timeline as the result view draws it: Wattbench's own samples, or an imported file's readings.
import type { ResultRun } from '../src/core/protocol/webview';

/**
 * The power chart's series of `r`, named `name`: its `sample` events' total power, or for an imported run
 * (no events) the timeline its file recorded, which the legend says is the file's and not a Wattbench measurement.
 */
export function powerSeries(r: ResultRun, name: string): { label: string; data: { x: number; y: number }[] } {
  const xy = (points: { t: number; w: number }[]) => points.map((p) => ({ x: p.t, y: p.w }));
  const file = r.summary.power_timeline;
  if (r.power.length || !file?.length) return { label: name, data: xy(r.power) };
  return { label: `${name} (from the imported file)`, data: xy(file) };
}

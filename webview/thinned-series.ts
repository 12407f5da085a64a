import type { XY } from './charts';

/**
 * A series the chart can redraw cheaply however long the run: past MAX_DRAWN points the older half is
 * averaged in pairs (averaging keeps the area, so a power curve still shows the energy). The live view
 * draws these; the full-resolution data stays in the run's store.
 */
export class ThinnedSeries {
  // The charts sit in a grid of ≥ 420 px columns: 750–1,000 points is one or more per pixel of a
  // chart as wide as a large screen; more would be drawn over each other.
  static readonly MAX_DRAWN = 1000;
  readonly data: XY[] = [];

  push(x: number, y: number): void {
    this.data.push({ x, y });
    if (this.data.length > ThinnedSeries.MAX_DRAWN) {
      const half = this.data.length >> 1;
      const thinned: XY[] = [];
      for (let i = 0; i + 1 < half; i += 2) {
        thinned.push({ x: (this.data[i].x + this.data[i + 1].x) / 2, y: (this.data[i].y + this.data[i + 1].y) / 2 });
      }
      this.data.splice(0, half - (half % 2), ...thinned);
    }
  }
}

/**
 * A total power timeline from per-GPU ones, as another tool recorded them: each GPU's readings (epoch
 * seconds, W) held until its next one, summed where every GPU has read. Zeus's PowerMonitor (ML.ENERGY)
 * keeps only readings that changed, so holding the last value is what its timeline means.
 */

/** Total W of all GPUs over time: `t` in seconds since the first instant every GPU had a reading. */
export type PowerTimeline = { t: number; w: number }[];

/** At most this many points are kept (every k-th): the result view draws no more (src/core/workspace/reports.ts). */
export const MAX_TIMELINE_POINTS = 3000;

export function totalPower(perGpu: [t: number, w: number][][], maxPoints = MAX_TIMELINE_POINTS): PowerTimeline {
  const gpus = perGpu.map((readings) => [...readings].sort((a, b) => a[0] - b[0]));
  if (!gpus.length || gpus.some((g) => !g.length)) return [];
  // Before every GPU has read, a sum would leave some out: start where the last one starts.
  const from = Math.max(...gpus.map((g) => g[0][0]));
  const times = [...new Set(gpus.flatMap((g) => g.map(([t]) => t)))].filter((t) => t >= from).sort((a, b) => a - b);
  const next = gpus.map(() => 0);
  const points = times.map((t) => {
    let w = 0;
    gpus.forEach((g, i) => {
      while (next[i] + 1 < g.length && g[next[i] + 1][0] <= t) next[i]++;
      w += g[next[i]][1];
    });
    return { t: t - from, w };
  });
  const stride = Math.max(1, Math.ceil(points.length / maxPoints));
  return points.filter((_, i) => i % stride === 0);
}

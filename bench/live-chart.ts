/**
 * 4. Live chart: main-thread time of one live-view update in headless Chromium with an hour of
 * 8 GPUs at 10 Hz on screen. The messages are the host's own: a LiveTracker fed the generated run
 * makes the snapshot, then one delta per new sample.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import type { AgentEvent } from '../src/core/protocol/events';
import { LiveTracker } from '../src/core/view/live';
import type { HostToLive } from '../src/core/protocol/webview';
import { agentEvents, DAY_RUN, pointId, type RunShape } from './events';
import { judge, quantile, round, spread, type Figure } from './figure';
import { hotspots, type CpuProfile } from './profile';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '../scripts/chromium';

const ROOT = join(__dirname, '..');
const WEBVIEW = join(ROOT, 'dist', 'webview.js');
/** Those of test/e2e/harness.ts, where TESTING.md explains them. */
const VIEWPORT = { width: 1400, height: 900 };

/** One hour of the day run's traffic, after which the updates arrive. */
const HOUR: RunShape = { ...DAY_RUN, measureS: 3600 + 60, idleBaselineS: 0, points: 4 };
const SNAPSHOT_SAMPLES = 36_000;
const WARMUP_UPDATES = 10;
// Enough that p99 is not just the worst one or two updates.
const UPDATES = 500;
const PROFILED_UPDATES = 20;

/** The snapshot after 36,000 samples, then one delta per following sample (with the requests that ended in its tick). */
function hostMessages(): { snapshot: HostToLive; appends: HostToLive[]; state: { gpus: number; samples: number; throughput: number; latency: number } } {
  const tracker = new LiveTracker({
    runId: 'bench-live',
    title: 'bench: 8 GPUs, 1 h at 10 Hz',
    target: 'gpu-bench',
    points: Array.from({ length: HOUR.points }, (_, p) => ({ id: pointId(p), label: pointId(p), status: 'pending' as const })),
  });
  const events: Iterator<AgentEvent> = agentEvents(HOUR);
  let samples = 0;
  const nextSample = () => {
    for (let r = events.next(); !r.done; r = events.next()) {
      tracker.add(r.value);
      if (r.value.type === 'sample') return ++samples;
    }
    throw new Error('the generated hour ran out of samples');
  };
  while (samples < SNAPSHOT_SAMPLES) nextSample();
  const s = tracker.state;
  const state = { gpus: s.gpus.length, samples: s.samples.length, throughput: s.throughput.length, latency: s.latency.length };
  const snapshot = tracker.snapshot();
  // Structured-clone-like copy: the tracker keeps mutating its state as the hour goes on.
  const frozenSnapshot = JSON.parse(JSON.stringify(snapshot)) as HostToLive;
  const appends: HostToLive[] = [];
  for (let i = 0; i < WARMUP_UPDATES + UPDATES + PROFILED_UPDATES; i++) {
    nextSample();
    appends.push(tracker.delta());
  }
  return { snapshot: frozenSnapshot, appends, state };
}

async function openLiveView(page: Page, dir: string): Promise<void> {
  const html = join(dir, 'live.html');
  writeFileSync(html, `<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8"></head><body data-view="live"><div id="app"></div><script src="file://${WEBVIEW}"></script></body></html>`);
  // A string, not a function: tsx would wrap a function's inner closures in its `__name` helper, which the page lacks.
  await page.addInitScript({ content: 'window.acquireVsCodeApi = () => ({ postMessage() {}, setState() {}, getState() { return undefined; } });' });
  await page.goto(`file://${html}`);
  await page.waitForSelector('#sample-count');
}

/**
 * Each update is dispatched to the page's own 'message' listener the way a postMessage from the host
 * arrives, timed from dispatch until style and layout of the changed DOM are done (offsetHeight forces
 * them). Between updates the page renders a frame, as it would between host messages.
 */
function timeUpdates(page: Page, appends: HostToLive[]): Promise<number[]> {
  return page.evaluate(async (messages) => {
    const times: number[] = [];
    for (const data of messages) {
      await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
      performance.clearMeasures('wattbench:live-render');
      const start = performance.now();
      window.dispatchEvent(new MessageEvent('message', { data }));
      void document.body.offsetHeight;
      const handler = performance.now() - start;
      // The view draws at the next animation frame; its own measure says how long that took.
      await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
      const start2 = performance.now();
      void document.body.offsetHeight;
      const layout = performance.now() - start2;
      const render = performance.getEntriesByName('wattbench:live-render').reduce((sum, e) => sum + e.duration, 0);
      times.push(handler + render + layout);
    }
    return times;
  }, appends);
}

/** Opens a fresh live view, posts the snapshot, then times the updates. */
async function measure(page: Page, dir: string, snapshot: HostToLive, appends: HostToLive[]): Promise<{ snapshotMs: number; times: number[] }> {
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await openLiveView(page, dir);
  const snapshotMs = await page.evaluate((data) => {
    const start = performance.now();
    window.dispatchEvent(new MessageEvent('message', { data }));
    void document.body.offsetHeight;
    return performance.now() - start;
  }, snapshot);
  const shown = Number(await page.textContent('#sample-count'));
  if (shown !== SNAPSHOT_SAMPLES) throw new Error(`the live view shows ${shown} samples after the snapshot, not ${SNAPSHOT_SAMPLES}: ${pageErrors.join('; ')}`);
  await timeUpdates(page, appends.slice(0, WARMUP_UPDATES));
  const times = await timeUpdates(page, appends.slice(WARMUP_UPDATES));
  const after = Number(await page.textContent('#sample-count'));
  if (after !== SNAPSHOT_SAMPLES + appends.length || pageErrors.length) throw new Error(`the live view shows ${after} samples after ${appends.length} updates: ${pageErrors.join('; ')}`);
  return { snapshotMs, times };
}

/** The same messages with no requests: what the power and throughput charts cost without the latency scatter. */
function withoutLatency(message: HostToLive): HostToLive {
  return message.type === 'snapshot' ? { ...message, state: { ...message.state, latency: [] } } : message.type === 'append' ? { ...message, latency: [] } : message;
}

export async function liveChart(): Promise<{ p99: Figure; p50: Figure }> {
  const { snapshot, appends, state } = hostMessages();
  const timed = appends.slice(0, WARMUP_UPDATES + UPDATES);
  const dir = mkdtempSync(join(tmpdir(), 'wb-bench-live-'));
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: VIEWPORT });
    const { snapshotMs, times } = await measure(page, dir, snapshot, timed);
    const figure: Figure = {
      title: 'Live chart update, 8 GPUs × 1 h at 10 Hz',
      value: round(quantile(times, 0.99)),
      unit: 'ms p99',
      target: { on: 'value', op: '<', limit: 16 },
      method:
        `dist/webview.js in headless Chromium (${VIEWPORT.width}×${VIEWPORT.height}, software rendering, flags of test/e2e/harness.ts), body data-view="live", a stub acquireVsCodeApi. ` +
        `A LiveTracker fed the generated run gives the snapshot (${state.samples} samples × ${state.gpus} GPUs, ${state.throughput} throughput buckets, ${state.latency} latency points at ~${HOUR.requestsPerS.toFixed(1)} requests/s), ` +
        `then ${UPDATES} 'append' deltas of one new sample each (plus the requests that ended in that tick) after ${WARMUP_UPDATES} warm-up ones. ` +
        "Each update is timed with performance.now() in the page: the message handler (dispatch of the MessageEvent to a forced style+layout), plus the view's draw at the next animation frame (its own 'wattbench:live-render' performance measure: the chart.js redraws of what changed and the DOM text), plus a forced style+layout after it; " +
        'not the raster and compositing that follow off the main thread, nor the idle wait for the frame. ' +
        'A frame is rendered between updates. Value: p99 (p50: live_chart_p50).',
      details: { update_ms: spread(times), snapshot_ms: round(snapshotMs), on_screen: state },
    };
    if (!judge(figure).met) {
      figure.details!.hotspots = await profileUpdates(page, appends.slice(WARMUP_UPDATES + UPDATES));
      const bare = await measure(await browser.newPage({ viewport: VIEWPORT }), dir, withoutLatency(snapshot), timed.map(withoutLatency));
      figure.details!.without_latency_points = { p50_ms: round(quantile(bare.times, 0.5)), p99_ms: round(quantile(bare.times, 0.99)) };
    }
    const p50: Figure = { title: 'Live chart update, p50', value: round(quantile(times, 0.5)), unit: 'ms p50', method: 'As live_chart_p99, the median of the same updates.' };
    return { p99: figure, p50 };
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The page's CPU profile over further updates, named by the module of dist/webview.js each function came from. */
async function profileUpdates(page: Page, appends: HostToLive[]) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Profiler.enable');
  await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
  await cdp.send('Profiler.start');
  await timeUpdates(page, appends);
  const { profile } = await cdp.send('Profiler.stop');
  return hotspots(profile as unknown as CpuProfile, { [WEBVIEW]: readFileSync(WEBVIEW, 'utf8') }, 10);
}

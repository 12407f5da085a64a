/** The child side of the memory figure (bench/memory.ts): imports only what it measures. */
import { Summarizer } from '../src/core/run/summarize';
import { agentEvents, countEvents, DAY_RUN, scaled } from './events';
import { now } from './figure';

export interface MemoryRun {
  fraction: number;
  events: number;
  gpuReadings: number;
  requests: number;
  /** process.resourceUsage().maxRSS, in MiB. */
  peakRssMiB: number;
  /** Heap the Summarizer still holds after a full GC at the end: what it keeps, as opposed to garbage not yet collected. */
  summarizerHeapMiB: number;
  seconds: number;
}

/**
 * Live heap after full collections (the child runs with --expose-gc): the least of five readings,
 * because a reading now and then keeps ~0.15 MiB V8 has not given back yet (seen as 1.31 or 1.51 MiB
 * for the same deterministic run), and such leftovers only ever add.
 */
function liveHeap(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the memory child needs node --expose-gc');
  let least = Infinity;
  for (let i = 0; i < 5; i++) {
    gc();
    gc();
    least = Math.min(least, process.memoryUsage().heapUsed);
  }
  return least;
}

/** Runs in the child: generates the events one at a time and never keeps them. */
export function summarizeGenerated(fraction: number): MemoryRun {
  const shape = scaled(DAY_RUN, fraction);
  let summarizer: Summarizer | undefined = new Summarizer();
  let events = 0;
  let gpuReadings = 0;
  const start = now();
  for (const event of agentEvents(shape)) {
    summarizer.add(event);
    events++;
    if (event.type === 'sample') gpuReadings += event.gpus.length;
  }
  const { telemetry, total } = summarizer.result();
  const seconds = (now() - start) / 1000;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const expected = countEvents(shape);
  if (telemetry.samples !== expected.samples) throw new Error(`summary counted ${telemetry.samples} samples, the generator made ${expected.samples}`);
  const withSummarizer = liveHeap();
  summarizer = undefined;
  const summarizerHeapMiB = (withSummarizer - liveHeap()) / 2 ** 20;
  return { fraction, events, gpuReadings, requests: total.requests, peakRssMiB, summarizerHeapMiB, seconds };
}

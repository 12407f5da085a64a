/**
 * 2. Summary memory: a day-long 8-GPU 10 Hz run folded into one Summarizer in a child process, whose peak
 * RSS must stay bounded by the run's points, not its events: compared with the same run an eighth as
 * long (same points, same rates), and what the Summarizer itself retains after a full GC.
 */
import { runBundled } from './bundled';
import { DAY_RUN } from './events';
import { round, type Figure } from './figure';
import type { MemoryRun } from './memory-child';

/** Peak RSS of the whole child (the target), and the heap the Summarizer itself keeps (whether it grows with events). */
export async function memory(): Promise<{ peak: Figure; retained: Figure }> {
  // One at a time: each child is alone with the machine's memory and CPU.
  const run = (fraction: number) => runBundled<MemoryRun>('memory-child', 'summarizeGenerated', [fraction], ['--expose-gc']);
  const idle = await run(0);
  const eighth = await run(1 / 8);
  const day = await run(1);
  const describe = (r: MemoryRun) => ({
    hours: round(r.fraction * 24),
    events: r.events,
    gpu_readings: r.gpuReadings,
    requests: r.requests,
    peak_rss_mib: round(r.peakRssMiB),
    summarizer_heap_mib: round(r.summarizerHeapMiB),
    seconds: round(r.seconds),
  });
  const runs = { day: describe(day), eighth: describe(eighth), no_measurement: describe(idle) };
  const generated =
    `A child Node process (the bench bundled like the extension, node --expose-gc) generates a ${DAY_RUN.points}-point run of ${DAY_RUN.gpus} NVML GPUs sampled at ${DAY_RUN.hz} Hz ` +
    `with ~${DAY_RUN.requestsPerS.toFixed(1)} requests/s, each carrying ${DAY_RUN.outputTokens.min}–${DAY_RUN.outputTokens.max} inter-token latencies, one event at a time, ` +
    'and folds each into one Summarizer, then calls result(). ';
  const peak: Figure = {
    title: 'Summary memory, 24 h × 8 GPUs × 10 Hz: peak RSS',
    value: round(day.peakRssMiB),
    unit: 'MiB peak RSS',
    baseline: { value: round(eighth.peakRssMiB), unit: 'MiB peak RSS', what: 'the same run 1/8 as long (3 h, same points and rates)' },
    ratio: round(day.peakRssMiB / eighth.peakRssMiB),
    target: { on: 'value', op: '<', limit: 200 },
    method:
      generated +
      'Value: process.resourceUsage().maxRSS of that child. It includes garbage V8 has not collected yet: a day of events squeezed into half a minute, ' +
      `so it varies with how busy the machine is; summary_heap says what the Summarizer keeps. The child that loads the same code and summarises no measurement peaks at ${round(idle.peakRssMiB)} MiB.`,
    details: runs,
  };
  const retained: Figure = {
    title: 'Summary memory: heap the Summarizer keeps, 24 h against 3 h',
    value: round(day.summarizerHeapMiB),
    unit: 'MiB',
    baseline: { value: round(eighth.summarizerHeapMiB), unit: 'MiB', what: 'the same after a run 1/8 as long' },
    ratio: round(day.summarizerHeapMiB / eighth.summarizerHeapMiB),
    // "Bounded by the number of points, not of events": eight times the events, the same memory (10% for noise).
    target: { on: 'ratio', op: '<', limit: 1.1 },
    method:
      generated +
      'Value: live heap after full collections (the least of five gc()-twice readings) with the Summarizer still referenced, minus the same once it is dropped: what it retains, free of GC timing. ' +
      'Same points and rates in both runs, so any growth is growth with events.',
    details: runs,
  };
  return { peak, retained };
}

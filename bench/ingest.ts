/**
 * 1. Event ingest: NDJSON lines per second through the extension's own path (EventStream splitting and
 * checking a byte stream, Summarizer folding each event in) against a bare JSON.parse of the same lines.
 */
import { EventStream } from '../src/core/run/stream';
import { Summarizer } from '../src/core/run/summarize';
import { agentEvents, DAY_RUN, scaled } from './events';
import { judge, median, now, round, type Figure } from './figure';
import { profileHere } from './profile';

/** Half an hour of the day-long run: long enough that one pass takes a few hundred milliseconds. */
const SHAPE = scaled(DAY_RUN, 1 / 48);
/** ssh2 hands the tail's output over in channel packets of at most 32 KiB. */
const CHUNK_BYTES = 32 * 1024;
const WARMUP_PASSES = 2;
const PASSES = 7;

function parseOnly(lines: string[]): number {
  let seqSum = 0;
  for (const line of lines) seqSum += (JSON.parse(line) as { seq: number }).seq;
  return seqSum;
}

function streamAndSummarize(chunks: Buffer[]): number {
  const summarizer = new Summarizer();
  let problems = 0;
  const stream = new EventStream({ onEvent: (event) => summarizer.add(event), onProblem: () => problems++ });
  for (const chunk of chunks) stream.push(chunk);
  const summary = summarizer.result();
  if (problems) throw new Error(`the generated stream has ${problems} problems: the bench's events are wrong`);
  return summary.telemetry.samples;
}

export async function ingest(): Promise<Figure> {
  const lines = [...agentEvents(SHAPE)].map((event) => JSON.stringify(event));
  const bytes = Buffer.from(lines.join('\n') + '\n');
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += CHUNK_BYTES) chunks.push(bytes.subarray(at, at + CHUNK_BYTES));

  const timed = (work: () => number) => {
    const start = now();
    work();
    return lines.length / ((now() - start) / 1000);
  };
  for (let i = 0; i < WARMUP_PASSES; i++) {
    timed(() => parseOnly(lines));
    timed(() => streamAndSummarize(chunks));
  }
  // Alternate the two so a neighbour's load on the shared cores falls on both alike.
  const parseRates: number[] = [];
  const streamRates: number[] = [];
  for (let i = 0; i < PASSES; i++) {
    parseRates.push(timed(() => parseOnly(lines)));
    streamRates.push(timed(() => streamAndSummarize(chunks)));
  }
  const value = median(streamRates);
  const baseline = median(parseRates);
  const figure: Figure = {
    title: 'Event ingest (EventStream + Summarizer)',
    value: round(value),
    unit: 'lines/s',
    baseline: { value: round(baseline), unit: 'lines/s', what: 'JSON.parse of each line' },
    ratio: round(value / baseline),
    target: { on: 'ratio', op: '>=', limit: 0.5 },
    method:
      `${lines.length} NDJSON lines (${(bytes.length / 2 ** 20).toFixed(1)} MiB) of a generated ${SHAPE.gpus}-GPU NVML run at ${SHAPE.hz} Hz with ~${SHAPE.requestsPerS.toFixed(1)} requests/s ` +
      `(${SHAPE.measureS / 60} minutes of the day run; each request line carries its ${SHAPE.outputTokens.min}–${SHAPE.outputTokens.max} inter-token latencies). ` +
      `Candidate: the bytes pushed in ${CHUNK_BYTES / 1024} KiB chunks into one EventStream whose events go to one Summarizer, then result(). ` +
      `Baseline: JSON.parse of the same lines, already split into strings. Median of ${PASSES} alternating passes after ${WARMUP_PASSES} warm-up passes each.`,
    details: {
      lines: lines.length,
      mib: round(bytes.length / 2 ** 20),
      stream_lines_per_s: streamRates.map((r) => round(r)),
      parse_lines_per_s: parseRates.map((r) => round(r)),
    },
  };
  if (!judge(figure).met) figure.details!.hotspots = await profileHere(() => streamAndSummarize(chunks));
  return figure;
}

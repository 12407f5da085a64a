/**
 * What a reader of a run's figures must know about how they were measured, one line each: tokens counted
 * by chunks, requests the server refused, and a load generator that fell behind or did not reach the load
 * the point asked for. The CLI report and the result view show the same lines.
 */
import type { PointSummary, RunSummary } from '../protocol/summary';

export function summaryNotes(summary: RunSummary): string[] {
  const notes: string[] = [];
  const chunkCounted = summary.points.filter((p) => p.tokens_from === 'chunks' || p.tokens_from === 'mixed').map((p) => p.point);
  if (chunkCounted.length)
    notes.push(`note: the engine sent no usage for ${chunkCounted.join(', ')}: output tokens are counted as streamed chunks (low where a chunk carries several tokens)`);
  for (const p of summary.points) {
    if (p.requests.throttled) notes.push(`warning: ${p.point}: ${p.requests.throttled} request(s) refused by the server (HTTP 429/503)`);
    notes.push(...clientNotes(p));
  }
  return notes;
}

function clientNotes(p: PointSummary): string[] {
  const c = p.client;
  if (!c) return [];
  const notes: string[] = [];
  if (c.behind) {
    const lag = c.lag_ms ? ` (its loop ran late: p99 ${c.lag_ms.p99.toFixed(1)} ms, max ${c.lag_ms.max.toFixed(1)} ms)` : '';
    const effect =
      c.arrival_stamps === 'kernel'
        ? 'arrivals carry the kernel\'s receive time, but its late reads took tokens of a stream two at once: their gaps are the read\'s (0), and a first token read with the second makes a TTFT late'
        : 'TTFT and inter-token figures include its own delay';
    notes.push(`warning: ${p.point}: the load generator fell behind${lag}; ${effect}. Fewer streams per process (workload.client_processes) or a less busy host help.`);
  }
  // Each token read with the one before turns a gap into 0 and doubles the next: ITL p99 is the top 1% of
  // gaps, and on the bench 0.5% of tokens read in twos moved it 2%; past 0.2% the tail may be the reads'
  if (c.shared_reads !== undefined && c.shared_reads > 0.002)
    notes.push(`warning: ${p.point}: ${(c.shared_reads * 100).toFixed(1)}% of tokens were read together with the one before (a late client read, or the engine sending two at once): their gaps are the read's, so the ITL tail may not be the engine's`);
  // each such request's TTFT is its second token's: past 1% of requests the TTFT p99 is the reads'
  if (c.first_shared_reads !== undefined && c.first_shared_reads > 0.01)
    notes.push(`warning: ${p.point}: ${(c.first_shared_reads * 100).toFixed(1)}% of requests had their first token read together with the second (a late client read, or the engine sending both at once): their TTFT is the second token's, so the TTFT tail may not be the engine's`);
  const requests = p.requests.ok + p.requests.errors;
  if (c.concurrency !== undefined && c.inflight_max !== undefined && c.inflight_max < Math.min(c.concurrency, requests))
    notes.push(`warning: ${p.point}: at most ${c.inflight_max} of the ${c.concurrency} requests asked for were in flight at once`);
  // a Poisson count of n arrivals: the achieved rate's own spread is about 1/sqrt(n); three of those is a shortfall
  if (c.request_rate !== undefined && c.request_rate_achieved !== undefined && requests > 1) {
    const shortfall = 1 - c.request_rate_achieved / c.request_rate;
    if (shortfall > 3 / Math.sqrt(requests))
      notes.push(`warning: ${p.point}: requests went out at ${c.request_rate_achieved.toFixed(2)}/s of the ${c.request_rate}/s asked for`);
  }
  return notes;
}

/** How the agent's load generator did over a point's repeats (from its `point` end events): the summary's `client`. */
import type { PointEvent } from '../protocol/events';
import type { ClientSummary } from '../protocol/summary';

export class ClientStats {
  private ends = 0;
  private inflightMax?: number;
  private inflightMeans: number[] = [];
  private rates: number[] = [];
  private lag?: { p50: number; p99: number; max: number };
  private behind = false;
  private stamps = new Set<'kernel' | 'loop' | 'mixed'>();
  private processes?: number;
  private concurrency?: number;
  private requestRate?: number;
  private sharedReads?: number;
  private firstSharedReads?: number;

  add(end: PointEvent): void {
    const seen =
      end.inflight_max !== undefined || end.client_lag_ms !== undefined || end.client_behind !== undefined ||
      end.request_rate_achieved !== undefined || end.arrival_stamps !== undefined || end.load_processes !== undefined ||
      end.concurrency !== undefined || end.request_rate !== undefined || end.arrivals_shared_read !== undefined ||
      end.first_tokens_shared_read !== undefined;
    if (!seen) return; // a command workload, or an agent from before these fields
    this.ends++;
    if (end.inflight_max !== undefined) this.inflightMax = Math.max(this.inflightMax ?? 0, end.inflight_max);
    if (end.inflight_mean !== undefined) this.inflightMeans.push(end.inflight_mean);
    if (end.request_rate_achieved !== undefined) this.rates.push(end.request_rate_achieved);
    const lag = end.client_lag_ms;
    if (lag) {
      // the worst repeat's: a point is as trustworthy as its least faithful repeat
      this.lag = this.lag
        ? { p50: Math.max(this.lag.p50, lag.p50), p99: Math.max(this.lag.p99, lag.p99), max: Math.max(this.lag.max, lag.max) }
        : { ...lag };
    }
    this.behind ||= end.client_behind === true;
    if (end.arrival_stamps) this.stamps.add(end.arrival_stamps);
    if (end.load_processes !== undefined) this.processes = Math.max(this.processes ?? 0, end.load_processes);
    if (end.concurrency !== undefined) this.concurrency = end.concurrency;
    if (end.request_rate !== undefined) this.requestRate = end.request_rate;
    if (end.arrivals_shared_read !== undefined) this.sharedReads = Math.max(this.sharedReads ?? 0, end.arrivals_shared_read);
    if (end.first_tokens_shared_read !== undefined)
      this.firstSharedReads = Math.max(this.firstSharedReads ?? 0, end.first_tokens_shared_read);
  }

  result(): ClientSummary | undefined {
    if (!this.ends) return undefined;
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined);
    const stamps = this.stamps.size > 1 ? 'mixed' : [...this.stamps][0];
    return {
      ...(this.concurrency !== undefined && { concurrency: this.concurrency }),
      ...(this.requestRate !== undefined && { request_rate: this.requestRate }),
      ...(this.inflightMax !== undefined && { inflight_max: this.inflightMax }),
      ...(this.inflightMeans.length && { inflight_mean: mean(this.inflightMeans) }),
      ...(this.rates.length && { request_rate_achieved: mean(this.rates) }),
      ...(this.lag && { lag_ms: this.lag }),
      behind: this.behind,
      ...(stamps && { arrival_stamps: stamps }),
      ...(this.processes !== undefined && { processes: this.processes }),
      ...(this.sharedReads !== undefined && { shared_reads: this.sharedReads }),
      ...(this.firstSharedReads !== undefined && { first_shared_reads: this.firstSharedReads }),
    };
  }
}

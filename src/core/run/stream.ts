/**
 * Splits an agent's byte stream into events, remembering the byte offset of the last complete line
 * so a dropped connection resumes exactly there, and checking `seq` so nothing is lost or doubled.
 */
import { parseEventLine, type AgentEvent } from '../protocol/events';

export interface StreamProblem {
  kind: 'garbled' | 'gap' | 'duplicate';
  message: string;
  /** Byte offset of the line in the event file. */
  offset: number;
}

export interface StreamHandlers {
  onEvent(event: AgentEvent, line: string): void;
  onProblem?(problem: StreamProblem): void;
}

export class EventStream {
  /** Bytes of the event file consumed up to the end of the last complete line. */
  offset: number;
  /** The next `seq` expected. */
  nextSeq: number;
  private partial: Buffer = Buffer.alloc(0);
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });

  constructor(private readonly handlers: StreamHandlers, start: { offset?: number; nextSeq?: number } = {}) {
    this.offset = start.offset ?? 0;
    this.nextSeq = start.nextSeq ?? 0;
  }

  push(chunk: Buffer): void {
    let data = this.partial.length ? Buffer.concat([this.partial, chunk]) : chunk;
    let lineStart = 0;
    for (let newline = data.indexOf(10); newline !== -1; newline = data.indexOf(10, lineStart)) {
      const bytes = data.subarray(lineStart, newline);
      const lineOffset = this.offset;
      this.offset += bytes.length + 1;
      lineStart = newline + 1;
      if (bytes.length === 0 || (bytes.length === 1 && bytes[0] === 13)) continue;
      this.line(this.decoder.decode(bytes).replace(/\r$/, ''), lineOffset);
    }
    data = data.subarray(lineStart);
    this.partial = Buffer.from(data);
  }

  /** Starts again at byte 0 of a file that was truncated or replaced; `nextSeq` still drops what was seen. */
  rewind(): void {
    this.offset = 0;
    this.partial = Buffer.alloc(0);
  }

  /** Forgets a half-received line, as when a connection drops and the tail restarts at `offset`. */
  resetPartial(): void {
    this.partial = Buffer.alloc(0);
  }

  private line(text: string, offset: number): void {
    const parsed = parseEventLine(text);
    if (!parsed.ok) {
      this.handlers.onProblem?.({ kind: 'garbled', message: `line at byte ${offset}: ${parsed.problem}`, offset });
      return;
    }
    const { event } = parsed;
    if (event.seq < this.nextSeq) {
      this.handlers.onProblem?.({ kind: 'duplicate', message: `event ${event.seq} received twice (expected ${this.nextSeq}); ignored`, offset });
      return;
    }
    if (event.seq > this.nextSeq)
      this.handlers.onProblem?.({ kind: 'gap', message: `events ${this.nextSeq}..${event.seq - 1} missing before byte ${offset}`, offset });
    this.nextSeq = event.seq + 1;
    this.handlers.onEvent(event, text);
  }
}

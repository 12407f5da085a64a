/** One interface for running things on a GPU host, whether it is this machine or one over SSH. */
export interface ExecResult {
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  stdin?: string | Buffer;
  timeoutMs?: number;
}

export interface StreamingExec {
  /** Ends with the command's exit, or rejects when the connection drops. */
  done: Promise<ExecResult>;
  /** Stops the command (closes its channel / kills the local process). */
  stop(): void;
}

export interface Transport {
  /** Human name of the host, for messages: "local", "gpu-a100 (10.0.0.5:22)". */
  readonly label: string;
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /** Runs a command and hands its stdout to `onData` as it arrives. */
  stream(command: string, onData: (chunk: Buffer) => void, onStderr?: (chunk: Buffer) => void): StreamingExec;
  close(): void;
}

/** A failure that says what went wrong where, and what to do about it. */
export class TransportError extends Error {
  constructor(
    message: string,
    readonly kind: 'unreachable' | 'auth' | 'host-key-unknown' | 'host-key-changed' | 'config' | 'disconnected' | 'timeout' | 'remote',
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

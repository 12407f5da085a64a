import { spawn } from 'node:child_process';
import type { ExecOptions, ExecResult, StreamingExec, Transport } from './types';
import { TransportError } from './types';

/** Runs commands on this machine with bash, as the SSH transport runs them on a remote one. */
export class LocalTransport implements Transport {
  readonly label = 'local';

  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', ['-c', command], { env: this.env, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timer: NodeJS.Timeout | undefined;
      if (options.timeoutMs)
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new TransportError(`local command timed out after ${options.timeoutMs} ms`, 'timeout'));
        }, options.timeoutMs);
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      child.on('error', (e) => reject(new TransportError(`cannot run bash: ${e.message}`, 'remote')));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal: signal ?? undefined, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.stdin ?? '');
    });
  }

  stream(command: string, onData: (chunk: Buffer) => void, onStderr?: (chunk: Buffer) => void): StreamingExec {
    const child = spawn('bash', ['-c', command], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const err: Buffer[] = [];
    child.stdout.on('data', onData);
    child.stderr.on('data', (c: Buffer) => {
      err.push(c);
      onStderr?.(c);
    });
    const done = new Promise<ExecResult>((resolve, reject) => {
      child.on('error', (e) => reject(new TransportError(`cannot run bash: ${e.message}`, 'remote')));
      child.on('close', (code, signal) => resolve({ code, signal: signal ?? undefined, stdout: '', stderr: Buffer.concat(err).toString() }));
    });
    return { done, stop: () => child.kill('SIGTERM') };
  }

  close(): void {}
}

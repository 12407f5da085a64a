/**
 * The runs this machine started, recorded outside the workspace (the extension's global storage): only
 * these are followed again on their own when a window opens. A workspace can be cloned, copied or
 * committed with `.wattbench/runs/*` in it, and a meta.json that says "running" must never make opening
 * it install an agent, kill a process or start a server on a host.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export class StartedHere {
  constructor(private readonly file: string) {}

  has(runDir: string): boolean {
    return this.read().includes(resolve(runDir));
  }

  add(runDir: string): void {
    const runs = this.read();
    if (!runs.includes(resolve(runDir))) this.write([...runs, resolve(runDir)]);
  }

  remove(runDir: string): void {
    const runs = this.read();
    if (runs.includes(resolve(runDir))) this.write(runs.filter((r) => r !== resolve(runDir)));
  }

  private read(): string[] {
    if (!existsSync(this.file)) return [];
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as { runs?: unknown };
      return Array.isArray(parsed.runs) ? parsed.runs.filter((r): r is string => typeof r === 'string') : [];
    } catch {
      // A broken record follows nothing: the safe side.
      return [];
    }
  }

  private write(runs: string[]): void {
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ v: 1, runs }, null, 2));
    renameSync(tmp, this.file);
  }
}

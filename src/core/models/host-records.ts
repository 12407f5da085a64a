/** What was recorded about each host, kept in one JSON file on this machine (the extension's global storage). */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

interface RecordFile<T> {
  v: 1;
  hosts: Record<string, T>;
}

export class HostRecords<T> {
  constructor(readonly file: string) {}

  get(host: string): T | undefined {
    return this.read().hosts[host];
  }

  all(): T[] {
    return Object.values(this.read().hosts);
  }

  /** Replaces the host's record; written to a temporary file first, so a reader never sees half of it. */
  put(host: string, record: T): T {
    const data = this.read();
    data.hosts[host] = record;
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(data) + '\n');
    renameSync(tmp, this.file);
    return record;
  }

  private read(): RecordFile<T> {
    try {
      const data = JSON.parse(readFileSync(this.file, 'utf8')) as Partial<RecordFile<T>>;
      if (data.v === 1 && data.hosts && typeof data.hosts === 'object') return data as RecordFile<T>;
    } catch {
      // Absent or unreadable: nothing recorded yet.
    }
    return { v: 1, hosts: {} };
  }
}

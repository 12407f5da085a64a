/**
 * Reading another tool's JSON: syntax errors with their line and column, and field access that names the
 * field (as a dotted path) when it is missing or of the wrong type.
 */
import { ImportError } from './types';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** Line and column (1-based) of a character offset in `text`. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, Math.max(0, Math.min(offset, text.length)));
  const line = before.split('\n').length;
  return { line, column: before.length - before.lastIndexOf('\n') };
}

/** JSON.parse, with the place of a syntax error (V8 gives an offset, or none when the text ends early). */
export function parseJson(text: string, file: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (error) {
    const message = (error as Error).message;
    const at = /position (\d+)/.exec(message);
    const offset = at ? Number(at[1]) : /end of JSON input|Unterminated/.test(message) ? text.length : undefined;
    const where = offset === undefined ? '' : (({ line, column }) => ` at line ${line}, column ${column}`)(lineColumn(text, offset));
    const truncated = offset !== undefined && offset >= text.trimEnd().length ? ' (the file ends early: truncated?)' : '';
    throw new ImportError(file, undefined, `not valid JSON${where}${truncated}: ${message.replace(/\s*in JSON at position \d+.*$/, '')}`);
  }
}

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value at a dotted path ("a.b.0.c"), or undefined. */
/** The records of a JSON Lines file, each read as Fields named by its line; a bad line is named, the last one as possibly truncated. */
export function parseJsonLines(text: string, file: string): Fields[] {
  const lines = text.split('\n');
  const last = text.trimEnd().split('\n').length - 1;
  const out: Fields[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let parsed;
    try {
      parsed = JSON.parse(line);
    } catch (error) {
      const truncated = i === last ? ' (the last line: truncated?)' : '';
      throw new ImportError(file, `line ${i + 1}`, `not valid JSON${truncated}: ${(error as Error).message.replace(/\s*in JSON at position \d+.*$/, '')}`);
    }
    out.push(new Fields(file, parsed, `line ${i + 1}`));
  });
  return out;
}

export function at(root: unknown, path: string): unknown {
  let v: unknown = root;
  for (const key of path.split('.')) {
    if (Array.isArray(v)) v = v[Number(key)];
    else if (isObject(v)) v = v[key];
    else return undefined;
  }
  return v;
}

/** Typed access to one file's fields, every failure naming the file and the field. */
export class Fields {
  constructor(
    readonly file: string,
    readonly root: unknown,
    /** Prefix of every path named in a message ("benchmarks.1"). */
    readonly base = '',
  ) {}

  private name(path: string): string {
    return this.base ? `${this.base}.${path}` : path;
  }

  fail(path: string, reason: string): never {
    throw new ImportError(this.file, this.name(path), reason);
  }

  /** A child object's fields, its paths named from this one's. */
  sub(path: string): Fields {
    const v = at(this.root, path);
    if (!isObject(v)) this.fail(path, v === undefined ? 'missing' : `expected an object, found ${kind(v)}`);
    return new Fields(this.file, v, this.name(path));
  }

  has(path: string): boolean {
    const v = at(this.root, path);
    return v !== undefined && v !== null;
  }

  num(path: string): number {
    const v = at(this.root, path);
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    return this.fail(path, v === undefined ? 'missing' : `expected a number, found ${kind(v)}`);
  }

  /** A number, or undefined when absent or null; any other type is an error. */
  optNum(path: string): number | undefined {
    const v = at(this.root, path);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    return this.fail(path, `expected a number, found ${kind(v)}`);
  }

  optStr(path: string): string | undefined {
    const v = at(this.root, path);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string') return v;
    return this.fail(path, `expected a string, found ${kind(v)}`);
  }

  arr(path: string): unknown[] {
    const v = at(this.root, path);
    if (Array.isArray(v)) return v;
    return this.fail(path, v === undefined ? 'missing' : `expected a list, found ${kind(v)}`);
  }

  optArr(path: string): unknown[] | undefined {
    const v = at(this.root, path);
    if (v === undefined || v === null) return undefined;
    return this.arr(path);
  }

  /** A list of numbers (each checked, so a bad element is named by its index). */
  nums(path: string): number[] {
    return this.arr(path).map((_, i) => this.num(`${path}.${i}`));
  }
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'string' ? `the text ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}` : `a ${typeof v}`;
}

/** A `schema_version`-like field newer than this reader knows: refused, since fields may have changed meaning. */
export function checkVersion(f: Fields, path: string, known: number[], value: number | undefined): void {
  if (value === undefined) return;
  if (value > Math.max(...known)) f.fail(path, `schema version ${value} is newer than this Wattbench reads (${known.join(', ')}); update Wattbench`);
}

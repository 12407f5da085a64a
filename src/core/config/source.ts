/**
 * Parses YAML or JSON config text and keeps the source range of every key and value, so each
 * diagnostic and each annotation can point at the exact place in the file.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair } from 'yaml';
import type { ConfigDiagnostic, Position, SourceRange } from './diagnostics';

export type ConfigPath = readonly (string | number)[];

export interface ParsedSource {
  /** The plain value (undefined when the text has no document). */
  value: unknown;
  /** Range of the key (for mapping entries) or of the value at `path`; the nearest existing ancestor otherwise. */
  rangeOf(path: ConfigPath, part?: 'key' | 'value'): SourceRange;
  /** Whether a value exists at exactly this path. */
  has(path: ConfigPath): boolean;
  /** Ranges of every item of a sequence at `path` (empty when there is none). */
  itemRanges(path: ConfigPath): SourceRange[];
  /** `text` written the way the scalar now at `range` is written (keeps its quotes, as JSON needs). */
  asReplacement(range: SourceRange, text: string): string;
  syntaxErrors: ConfigDiagnostic[];
  text: string;
}

export function parseSource(text: string): ParsedSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const lines = text.split('\n');
  const toPosition = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(Math.max(0, Math.min(offset, text.length)));
    // yaml's LineCounter misses newlines inside some error tokens: a position never lies past its line's end.
    const l = Math.min(Math.max(0, line - 1), lines.length - 1);
    return { line: l, col: Math.min(Math.max(0, col - 1), lines[l].length) };
  };
  const toRange = (start: number, end: number): SourceRange => ({ start: toPosition(start), end: toPosition(Math.max(start, end)) });
  const wholeFirstLine = (): SourceRange => toRange(0, Math.max(0, text.indexOf('\n') === -1 ? text.length : text.indexOf('\n')));

  const syntaxErrors: ConfigDiagnostic[] = [...doc.errors, ...doc.warnings].map((e) => ({
    severity: doc.errors.includes(e as never) ? 'error' : 'warning',
    code: `yaml-${e.code.toLowerCase().replace(/_/g, '-')}`,
    message: syntaxMessage(e.code, e.message),
    range: toRange(e.pos[0], e.pos[1]),
    path: [],
  }));

  function walk(path: ConfigPath): { node?: Node; pair?: Pair; depth: number; parent?: Node } {
    let node = doc.contents as Node | null;
    let pair: Pair | undefined;
    let parent: Node | undefined;
    let depth = 0;
    for (const step of path) {
      if (!node) break;
      if (isMap(node)) {
        const found = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(step));
        if (!found) break;
        parent = node;
        pair = found;
        node = (found.value as Node | null) ?? null;
      } else if (isSeq(node) && typeof step === 'number' && step < node.items.length) {
        parent = node;
        pair = undefined;
        node = node.items[step] as Node;
      } else {
        break;
      }
      depth++;
    }
    return { node: node ?? undefined, pair, depth, parent };
  }

  const rangeOfNode = (node: Node | undefined): SourceRange | undefined =>
    node?.range ? toRange(node.range[0], node.range[1]) : undefined;

  let value: unknown;
  try {
    value = doc.contents === null ? undefined : doc.toJS({ maxAliasCount: 100 });
    if (refersToItself(value)) throw new Error('an alias refers to the node that holds it');
  } catch (error) {
    // An unresolved, circular or exploding alias: the document has no value to validate.
    value = undefined;
    syntaxErrors.push({ severity: 'error', code: 'yaml-alias', message: `YAML alias: ${(error as Error).message.split('\n')[0]}. Write the value out instead of the alias.`, range: wholeFirstLine(), path: [] });
  }

  return {
    value,
    text,
    syntaxErrors,
    has(path) {
      return walk(path).depth === path.length;
    },
    rangeOf(path, part = 'value') {
      const { node, pair, depth, parent } = walk(path);
      const complete = depth === path.length;
      if (complete && part === 'key' && pair && isScalar(pair.key)) return rangeOfNode(pair.key as Node)!;
      if (complete && node) return rangeOfNode(node) ?? wholeFirstLine();
      // A key with an empty value (`model:`) has a pair but no value node: point at the key.
      if (complete && pair && isScalar(pair.key)) return rangeOfNode(pair.key as Node)!;
      if (!complete && pair && isScalar(pair.key)) return rangeOfNode(pair.key as Node)!;
      return rangeOfNode(node ?? parent) ?? wholeFirstLine();
    },
    asReplacement(range, replacement) {
      const offset = lineCounter.lineStarts[range.start.line] + range.start.col;
      const quote = text[offset];
      return quote === '"' || quote === "'" ? `${quote}${replacement}${quote}` : replacement;
    },
    itemRanges(path) {
      const { node, depth } = walk(path);
      if (depth !== path.length || !isSeq(node)) return [];
      return node.items.map((item) => rangeOfNode(item as Node) ?? wholeFirstLine());
    },
  };
}

function syntaxMessage(code: string, message: string): string {
  const first = message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
  const hints: Record<string, string> = {
    DUPLICATE_KEY: 'remove or rename one of them',
    TAB_AS_INDENT: 'indent with spaces, not tabs',
    MISSING_CHAR: 'close the bracket or quote',
  };
  if (/end with a [}\]]/.test(first)) return `YAML syntax: ${first} (is a bracket opened above left unclosed?)`;
  return hints[code] ? `${first} (${hints[code]})` : `YAML syntax: ${first}`;
}

function refersToItself(value: unknown, seen = new Set<unknown>()): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (seen.has(value)) return true;
  seen.add(value);
  const found = Object.values(value).some((v) => refersToItself(v, seen));
  seen.delete(value);
  return found;
}

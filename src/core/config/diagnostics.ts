/** Positions are 0-based (as editors count); `formatDiagnostic` prints them 1-based as compilers do. */
export interface Position {
  line: number;
  col: number;
}

export interface SourceRange {
  start: Position;
  end: Position;
}

export type Severity = 'error' | 'warning' | 'info';

/** A text edit that fixes the problem, offered as a Quick Fix in the editor. */
export interface ConfigFix {
  title: string;
  range: SourceRange;
  newText: string;
}

export interface ConfigDiagnostic {
  severity: Severity;
  /** Stable identifier of the kind of problem, e.g. `unknown-key`. */
  code: string;
  message: string;
  range: SourceRange;
  /** Where in the document the problem is, e.g. ['workload', 'concurrency']. */
  path: (string | number)[];
  fix?: ConfigFix;
}

export function formatDiagnostic(file: string, d: ConfigDiagnostic): string {
  return `${file}:${d.range.start.line + 1}:${d.range.start.col + 1}: ${d.severity}: ${d.message}`;
}

export function hasErrors(diagnostics: readonly ConfigDiagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

export function pathToString(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (text, step) => (typeof step === 'number' ? `${text}[${step}]` : text ? `${text}.${step}` : step),
    '',
  );
}

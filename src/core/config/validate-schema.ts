/**
 * Checks a parsed config against the JSON Schema built in schema.ts and words each problem for a
 * person: where it is, what is wrong, and how to fix it (allowed values, did-you-mean, units).
 * Only the keywords our schema uses are interpreted; that keeps the messages ours.
 */
import type { ConfigDiagnostic } from './diagnostics';
import { pathToString } from './diagnostics';
import type { ConfigPath, ParsedSource } from './source';
import { didYouMean } from '../util/suggest';
import { normalizeUnitText, parseDuration, parsePower } from './units';

export interface JsonSchema {
  type?: string;
  anyOf?: JsonSchema[];
  const?: unknown;
  properties?: Record<string, JsonSchema>;
  patternProperties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  minProperties?: number;
  minLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  pattern?: string;
  description?: string;
  errorMessage?: string;
  /** Our keyword: the value is a quantity with units, so a misspelt unit can be fixed. */
  'x-unit'?: 'duration' | 'power';
}

/** Examples shown when a required key is missing. */
const REQUIRED_EXAMPLES: Record<string, string> = {
  name: 'name: llama-8b-h100',
  model: 'model: { id: meta-llama/Llama-3.1-8B-Instruct }',
  id: 'id: meta-llama/Llama-3.1-8B-Instruct',
  mean: 'mean: 256',
  login: 'login: user@login-node',
};

export function validateAgainstSchema(schema: JsonSchema, source: ParsedSource): ConfigDiagnostic[] {
  const out: ConfigDiagnostic[] = [];
  check(schema, source.value, [], source, out);
  return out;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Number.isInteger(value)) return 'integer';
  return typeof value;
}

function typeMatches(expected: string | undefined, value: unknown): boolean {
  if (!expected) return true;
  const actual = jsonType(value);
  if (expected === 'number') return actual === 'number' || actual === 'integer';
  return actual === expected;
}

function describe(schema: JsonSchema): string {
  if (schema.errorMessage) return schema.errorMessage.replace(/^Expected /, '').replace(/\.$/, '');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.anyOf) return schema.anyOf.map(describe).join(' or ');
  switch (schema.type) {
    case 'integer':
      return schema.minimum !== undefined ? `a whole number ≥ ${schema.minimum}` : 'a whole number';
    case 'number':
      return schema.exclusiveMinimum !== undefined ? `a number > ${schema.exclusiveMinimum}` : 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping';
    default:
      return 'a value';
  }
}

function shown(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

function where(path: ConfigPath): string {
  return path.length ? `\`${pathToString(path)}\`` : 'The config';
}

function check(schema: JsonSchema, value: unknown, path: ConfigPath, source: ParsedSource, out: ConfigDiagnostic[]): void {
  const report = (code: string, message: string, part: 'key' | 'value' = 'value', fix?: ConfigDiagnostic['fix']) =>
    out.push({ severity: 'error', code, message, range: source.rangeOf(path, part), path: [...path], fix });

  if (schema.anyOf) {
    checkUnion(schema, value, path, source, out);
    return;
  }
  if (schema.const !== undefined) {
    if (value !== schema.const) report('invalid-value', `${where(path)} must be ${shown(schema.const)}, got ${shown(value)}.`);
    return;
  }
  if (!typeMatches(schema.type, value)) {
    report('wrong-type', `${where(path)} must be ${describe(schema)}, got ${shown(value)}.`);
    return;
  }
  switch (schema.type) {
    case 'object':
      return checkObject(schema, value as Record<string, unknown>, path, source, out, report);
    case 'array': {
      const items = value as unknown[];
      if (schema.minItems !== undefined && items.length < schema.minItems)
        report('too-few-items', `${where(path)} needs at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}.`);
      if (schema.items) items.forEach((item, i) => check(schema.items!, item, [...path, i], source, out));
      return;
    }
    case 'string': {
      const text = value as string;
      if (schema.minLength !== undefined && text.length < schema.minLength) report('empty', `${where(path)} must not be empty.`);
      else if (schema.pattern && !new RegExp(schema.pattern).test(text))
        report('bad-format', `${where(path)} must be ${describe(!schema.errorMessage && schema.description ? { ...schema, errorMessage: schema.description } : schema)}, got ${shown(text)}.`);
      return;
    }
    case 'number':
    case 'integer': {
      const n = value as number;
      // NaN and ±Infinity (.nan, .inf, 1e400) pass every comparison below: refuse them first.
      if (!Number.isFinite(n)) report('out-of-range', `${where(path)} must be a finite number, got ${n}.`);
      else if (schema.minimum !== undefined && n < schema.minimum) report('out-of-range', `${where(path)} must be at least ${schema.minimum}, got ${n}.`);
      else if (schema.exclusiveMinimum !== undefined && n <= schema.exclusiveMinimum)
        report('out-of-range', `${where(path)} must be greater than ${schema.exclusiveMinimum}, got ${n}.`);
      else if (schema.maximum !== undefined && n > schema.maximum) report('out-of-range', `${where(path)} must be at most ${schema.maximum}, got ${n}.`);
      return;
    }
  }
}

function checkObject(
  schema: JsonSchema,
  value: Record<string, unknown>,
  path: ConfigPath,
  source: ParsedSource,
  out: ConfigDiagnostic[],
  report: (code: string, message: string, part?: 'key' | 'value', fix?: ConfigDiagnostic['fix']) => void,
): void {
  const properties = schema.properties ?? {};
  const known = Object.keys(properties).filter((k) => k !== '$schema');
  for (const key of schema.required ?? []) {
    if (!(key in value)) {
      const example = REQUIRED_EXAMPLES[key];
      report('missing-key', `${where(path)} is missing the required key \`${key}\`${example ? `, e.g. \`${example}\`` : ''}.`, path.length ? 'key' : 'value');
    }
  }
  if (schema.minProperties !== undefined && Object.keys(value).length < schema.minProperties)
    report('empty', `${where(path)} must set at least one of: ${known.join(', ')}.`);
  for (const [key, child] of Object.entries(value)) {
    const childPath = [...path, key];
    const childSchema = properties[key] ?? matchPattern(schema.patternProperties, key);
    if (childSchema) {
      check(childSchema, child, childPath, source, out);
      continue;
    }
    if (schema.additionalProperties === false) {
      const suggestion = didYouMean(key, known);
      const keyRange = source.rangeOf(childPath, 'key');
      const inside = path.length ? ` in \`${pathToString(path)}\`` : '';
      out.push({
        severity: 'error',
        code: 'unknown-key',
        message: suggestion
          ? `Unknown key \`${key}\`${inside}. Did you mean \`${suggestion}\`?`
          : `Unknown key \`${key}\`${inside}. Allowed keys: ${known.join(', ')}.`,
        range: keyRange,
        path: childPath,
        fix: suggestion ? { title: `Change \`${key}\` to \`${suggestion}\``, range: keyRange, newText: source.asReplacement(keyRange, suggestion) } : undefined,
      });
    }
  }
}

function unitFix(schema: JsonSchema, value: unknown): string | undefined {
  if (typeof value !== 'string' || !schema['x-unit']) return undefined;
  const candidate = normalizeUnitText(value);
  if (!candidate) return undefined;
  const parses = schema['x-unit'] === 'duration' ? parseDuration(candidate) : parsePower(candidate);
  return parses === undefined ? undefined : candidate;
}

function matchPattern(patterns: Record<string, JsonSchema> | undefined, key: string): JsonSchema | undefined {
  if (!patterns) return undefined;
  for (const [pattern, schema] of Object.entries(patterns)) if (new RegExp(pattern).test(key)) return schema;
  return undefined;
}

function checkUnion(
  schema: JsonSchema,
  value: unknown,
  path: ConfigPath,
  source: ParsedSource,
  out: ConfigDiagnostic[],
): void {
  const branches = schema.anyOf!;
  const attempts = branches.map((branch) => {
    const errors: ConfigDiagnostic[] = [];
    check(branch, value, path, source, errors);
    return { branch, errors };
  });
  if (attempts.some((a) => a.errors.length === 0)) return;

  if (branches.every((b) => b.const !== undefined)) {
    const allowed = branches.map((b) => String(b.const));
    const suggestion = typeof value === 'string' ? didYouMean(value, allowed) : undefined;
    const range = source.rangeOf(path);
    out.push({
      severity: 'error',
      code: 'invalid-value',
      message: `${where(path)} must be one of ${allowed.join(', ')}; got ${shown(value)}.${suggestion ? ` Did you mean \`${suggestion}\`?` : ''}`,
      range,
      path: [...path],
      fix: suggestion ? { title: `Change to \`${suggestion}\``, range, newText: source.asReplacement(range, suggestion) } : undefined,
    });
    return;
  }
  // When exactly one branch has the value's shape (a mapping, a list), its errors are the useful ones.
  const sameShape = attempts.filter((a) => a.branch.type && typeMatches(a.branch.type, value) && ['object', 'array'].includes(a.branch.type));
  if (sameShape.length === 1) {
    out.push(...sameShape[0].errors);
    return;
  }
  const fixed = unitFix(schema, value);
  const range = source.rangeOf(path);
  out.push({
    severity: 'error',
    code: 'wrong-type',
    message: `${where(path)}: ${schema.errorMessage ?? `expected ${describe(schema)}.`} Got ${shown(value)}.${fixed ? ` Did you mean \`${fixed}\`?` : ''}`,
    range,
    path: [...path],
    fix: fixed ? { title: `Change to \`${fixed}\``, range, newText: source.asReplacement(range, fixed) } : undefined,
  });
}

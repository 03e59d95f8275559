/**
 * Errors and notices that may carry a sensitive value. PostgreSQL echoes values in data
 * exceptions (`invalid input syntax for type integer: "alice@example.com"`), integrity
 * violations (`Key (email)=(alice@example.com) already exists.`, `Failing row contains (...)`),
 * and anything a query builds from a column (`current_setting(email)`, `email::regclass`).
 * For a statement that touches a sensitive column, the quoted values of every error and notice
 * (message, detail, hint, context, internal query) are replaced by `[redacted]`, as are the
 * values of an integrity violation on a table with a sensitive column; every error and notice
 * is also scanned by the content detectors. Unquoted values (a PL/pgSQL `RAISE` of a value)
 * are left to the detectors.
 */
import { maskDetected, type DetectorKind, type MaskStrategy } from '@sluice/core';

const REDACTED = '[redacted]';
const FIELD_MESSAGE = 0x4d;
const FIELD_DETAIL = 0x44;
const FIELD_HINT = 0x48;
const FIELD_CONTEXT = 0x57;
const FIELD_INTERNAL_QUERY = 0x71;
const FIELD_CODE = 0x43;
const FIELD_SCHEMA = 0x73;
const FIELD_TABLE = 0x74;

export interface ErrorMaskContext {
  /** The statement that failed reads or writes a sensitive column. */
  readonly sensitiveStatement: boolean;
  /** True when the named table has a sensitive column. */
  readonly sensitiveTable: (schema: string | undefined, table: string) => boolean;
  readonly detectors: ReadonlySet<DetectorKind>;
  readonly strategy: MaskStrategy;
  readonly hashKey: Buffer;
}

function readFields(frame: Buffer): [number, string][] {
  const fields: [number, string][] = [];
  let at = 5;
  while (at < frame.length) {
    const f = frame[at]!;
    if (f === 0) break;
    let nul = frame.indexOf(0, at + 1);
    // A message cut short (the gateway keeps the first 64 KiB of one) ends with its last field.
    if (nul === -1) nul = frame.length;
    fields.push([f, frame.toString('utf8', at + 1, nul)]);
    at = nul + 1;
  }
  return fields;
}

function encodeFields(type: number, fields: readonly [number, string][]): Buffer {
  const parts: Buffer[] = [Buffer.alloc(5)];
  for (const [f, v] of fields) parts.push(Buffer.of(f), Buffer.from(v.replace(/\0/g, ''), 'utf8'), Buffer.of(0));
  parts.push(Buffer.of(0));
  const out = Buffer.concat(parts);
  out[0] = type;
  out.writeInt32BE(out.length - 1, 1);
  return out;
}

/** Replaces values in a detail: `(cols)=(values)` and `Failing row contains (...)`, and quoted values. */
function redactDetail(detail: string): string {
  return detail
    .replace(/\)=\(.*\)/s, `)=(${REDACTED})`)
    .replace(/(Failing row contains )\(.*\)/s, `$1(${REDACTED})`)
    .replace(/"(?:[^"]|"")*"/g, `"${REDACTED}"`);
}

/** Replaces quoted values in a message (`...: "value"`) and literals in SQL text (`'value'`). */
function redactMessage(message: string): string {
  return message.replace(/"(?:[^"]|"")*"/g, `"${REDACTED}"`).replace(/'(?:[^']|'')*'/g, `'${REDACTED}'`);
}

/**
 * The error or notice (type byte included) with sensitive values removed, or undefined when
 * nothing in it had to change. `truncated`: the frame is the first part of a longer message.
 */
export function maskErrorFrame(frame: Buffer, context: ErrorMaskContext, truncated = false): Buffer | undefined {
  const fields = readFields(frame);
  const code = fields.find(([f]) => f === FIELD_CODE)?.[1] ?? '';
  const schema = fields.find(([f]) => f === FIELD_SCHEMA)?.[1];
  const table = fields.find(([f]) => f === FIELD_TABLE)?.[1];
  // A statement that touches a sensitive column may have any error echo a value (a failed
  // cast, a setting or relation name made from a column): its quoted values are redacted.
  // Integrity violations name their table: redacted when that table has a sensitive column.
  const integrity = code.startsWith('23');
  const redact = context.sensitiveStatement || (integrity && table !== undefined && context.sensitiveTable(schema, table));
  let changed = truncated;
  for (const field of fields) {
    const [f, v] = field;
    if (f !== FIELD_MESSAGE && f !== FIELD_DETAIL && f !== FIELD_HINT && f !== FIELD_CONTEXT && f !== FIELD_INTERNAL_QUERY) continue;
    let next = v;
    if (redact && f === FIELD_DETAIL) next = redactDetail(next);
    else if (redact) next = redactMessage(next);
    if (context.detectors.size > 0) {
      const found = maskDetected(next, context.detectors, context.strategy, context.hashKey);
      if (found !== undefined) next = found.text;
    }
    if (next !== v) {
      field[1] = next;
      changed = true;
    }
  }
  return changed ? encodeFields(frame[0]!, fields) : undefined;
}

import { ByteReader } from '@sluice/wire';

/**
 * Decoders for the frontend messages the gateway needs to read. Each takes a whole frame
 * (type byte included) and reads only the fields it needs. They throw RangeError on
 * malformed input; the session turns that into a protocol violation.
 * https://www.postgresql.org/docs/current/protocol-message-formats.html
 */
const reader = new ByteReader();

/** Query: 'Q' | Int32 len | String query. */
export function decodeQuery(frame: Buffer): string {
  return reader.reset(frame, 5).cstring();
}

/** PasswordMessage: 'p' | Int32 len | String password. */
export function decodePassword(frame: Buffer): string {
  return reader.reset(frame, 5).cstring();
}

/** Parse: 'P' | Int32 len | String name | String query | Int16 n | Int32 oid[n]. */
export function decodeParse(frame: Buffer): { name: string; text: string } {
  const r = reader.reset(frame, 5);
  const name = r.cstring();
  const text = r.cstring();
  return { name, text };
}

/** Bind: 'B' | Int32 len | String portal | String statement | ... (rest not read here). */
export function decodeBindNames(frame: Buffer): { portal: string; statement: string } {
  const r = reader.reset(frame, 5);
  const portal = r.cstring();
  const statement = r.cstring();
  return { portal, statement };
}

/**
 * Reads a list of values as PostgreSQL sends them in Bind and FunctionCall (Int16 nf |
 * Int16 f[nf] | Int16 n | (Int32 len | bytes)[n]): text-format values as they are, binary ones
 * as `\x` + hex, SQL NULL as null.
 */
function readValues(r: ByteReader): (string | null)[] {
  const nf = r.int16();
  const formats: number[] = [];
  for (let i = 0; i < nf; i++) formats.push(r.int16());
  const n = r.int16();
  const values: (string | null)[] = [];
  for (let i = 0; i < n; i++) {
    const len = r.int32();
    if (len === -1) {
      values.push(null);
      continue;
    }
    if (len < 0) throw new RangeError(`invalid value length ${len}`);
    const bytes = r.bytes(len);
    const format = nf === 0 ? 0 : nf === 1 ? formats[0]! : (formats[i] ?? 0);
    values.push(format === 0 ? bytes.toString('utf8') : `\\x${bytes.toString('hex')}`);
  }
  return values;
}

/**
 * The parameter values of a Bind, read only for statements held for review (what the approver
 * sees and the approval is bound to).
 * Bind: 'B' | len | portal | statement | values (see readValues) | ...
 */
export function decodeBindParameters(frame: Buffer): (string | null)[] {
  const r = reader.reset(frame, 5);
  r.cstring();
  r.cstring();
  return readValues(r);
}

/** FunctionCall: 'F' | len | Int32 oid | values (see readValues) | Int16 result format. */
export function decodeFunctionCall(frame: Buffer): { oid: number; args: (string | null)[] } {
  const r = reader.reset(frame, 5);
  const oid = r.uint32();
  return { oid, args: readValues(r) };
}

/** Execute: 'E' | Int32 len | String portal | Int32 maxRows. */
export function decodeExecute(frame: Buffer): { portal: string; maxRows: number } {
  const r = reader.reset(frame, 5);
  const portal = r.cstring();
  const maxRows = r.int32();
  return { portal, maxRows };
}

/** Close: 'C' | Int32 len | Byte1 'S'|'P' | String name. */
export function decodeClose(frame: Buffer): { kind: 'S' | 'P'; name: string } {
  const r = reader.reset(frame, 5);
  const kind = r.uint8();
  if (kind !== 0x53 && kind !== 0x50) throw new RangeError(`Close names neither a statement nor a portal`);
  return { kind: kind === 0x53 ? 'S' : 'P', name: r.cstring() };
}

/** CommandComplete tag ('C' | Int32 len | String tag), from a backend frame. */
export function decodeCommandTag(frame: Buffer): string {
  return reader.reset(frame, 5).cstring();
}

/**
 * Rows affected or returned, from a command tag: "SELECT 5", "INSERT 0 3", "UPDATE 2",
 * "COPY 10", "FETCH 4" → the last number. Tags without a count give undefined.
 */
export function rowsFromTag(tag: string): number | undefined {
  const sp = tag.lastIndexOf(' ');
  if (sp === -1) return undefined;
  const n = Number(tag.slice(sp + 1));
  return Number.isInteger(n) ? n : undefined;
}

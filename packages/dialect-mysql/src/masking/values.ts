/**
 * Type-valid masked values for MySQL / MariaDB result columns, in the text protocol (every
 * value is text the client converts by the column's type) and the binary protocol
 * (COM_STMT_EXECUTE results: integers as fixed-width little-endian bytes, strings, decimals
 * and JSON length-encoded, dates and times in their own layout).
 *
 * What each type gets (a client must be able to read the value as the column definition
 * announced it):
 * - string types (VARCHAR, CHAR, TEXT and BLOB families, ENUM, SET): masked text, cut to the
 *   column's declared length in characters; binary-charset strings (VARBINARY, BLOB) get the
 *   same masked text as bytes;
 * - JSON (MySQL's own type): the masked text as a JSON string literal;
 * - integer types (TINYINT, SMALLINT, MEDIUMINT, INT, BIGINT, YEAR) under `hash`: a keyed,
 *   deterministic number of the same width and signedness (joins and GROUP BY still line up);
 *   under the other strategies NULL;
 * - every other type (DECIMAL, FLOAT, DOUBLE, dates and times, BIT, GEOMETRY): NULL.
 * `null` gives NULL for every type.
 */
import { TextDecoder } from 'node:util';
import { hashToInt, maskDetected, maskText, maskTextBytes, REDACTED_MARKER, type DetectorKind, type MaskStrategy, type MaskTextOptions } from '@sluice/core';
import { Collation, ColumnFlag, ColumnType } from '../protocol/constants.js';
import type { ColumnDefinition41 } from '../protocol/messages.js';

/** How the bytes of a text value are read and written back. */
export type TextCodec =
  /** utf8mb3 / utf8mb4: masked as UTF-8 bytes (ASCII without decoding). */
  | 'utf8'
  /** One byte per character (latin1, ascii, cp1251..., and binary strings): read byte for byte. */
  | 'bytes'
  /**
   * A multi-byte character set other than UTF-8 (sjis, gbk, big5, euckr...): ASCII values are
   * masked as they are; in others a character cannot be cut out without knowing the encoding,
   * so nothing of them is kept.
   */
  | 'multibyte';

export type ValueFamily = 'text' | 'json' | 'int' | 'other';

/** How a column's values are masked, fixed once per result. */
export interface ValueShape {
  readonly family: ValueFamily;
  readonly type: number;
  readonly codec: TextCodec;
  /** For `multibyte`: the TextDecoder label of the character set, when it has one. */
  readonly decoder?: string | undefined;
  /** Longest masked text, in characters (from the declared column length); absent when unlimited. */
  readonly maxLength?: number | undefined;
  readonly unsigned: boolean;
  readonly zerofill: boolean;
  readonly columnLength: number;
  /** Values come in the binary protocol. */
  readonly binary: boolean;
}

/** A character set as the server describes it. */
export interface CharsetInfo {
  readonly charset: string;
  /** Most bytes one character takes. */
  readonly maxLen: number;
}

/**
 * Collations of the character sets a connection's results come in, for when the server's list
 * is not at hand (the catalog loads the server's own).
 */
const DEFAULT_COLLATIONS = (() => {
  const m = new Map<number, CharsetInfo>();
  const utf8mb3 = { charset: 'utf8mb3', maxLen: 3 };
  const utf8mb4 = { charset: 'utf8mb4', maxLen: 4 };
  const latin1 = { charset: 'latin1', maxLen: 1 };
  for (const id of [33, 76, 83, 223]) m.set(id, utf8mb3);
  for (let id = 192; id <= 215; id++) m.set(id, utf8mb3);
  for (const id of [45, 46]) m.set(id, utf8mb4);
  for (let id = 224; id <= 247; id++) m.set(id, utf8mb4);
  for (let id = 255; id <= 323; id++) m.set(id, utf8mb4);
  for (const id of [5, 8, 15, 31, 47, 48, 49, 94]) m.set(id, latin1);
  for (const id of [11, 65]) m.set(id, { charset: 'ascii', maxLen: 1 });
  m.set(Collation.BINARY, { charset: 'binary', maxLen: 1 });
  return m;
})();

/** The built-in idea of a collation id (the catalog knows the server's). */
export function defaultCharsetOf(collation: number): CharsetInfo | undefined {
  return DEFAULT_COLLATIONS.get(collation);
}

/** TextDecoder labels of the multi-byte character sets that have one. */
const DECODERS: Readonly<Record<string, string>> = {
  sjis: 'shift_jis',
  cp932: 'shift_jis',
  ujis: 'euc-jp',
  eucjpms: 'euc-jp',
  gbk: 'gbk',
  gb2312: 'gbk',
  gb18030: 'gb18030',
  big5: 'big5',
  euckr: 'euc-kr',
};

function codecOf(info: CharsetInfo): { codec: TextCodec; decoder?: string } {
  const cs = info.charset.toLowerCase();
  if (cs === 'utf8mb4' || cs === 'utf8mb3' || cs === 'utf8') return { codec: 'utf8' };
  if (info.maxLen <= 1) return { codec: 'bytes' };
  const decoder = DECODERS[cs];
  return decoder === undefined ? { codec: 'multibyte' } : { codec: 'multibyte', decoder };
}

function familyOf(type: number): ValueFamily {
  switch (type) {
    case ColumnType.VARCHAR:
    case ColumnType.VAR_STRING:
    case ColumnType.STRING:
    case ColumnType.TINY_BLOB:
    case ColumnType.MEDIUM_BLOB:
    case ColumnType.LONG_BLOB:
    case ColumnType.BLOB:
    case ColumnType.ENUM:
    case ColumnType.SET:
      return 'text';
    case ColumnType.JSON:
      return 'json';
    case ColumnType.TINY:
    case ColumnType.SHORT:
    case ColumnType.INT24:
    case ColumnType.LONG:
    case ColumnType.LONGLONG:
    case ColumnType.YEAR:
      return 'int';
    default:
      return 'other';
  }
}

/** Lengths from this one on mean "as long as it gets" (MEDIUMTEXT, LONGTEXT, JSON). */
const UNLIMITED_LENGTH = 0xffffff;

/**
 * The shape of a result column. `charsetOf` describes a collation id (the catalog's, which is
 * the server's own list); an unknown one is taken as utf8mb4, which every result charset the
 * gateway sets up is.
 */
export function shapeOf(column: ColumnDefinition41, binary: boolean, charsetOf: (collation: number) => CharsetInfo | undefined = defaultCharsetOf): ValueShape {
  const info = charsetOf(column.charset) ?? defaultCharsetOf(column.charset) ?? { charset: 'utf8mb4', maxLen: 4 };
  const { codec, decoder } = codecOf(info);
  const family = familyOf(column.type);
  let maxLength: number | undefined;
  if (family === 'text' && column.columnLength > 0 && column.columnLength < UNLIMITED_LENGTH) {
    maxLength = Math.max(1, Math.floor(column.columnLength / Math.max(1, info.maxLen)));
  }
  return {
    family,
    type: column.type,
    codec,
    decoder,
    maxLength,
    unsigned: (column.flags & ColumnFlag.UNSIGNED) !== 0,
    zerofill: (column.flags & ColumnFlag.ZEROFILL) !== 0,
    columnLength: column.columnLength,
    binary,
  };
}

/** The options of the text masker for a column (computed once per plan, not per value). */
export function textOptionsFor(shape: ValueShape, hashKey: Buffer, kind?: DetectorKind): MaskTextOptions {
  return { hashKey, ...(shape.maxLength !== undefined ? { maxLength: shape.maxLength } : {}), ...(kind ? { kind } : {}) };
}

function isAscii(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) return false;
  return true;
}

function latin1Of(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
}

/** Masked text of a string column, as bytes of its character set; null for NULL. */
function maskTextValue(value: Uint8Array, shape: ValueShape, strategy: MaskStrategy, options: MaskTextOptions): Buffer | null {
  if (shape.codec === 'utf8' || isAscii(value)) return maskTextBytes(value, strategy, options);
  if (shape.codec === 'bytes') {
    // Each byte is one character: read as latin1, the masked text (characters of the value,
    // `*`, digits, the marker) goes back to the same bytes.
    const masked = maskText(latin1Of(value), strategy, options);
    return masked === null ? null : Buffer.from(masked, 'latin1');
  }
  // A multi-byte character set: what is kept must not split a character, so `partial` keeps
  // nothing; `hash` (ASCII output) is taken over the bytes so that equal values stay equal.
  const masked = maskText(latin1Of(value), strategy === 'partial' ? 'redact' : strategy, options);
  return masked === null ? null : Buffer.from(masked, 'latin1');
}

const INT_BITS: Readonly<Record<number, number>> = {
  [ColumnType.TINY]: 8,
  [ColumnType.SHORT]: 16,
  [ColumnType.INT24]: 24,
  [ColumnType.LONG]: 32,
  [ColumnType.LONGLONG]: 64,
};

/** Bytes of a binary-protocol integer of this type (MEDIUMINT travels in 4). */
function intWidth(type: number): number {
  switch (type) {
    case ColumnType.TINY:
      return 1;
    case ColumnType.SHORT:
    case ColumnType.YEAR:
      return 2;
    case ColumnType.LONGLONG:
      return 8;
    default:
      return 4;
  }
}

/** An integer value as decimal text (the text both protocols hash), or undefined when it is not one. */
function intText(value: Uint8Array, shape: ValueShape): string | undefined {
  const b = Buffer.from(value.buffer, value.byteOffset, value.length);
  if (!shape.binary) {
    const text = b.toString('latin1');
    if (!/^-?\d+$/.test(text)) return undefined;
    // ZEROFILL pads the text; the number is what is hashed, so both protocols agree.
    return BigInt(text).toString();
  }
  if (b.length !== intWidth(shape.type)) return undefined;
  const u = shape.unsigned || shape.type === ColumnType.YEAR;
  switch (b.length) {
    case 1:
      return String(u ? b.readUInt8(0) : b.readInt8(0));
    case 2:
      return String(u ? b.readUInt16LE(0) : b.readInt16LE(0));
    case 4:
      return String(u ? b.readUInt32LE(0) : b.readInt32LE(0));
    default:
      return (u ? b.readBigUInt64LE(0) : b.readBigInt64LE(0)).toString();
  }
}

/**
 * The keyed integer for a value under `hash`: the same width and signedness as the column,
 * so that the client reads it as the type says (a YEAR stays a valid year).
 */
export function hashedInt(text: string, shape: ValueShape, hashKey: Buffer): Buffer {
  const h = hashToInt(hashKey, text, 64);
  let n: bigint;
  if (shape.type === ColumnType.YEAR) n = 1901n + (BigInt.asUintN(64, h) % 255n);
  else {
    const bits = INT_BITS[shape.type] ?? 32;
    n = shape.unsigned ? BigInt.asUintN(bits, h) : BigInt.asIntN(bits, h);
  }
  if (!shape.binary) {
    let s = n.toString();
    if (shape.zerofill && s.length < shape.columnLength) s = s.padStart(shape.columnLength, '0');
    return Buffer.from(s, 'latin1');
  }
  const width = intWidth(shape.type);
  const out = Buffer.allocUnsafe(width);
  const u = shape.unsigned || shape.type === ColumnType.YEAR;
  switch (width) {
    case 1:
      if (u) out.writeUInt8(Number(n));
      else out.writeInt8(Number(n));
      break;
    case 2:
      if (u) out.writeUInt16LE(Number(n));
      else out.writeInt16LE(Number(n));
      break;
    case 4:
      if (u) out.writeUInt32LE(Number(n));
      else out.writeInt32LE(Number(n));
      break;
    default:
      if (u) out.writeBigUInt64LE(n);
      else out.writeBigInt64LE(n);
  }
  return out;
}

/**
 * The masked value of one column (its bytes without a length prefix), or null for NULL.
 * `value` is the column's content as the server sent it in the shape's protocol.
 */
export function maskValue(value: Uint8Array, shape: ValueShape, strategy: MaskStrategy, hashKey: Buffer, textOptions?: MaskTextOptions): Buffer | null {
  if (strategy === 'null') return null;
  switch (shape.family) {
    case 'text':
      return maskTextValue(value, shape, strategy, textOptions ?? textOptionsFor(shape, hashKey));
    case 'json': {
      const masked = maskText(Buffer.from(value.buffer, value.byteOffset, value.length).toString('utf8'), strategy, { hashKey });
      return masked === null ? null : Buffer.from(JSON.stringify(masked), 'utf8');
    }
    case 'int': {
      if (strategy !== 'hash') return null;
      const text = intText(value, shape);
      return text === undefined ? null : hashedInt(text, shape, hashKey);
    }
    default:
      return null;
  }
}

const decoders = new Map<string, TextDecoder | null>();

function decoderFor(label: string): TextDecoder | null {
  let d = decoders.get(label);
  if (d === undefined) {
    try {
      d = new TextDecoder(label);
    } catch {
      // A Node built without the full ICU data: read the bytes as they are.
      d = null;
    }
    decoders.set(label, d);
  }
  return d;
}

/** The value as text for the detectors; undefined for a binary value that carries none (floats, dates). */
function scanText(value: Uint8Array, shape: ValueShape): string | undefined {
  const b = Buffer.from(value.buffer, value.byteOffset, value.length);
  if (shape.family === 'int') return shape.binary ? intText(value, shape) : b.toString('latin1');
  if (shape.family === 'other') {
    if (!shape.binary) return b.toString('latin1');
    // Decimals travel as text in the binary protocol too; floats, dates, times and bits do not.
    return shape.type === ColumnType.NEWDECIMAL || shape.type === ColumnType.DECIMAL ? b.toString('latin1') : undefined;
  }
  if (shape.family === 'json' || shape.codec === 'utf8') return b.toString('utf8');
  if (shape.codec === 'multibyte' && shape.decoder !== undefined && !isAscii(value)) {
    const d = decoderFor(shape.decoder);
    if (d !== null) return d.decode(value);
  }
  return b.toString('latin1');
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Scans a value of a column that could not be resolved (or is always scanned) with the
 * content detectors. Undefined when nothing was found (the value is sent as it is); otherwise
 * the masked value and what was found. A value of a type that cannot carry text becomes NULL.
 */
export function scanValue(
  value: Uint8Array,
  shape: ValueShape,
  detectors: ReadonlySet<DetectorKind>,
  strategy: MaskStrategy,
  hashKey: Buffer,
): { value: Buffer | null; kinds: readonly DetectorKind[] } | undefined {
  const text = scanText(value, shape);
  if (text === undefined) return undefined;
  const found = maskDetected(text, detectors, strategy, hashKey);
  if (found === undefined) return undefined;
  if (strategy === 'null' || (shape.family !== 'text' && shape.family !== 'json')) return { value: null, kinds: found.kinds };
  if (shape.family === 'json') {
    // Detected spans are replaced inside the document, which stays a document (replacements
    // add no quote or backslash); otherwise the whole value becomes one JSON string.
    const masked = isJson(found.text) ? found.text : JSON.stringify(found.text);
    return { value: Buffer.from(masked, 'utf8'), kinds: found.kinds };
  }
  let masked = found.text;
  if (shape.codec === 'multibyte' && !isAscii(value)) {
    // The masked text cannot be written back in that character set: nothing of it is kept.
    masked = REDACTED_MARKER;
  }
  if (shape.maxLength !== undefined && masked.length > shape.maxLength) {
    const chars = [...masked];
    if (chars.length > shape.maxLength) masked = chars.slice(0, shape.maxLength).join('');
  }
  return { value: Buffer.from(masked, shape.codec === 'utf8' ? 'utf8' : 'latin1'), kinds: found.kinds };
}

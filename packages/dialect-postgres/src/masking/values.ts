/**
 * Type-valid masked values for PostgreSQL columns, in the text and binary result formats.
 *
 * What each type gets (the rule is: a client must be able to decode the value as the type the
 * RowDescription announced):
 * - text, varchar(n), name, "char", unknown: masked text, cut to the declared length;
 *   char(n) (bpchar) keeps exactly n characters;
 * - json, jsonb: the masked text as a JSON string;
 * - smallint, integer, bigint under `hash`: a keyed, deterministic number of the same width
 *   (joins and GROUP BY still line up); under the other strategies NULL;
 * - uuid under `hash`: a keyed, deterministic uuid; otherwise NULL;
 * - every other type (numeric, floating point, money, dates and times, bytea, boolean, network
 *   addresses, arrays, composite rows, enums, user-defined types): NULL.
 * `null` gives NULL for every type.
 */
import { hashToInt, hashToUuid, maskDetected, maskText, maskTextBytes, type DetectorKind, type MaskStrategy, type MaskTextOptions } from '@sluice/core';

export const PgType = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  json: 114,
  unknown: 705,
  bpchar: 1042,
  varchar: 1043,
  uuid: 2950,
  jsonb: 3802,
} as const;

/** How a column's values are masked, fixed once per result description. */
export interface ValueShape {
  readonly typeOid: number;
  /** Type modifier from the RowDescription (-1 when none). */
  readonly typmod: number;
  /** 0 text, 1 binary. */
  readonly format: number;
}

/** Types whose values are text in both formats. */
export function isTextual(typeOid: number): boolean {
  return (
    typeOid === PgType.text ||
    typeOid === PgType.varchar ||
    typeOid === PgType.bpchar ||
    typeOid === PgType.name ||
    typeOid === PgType.char ||
    typeOid === PgType.unknown
  );
}

/** True when the type can carry a masked text (text family and JSON). */
export function carriesText(typeOid: number): boolean {
  return isTextual(typeOid) || typeOid === PgType.json || typeOid === PgType.jsonb;
}

/** The value as text, for hashing and detection (binary integers and uuids are rendered as text first). */
function valueText(value: Buffer, shape: ValueShape): string | undefined {
  if (shape.format === 0) return value.toString('utf8');
  switch (shape.typeOid) {
    case PgType.int2:
      return value.length === 2 ? String(value.readInt16BE(0)) : undefined;
    case PgType.int4:
      return value.length === 4 ? String(value.readInt32BE(0)) : undefined;
    case PgType.int8:
      return value.length === 8 ? value.readBigInt64BE(0).toString() : undefined;
    case PgType.uuid:
      if (value.length !== 16) return undefined;
      {
        const h = value.toString('hex');
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      }
    case PgType.jsonb:
      return value.length > 0 ? value.toString('utf8', 1) : '';
    default:
      return isTextual(shape.typeOid) || shape.typeOid === PgType.json ? value.toString('utf8') : undefined;
  }
}

/** The options of `maskText` for a column (computed once per plan, not per value). */
export function textOptionsFor(shape: ValueShape, hashKey: Buffer, kind?: DetectorKind): MaskTextOptions {
  return { hashKey, ...textLimits(shape), ...(kind ? { kind } : {}) };
}

function textLimits(shape: ValueShape): { maxLength?: number; fixedLength?: number } {
  if (shape.typeOid === PgType.bpchar && shape.typmod >= 5) return { fixedLength: shape.typmod - 4 };
  if (shape.typeOid === PgType.varchar && shape.typmod >= 5) return { maxLength: shape.typmod - 4 };
  if (shape.typeOid === PgType.char) return { fixedLength: 1 };
  if (shape.typeOid === PgType.name) return { maxLength: 63 };
  return {};
}

/** Encodes masked text as a value of the column's type. */
function encodeText(masked: string, shape: ValueShape): Buffer {
  if (shape.typeOid === PgType.json) return Buffer.from(JSON.stringify(masked), 'utf8');
  if (shape.typeOid === PgType.jsonb) {
    const json = JSON.stringify(masked);
    return shape.format === 1 ? Buffer.concat([Buffer.of(1), Buffer.from(json, 'utf8')]) : Buffer.from(json, 'utf8');
  }
  return Buffer.from(masked, 'utf8');
}

/**
 * The masked value of one column (null for SQL NULL). `value` is the column's bytes as the
 * server sent them in `shape.format`.
 */
export function maskValue(
  value: Buffer,
  shape: ValueShape,
  strategy: MaskStrategy,
  hashKey: Buffer,
  kind?: DetectorKind,
  textOptions?: MaskTextOptions,
): Buffer | null {
  if (strategy === 'null') return null;
  const t = shape.typeOid;
  if (isTextual(t)) {
    // The same bytes in both formats: masked without decoding when ASCII.
    return maskTextBytes(value, strategy, textOptions ?? textOptionsFor(shape, hashKey, kind));
  }
  if (carriesText(t)) {
    const text = valueText(value, shape);
    if (text === undefined) return null;
    const masked = maskText(text, strategy, { hashKey, ...textLimits(shape), ...(kind ? { kind } : {}) });
    return masked === null ? null : encodeText(masked, shape);
  }
  if (strategy !== 'hash') return null;
  const text = valueText(value, shape);
  if (text === undefined) return null;
  switch (t) {
    case PgType.int2:
    case PgType.int4:
    case PgType.int8: {
      const bits = t === PgType.int2 ? 16 : t === PgType.int4 ? 32 : 64;
      const n = hashToInt(hashKey, text, bits);
      if (shape.format === 0) return Buffer.from(n.toString(), 'latin1');
      const out = Buffer.alloc(bits / 8);
      if (bits === 16) out.writeInt16BE(Number(n));
      else if (bits === 32) out.writeInt32BE(Number(n));
      else out.writeBigInt64BE(n);
      return out;
    }
    case PgType.uuid: {
      const uuid = hashToUuid(hashKey, text);
      return shape.format === 0 ? Buffer.from(uuid, 'latin1') : Buffer.from(uuid.replace(/-/g, ''), 'hex');
    }
    default:
      return null;
  }
}

/**
 * Scans a value of a column that could not be resolved with the content detectors. Returns
 * undefined when nothing was found (the value is sent as it is), else the masked value and
 * what was found. A value of a type that cannot carry text becomes NULL when something is found.
 */
export function scanValue(
  value: Buffer,
  shape: ValueShape,
  detectors: ReadonlySet<DetectorKind>,
  strategy: MaskStrategy,
  hashKey: Buffer,
): { value: Buffer | null; kinds: readonly DetectorKind[] } | undefined {
  // Binary values of types that are not text (integers, timestamps ...) carry no text to scan;
  // in the text format every value is text.
  const text = valueText(value, shape);
  if (text === undefined) return undefined;
  const found = maskDetected(text, detectors, strategy, hashKey);
  if (found === undefined) return undefined;
  if (strategy === 'null' || !carriesText(shape.typeOid)) return { value: null, kinds: found.kinds };
  const limits = textLimits(shape);
  let masked = found.text;
  if (limits.maxLength !== undefined && masked.length > limits.maxLength) masked = masked.slice(0, limits.maxLength);
  if (limits.fixedLength !== undefined) masked = masked.slice(0, limits.fixedLength).padEnd(limits.fixedLength, '*');
  if (shape.typeOid === PgType.json || shape.typeOid === PgType.jsonb) {
    // Detected spans are replaced inside the document, which stays a document as long as the
    // replacements add no quote or backslash (they never do); otherwise it becomes one string.
    if (isJson(masked)) {
      const doc = Buffer.from(masked, 'utf8');
      return { value: shape.typeOid === PgType.jsonb && shape.format === 1 ? Buffer.concat([Buffer.of(1), doc]) : doc, kinds: found.kinds };
    }
  }
  return { value: encodeText(masked, shape), kinds: found.kinds };
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

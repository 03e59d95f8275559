/**
 * The hash chain behind the audit trail.
 *
 * Every record carries `seq` (1-based), `prev` (the `hash` of the record before it, or
 * {@link GENESIS_HASH} for the first) and `hash`, the SHA-256 (lower-case hex) of the exact
 * JSON text the store wrote for the record without its `hash` member.
 *
 * On-disk line format (one record per line, UTF-8, terminated by a single "\n"):
 *
 *   <JSON of the record without `hash`, minus its closing "}">,"hash":"<64 hex>"}
 *
 * The verifier hashes the stored bytes themselves ({@link hashedTextOf}), so any change to a
 * line, even one that keeps it valid JSON with the same meaning, breaks its hash. Hashing the
 * written text rather than a canonical form keeps the writer to one native JSON.stringify per
 * record, which matters on the hot path.
 */
import * as crypto from 'node:crypto';

const { createHash } = crypto;
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'hex') => string }).hash;

/** The `prev` of the first record: 64 hex zeros. */
export const GENESIS_HASH = '0'.repeat(64);

const HASH_PATTERN = /^[0-9a-f]{64}$/;

/** True for a lower-case hex SHA-256 digest. */
export function isHash(value: unknown): value is string {
  return typeof value === 'string' && HASH_PATTERN.test(value);
}

/**
 * Canonical JSON: object keys sorted recursively (by UTF-16 code units, as
 * `Array.prototype.sort` does), no whitespace, strings and numbers encoded as `JSON.stringify`
 * encodes them. Members whose value is `undefined`, a function or a symbol are left out, as
 * `JSON.stringify` does; inside arrays they become `null`. A value with a `toJSON` method (a Date)
 * is replaced by its result. Throws on a BigInt, like `JSON.stringify`.
 */
export function canonicalJson(value: unknown): string {
  const out = encode(value);
  if (out === undefined) throw new TypeError('canonicalJson: the value has no JSON representation');
  return out;
}

/** Characters `JSON.stringify` may escape: quote, backslash, controls, surrogates. */
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** `JSON.stringify` of a string, skipping the escaper for the common plain string. */
function encodeString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

function encode(value: unknown): string | undefined {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : 'null';
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      throw new TypeError('canonicalJson: a BigInt cannot be serialized');
    case 'object':
      break;
    default:
      // undefined, function, symbol
      return undefined;
  }
  const withToJson = value as { toJSON?: unknown };
  if (typeof withToJson.toJSON === 'function') {
    return encode((withToJson.toJSON as () => unknown).call(value));
  }
  if (Array.isArray(value)) {
    let s = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) s += ',';
      s += encode(value[i]) ?? 'null';
    }
    return s + ']';
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let s = '{';
  let first = true;
  for (const key of keys) {
    const member = encode(obj[key]);
    if (member === undefined) continue;
    if (!first) s += ',';
    first = false;
    s += encodeString(key) + ':' + member;
  }
  return s + '}';
}

/** SHA-256 (lower-case hex) of a string, UTF-8 encoded. */
export function sha256Hex(text: string): string {
  // One-shot hashing (Node 20.12+) avoids allocating a Hash object per record.
  return oneShot ? oneShot('sha256', text, 'hex') : createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * The `hash` of a record: SHA-256 over its JSON text without `hash`, members in their order.
 * A record parsed from a stored line keeps that order, so this reproduces the stored hash.
 */
export function hashRecord(recordWithoutHash: object): string {
  return sha256Hex(JSON.stringify(recordWithoutHash));
}

const HASH_SUFFIX = /,"hash":"([0-9a-f]{64})"\}$/;

/**
 * The text a stored line's hash covers (the line without its trailing `hash` member, closed
 * with "}") and the hash it claims, or null when the line does not end with a hash member.
 */
export function hashedTextOf(line: string): { text: string; hash: string } | null {
  const m = HASH_SUFFIX.exec(line);
  if (!m) return null;
  return { text: `${line.slice(0, m.index)}}`, hash: m[1]! };
}

/**
 * The stored line (without its terminating "\n") for a record, given the JSON text of the
 * record without `hash` and that record's hash. See the module comment for the format.
 */
export function encodeRecordLine(jsonWithoutHash: string, hash: string): string {
  if (jsonWithoutHash === '{}') return `{"hash":"${hash}"}`;
  return `${jsonWithoutHash.slice(0, -1)},"hash":"${hash}"}`;
}

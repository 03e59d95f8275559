/**
 * Masking strategies, applied to text values (a dialect turns them into values valid for a
 * column's type):
 * - `partial` keeps a little of the shape: `j***@e***.com`, `**** **** **** 4242`;
 * - `hash` is keyed and deterministic: equal values give equal masks, so joins and GROUP BY
 *   still line up, and nobody without the key can test a guess;
 * - `redact` gives a fixed marker;
 * - `null` gives SQL NULL.
 */
import * as crypto from 'node:crypto';
import type { DetectorKind } from './detectors.js';
import { sipHash, sipKey, type SipKey } from './siphash.js';

export const MASK_STRATEGIES = ['partial', 'hash', 'redact', 'null'] as const;
export type MaskStrategy = (typeof MASK_STRATEGIES)[number];

/** How much each strategy hides: a value derived from several columns gets the strongest. */
const STRENGTH: Record<MaskStrategy, number> = { partial: 0, hash: 1, redact: 2, null: 3 };

export function strongerStrategy(a: MaskStrategy, b: MaskStrategy): MaskStrategy {
  return STRENGTH[a] >= STRENGTH[b] ? a : b;
}

export const REDACTED_MARKER = '[redacted]';

export interface MaskTextOptions {
  readonly hashKey: Buffer;
  /** The column holds at most this many characters (varchar(n)). */
  readonly maxLength?: number;
  /** The column holds exactly this many characters (char(n)). */
  readonly fixedLength?: number;
  /** What a detector found the value to be; otherwise guessed from the value. */
  readonly kind?: DetectorKind;
}

const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** Luhn checksum over the digits of a string. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

/** @internal What a value looks like, for `partial` (exported for tests). */
export function guessKind(value: string): DetectorKind | undefined {
  if (EMAIL_SHAPE.test(value)) return 'email';
  if (/^[\d\s-]+$/.test(value)) {
    const digits = value.replace(/\D/g, '');
    if (digits.length >= 12 && digits.length <= 19 && luhnValid(digits)) return 'payment-card';
    if (/^\d{3}-\d{2}-\d{4}$/.test(value)) return 'us-ssn';
  }
  if (/^\+?[\d\s().-]{7,}$/.test(value) && /\d{6,}/.test(value.replace(/\D/g, ''))) return 'phone';
  if (/^[A-Z]{2}\d{2}[A-Z0-9 ]{10,}$/.test(value)) return 'iban';
  return undefined;
}

/**
 * Every digit but the last `keep` replaced by `*`, other characters (separators) kept. A value
 * with too few digits for that to hide most of them gets the generic shape instead.
 */
function maskDigits(value: string, keep: number): string {
  let seen = 0;
  const total = value.replace(/\D/g, '').length;
  if (total <= 2 * keep) return partialGeneric(value);
  let out = '';
  for (const ch of value) {
    if (ch >= '0' && ch <= '9') {
      seen++;
      out += seen > total - keep ? ch : '*';
    } else out += ch;
  }
  return out;
}

function partialEmail(value: string): string {
  const at = value.lastIndexOf('@');
  if (at <= 0) return partialGeneric(value);
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  const dot = domain.lastIndexOf('.');
  const tld = dot >= 0 ? domain.slice(dot) : '';
  const host = dot >= 0 ? domain.slice(0, dot) : domain;
  return `${[...local][0] ?? ''}***@${[...host][0] ?? ''}***${tld}`;
}

function partialGeneric(value: string): string {
  const chars = [...value];
  if (chars.length <= 4) return '*'.repeat(Math.max(1, chars.length));
  // The same marker whatever the length, so that the length does not show.
  return `${chars[0]}***${chars[chars.length - 1]}`;
}

function partial(value: string, kind: DetectorKind | undefined): string {
  switch (kind ?? guessKind(value)) {
    case 'email':
      return partialEmail(value);
    case 'payment-card':
      return maskDigits(value, 4);
    case 'us-ssn':
      return maskDigits(value, 4);
    case 'phone':
      return maskDigits(value, 2);
    case 'iban': {
      const compact = value.replace(/\s/g, '');
      // Too short to be an IBAN: a country code and four characters would show most of it.
      if (compact.length < 12) return partialGeneric(value);
      return `${compact.slice(0, 2)}**${'*'.repeat(compact.length - 8)}${compact.slice(-4)}`;
    }
    case 'jwt':
    case 'private-key':
    case 'api-token':
      // Any part of a secret helps guess the rest: nothing is kept.
      return REDACTED_MARKER;
    default:
      return partialGeneric(value);
  }
}

// One-shot hashing (Node >= 20.12) costs a fraction of an Hmac object per value.
const oneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined;
const SEPARATOR = Buffer.of(0);

/**
 * The keyed hash of a value: SHA-256 over the key, a separator and the value. Only a prefix of
 * it is ever shown, so the construction's length extension gives nothing away; without the
 * key a guess cannot be tested.
 */
function keyedHash(key: Buffer, input: string | Buffer): Buffer {
  const data = Buffer.concat([key, SEPARATOR, typeof input === 'string' ? Buffer.from(input, 'utf8') : input]);
  if (oneShot !== undefined) return oneShot('sha256', data, 'buffer') as unknown as Buffer;
  return crypto.createHash('sha256').update(data).digest();
}

const sipKeys = new WeakMap<Buffer, SipKey>();
function sipKeyOf(key: Buffer): SipKey {
  let k = sipKeys.get(key);
  if (!k) sipKeys.set(key, (k = sipKey(key)));
  return k;
}

const HEX = '0123456789abcdef';

/** `h_` and the 16 hex digits of the keyed 64-bit hash (SipHash-2-4): deterministic, not reversible without the key. */
function hashBytes(value: Uint8Array, key: Buffer): Buffer {
  const [hi, lo] = sipHash(sipKeyOf(key), value);
  const out = Buffer.allocUnsafe(18);
  out[0] = 0x68; // h
  out[1] = 0x5f; // _
  for (let i = 0; i < 8; i++) {
    out[2 + i] = HEX.charCodeAt((hi >>> (28 - 4 * i)) & 15);
    out[10 + i] = HEX.charCodeAt((lo >>> (28 - 4 * i)) & 15);
  }
  return out;
}

function hashText(value: string, key: Buffer): string {
  return hashBytes(Buffer.from(value, 'utf8'), key).toString('latin1');
}

/**
 * `masked`, unless it is the value itself (a column of `*`, a value that is the marker): then
 * as many `*` (or `#` when the value is all `*`), so that the length limits still hold.
 */
function unlike(masked: string, value: string): string {
  if (masked !== value || value.length === 0) return masked;
  const n = [...masked].length;
  return /^\*+$/.test(value) ? '#'.repeat(n) : '*'.repeat(n);
}

function fit(masked: string, value: string, options: MaskTextOptions): string {
  let out = masked;
  if (options.fixedLength !== undefined) {
    const n = Math.max(0, options.fixedLength);
    out = [...out].slice(0, n).join('').padEnd(n, '*');
  } else if (options.maxLength !== undefined && out.length > options.maxLength && [...out].length > options.maxLength) {
    out = [...out].slice(0, Math.max(0, options.maxLength)).join('');
  }
  return unlike(out, value);
}

/**
 * `redact` in a column too short for the marker: as many `*` as fit, no more than the value
 * had (at least one). `length` is the value's length in characters.
 */
function redactedStars(length: number, options: MaskTextOptions): number | undefined {
  if (options.fixedLength !== undefined) return Math.max(0, options.fixedLength);
  if (options.maxLength !== undefined && options.maxLength < REDACTED_MARKER.length) return Math.max(0, Math.min(options.maxLength, length || 1));
  return undefined;
}

/**
 * The masked form of a text value; null for the `null` strategy. Never the value itself when
 * it is not empty, never longer than `maxLength`, exactly `fixedLength` long when given.
 */
export function maskText(value: string, strategy: MaskStrategy, options: MaskTextOptions): string | null {
  // ASCII text takes the byte path, so both paths give the same masks.
  if (ASCII.test(value)) {
    const out = maskTextBytes(Buffer.from(value, 'latin1'), strategy, options);
    return out === null ? null : out.toString('latin1');
  }
  return maskTextString(value, strategy, options);
}

const ASCII = /^[\x00-\x7f]*$/;

function maskTextString(value: string, strategy: MaskStrategy, options: MaskTextOptions): string | null {
  switch (strategy) {
    case 'null':
      return null;
    case 'redact': {
      const stars = redactedStars([...value].length, options);
      return unlike(stars === undefined ? REDACTED_MARKER : '*'.repeat(stars), value);
    }
    case 'hash':
      return fit(hashText(value, options.hashKey), value, options);
    case 'partial':
      return fit(partial(value, options.kind), value, options);
  }
}

/** A keyed, deterministic integer in the signed range of `bits` (for numeric columns under `hash`). */
export function hashToInt(hashKey: Buffer, input: string | Buffer, bits: 16 | 32 | 64): bigint {
  const [hi, lo] = sipHash(sipKeyOf(hashKey), typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
  return BigInt.asIntN(bits, (BigInt(hi) << 32n) | BigInt(lo));
}

/** A keyed, deterministic uuid (version 4 and variant bits set) for uuid columns under `hash`. */
export function hashToUuid(hashKey: Buffer, input: string | Buffer): string {
  const b = keyedHash(hashKey, input).subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// --- the byte path: ASCII values masked without decoding them ---------------------------------

const REDACTED_BYTES = Buffer.from(REDACTED_MARKER, 'latin1');
const STAR = 0x2a;

function isAsciiBytes(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) return false;
  return true;
}

function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function luhnBytes(b: Uint8Array): boolean {
  let sum = 0;
  let double = false;
  let n = 0;
  for (let i = b.length - 1; i >= 0; i--) {
    const c = b[i]!;
    if (!isDigit(c)) continue;
    let d = c - 0x30;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
    n++;
  }
  return n > 0 && sum % 10 === 0;
}

/** As guessKind, on ASCII bytes: one pass over the value gathers what every shape needs. */
export function guessKindBytes(b: Uint8Array): DetectorKind | undefined {
  const n = b.length;
  if (n === 0) return undefined;
  const from = b[0] === 0x2b ? 1 : 0; // a phone number may start with +
  let ats = 0;
  let at = -1;
  let lastDot = -1; // the last '.' before the final character
  let spaces = false;
  let digits = 0;
  let cardChars = true; // only digits, white space and dashes
  let phoneChars = true; // after the +: digits, white space, ( ) . -
  let ibanChars = true; // from the fifth: digits, upper-case letters, spaces
  for (let i = 0; i < n; i++) {
    const c = b[i]!;
    if (c >= 0x30 && c <= 0x39) {
      digits++;
      continue;
    }
    const space = c === 0x20 || (c >= 0x09 && c <= 0x0d);
    if (space) spaces = true;
    else if (c !== 0x2d) cardChars = false;
    if (c === 0x40) {
      ats++;
      at = i;
    } else if (c === 0x2e && i < n - 1) lastDot = i;
    if (i >= from && !(space || c === 0x28 || c === 0x29 || c === 0x2e || c === 0x2d)) phoneChars = false;
    if (i >= 4 && !((c >= 0x41 && c <= 0x5a) || c === 0x20)) ibanChars = false;
  }
  // email: ^[^\s@]+@[^\s@]+\.[^\s@]+$
  if (ats === 1 && !spaces && at > 0 && lastDot >= at + 2) return 'email';
  // digits, spaces and dashes: a card (12-19 digits, Luhn) or an SSN (ddd-dd-dddd)
  if (cardChars) {
    if (digits >= 12 && digits <= 19 && luhnBytes(b)) return 'payment-card';
    if (n === 11 && b[3] === 0x2d && b[6] === 0x2d && digits === 9) return 'us-ssn';
  }
  // phone: ^\+?[\d\s().-]{7,}$ with at least 6 digits
  if (phoneChars && n - from >= 7 && digits >= 6) return 'phone';
  // iban: ^[A-Z]{2}\d{2}[A-Z0-9 ]{10,}$
  if (ibanChars && n >= 14 && b[0]! >= 0x41 && b[0]! <= 0x5a && b[1]! >= 0x41 && b[1]! <= 0x5a && isDigit(b[2]!) && isDigit(b[3]!)) return 'iban';
  return undefined;
}

/** As maskDigits, on ASCII bytes. */
function maskDigitsBytes(b: Uint8Array, keep: number): Buffer {
  let total = 0;
  for (let i = 0; i < b.length; i++) if (isDigit(b[i]!)) total++;
  if (total <= 2 * keep) return genericBytes(b);
  const out = Buffer.from(b);
  let seen = 0;
  for (let i = 0; i < out.length; i++) {
    if (!isDigit(out[i]!)) continue;
    seen++;
    if (seen <= total - keep) out[i] = STAR;
  }
  return out;
}

function partialBytes(b: Uint8Array, kind: DetectorKind | undefined): Buffer {
  switch (kind ?? guessKindBytes(b)) {
    case 'email': {
      const at = b.lastIndexOf(0x40);
      if (at < 0) return genericBytes(b);
      const dot = b.lastIndexOf(0x2e);
      const tldStart = dot > at ? dot : b.length;
      const out = Buffer.allocUnsafe(at > 0 ? 1 + 4 + (at + 1 < tldStart ? 1 : 0) + 3 + (b.length - tldStart) : 0);
      if (at === 0) return genericBytes(b);
      let o = 0;
      out[o++] = b[0]!;
      out[o++] = STAR;
      out[o++] = STAR;
      out[o++] = STAR;
      out[o++] = 0x40;
      if (at + 1 < tldStart) out[o++] = b[at + 1]!;
      out[o++] = STAR;
      out[o++] = STAR;
      out[o++] = STAR;
      for (let i = tldStart; i < b.length; i++) out[o++] = b[i]!;
      return out;
    }
    case 'payment-card':
    case 'us-ssn':
      return maskDigitsBytes(b, 4);
    case 'phone':
      return maskDigitsBytes(b, 2);
    case 'iban':
    case 'jwt':
    case 'private-key':
    case 'api-token':
      return Buffer.from(partial(Buffer.from(b).toString('latin1'), kind ?? 'iban'), 'latin1');
    default:
      return genericBytes(b);
  }
}

function genericBytes(b: Uint8Array): Buffer {
  if (b.length <= 4) return Buffer.alloc(Math.max(1, b.length), STAR);
  const out = Buffer.allocUnsafe(5);
  out[0] = b[0]!;
  out[1] = STAR;
  out[2] = STAR;
  out[3] = STAR;
  out[4] = b[b.length - 1]!;
  return out;
}

/** As unlike, on ASCII bytes. */
function unlikeBytes(masked: Buffer, value: Uint8Array): Buffer {
  if (value.length === 0 || masked.length !== value.length || !sameBytes(masked, value)) return masked;
  return Buffer.alloc(masked.length, value.every((c) => c === STAR) ? 0x23 : STAR);
}

/** Byte equality of two equally long arrays; a loop (masks differ at once) costs less than a native call. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function fitBytes(masked: Buffer, value: Uint8Array, options: MaskTextOptions): Buffer {
  let out = masked;
  if (options.fixedLength !== undefined) {
    const n = Math.max(0, options.fixedLength);
    if (out.length !== n) {
      const fixed = Buffer.alloc(n, STAR);
      out.copy(fixed, 0, 0, Math.min(n, out.length));
      out = fixed;
    }
  } else if (options.maxLength !== undefined && out.length > options.maxLength) {
    out = out.subarray(0, Math.max(0, options.maxLength));
  }
  return unlikeBytes(out, value);
}

/**
 * The masked form of a text value given as UTF-8 bytes, as `maskText` gives it: ASCII values
 * are masked without being decoded (the common case on the hot path), others through text.
 */
export function maskTextBytes(value: Uint8Array, strategy: MaskStrategy, options: MaskTextOptions): Buffer | null {
  if (strategy === 'null') return null;
  if (!isAsciiBytes(value)) {
    const out = maskTextString(Buffer.from(value.buffer, value.byteOffset, value.length).toString('utf8'), strategy, options);
    return out === null ? null : Buffer.from(out, 'utf8');
  }
  switch (strategy) {
    case 'redact': {
      const stars = redactedStars(value.length, options);
      return unlikeBytes(stars === undefined ? REDACTED_BYTES : Buffer.alloc(stars, STAR), value);
    }
    case 'hash':
      return fitBytes(hashBytes(value, options.hashKey), value, options);
    case 'partial':
      return fitBytes(partialBytes(value, options.kind), value, options);
  }
}

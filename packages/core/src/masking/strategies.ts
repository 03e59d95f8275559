/**
 * Masking strategies, applied to text values (a dialect turns them into values valid for a
 * column's type):
 * - `partial` keeps a little of the shape: `j***@e***.com`, `**** **** **** 4242`;
 * - `hash` is keyed and deterministic: equal values give equal masks, so joins and GROUP BY
 *   still line up, and nobody without the key can test a guess;
 * - `redact` gives a fixed marker;
 * - `null` gives SQL NULL.
 */
import { createHmac } from 'node:crypto';
import type { DetectorKind } from './detectors.js';

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

function guessKind(value: string): DetectorKind | undefined {
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

/** Every digit but the last `keep` replaced by `*`; other characters kept. */
function maskDigits(value: string, keep: number): string {
  let seen = 0;
  const total = value.replace(/\D/g, '').length;
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
      return value.includes('@') ? partialEmail(value) : partialGeneric(value);
    case 'payment-card':
      return maskDigits(value, 4);
    case 'us-ssn':
      return maskDigits(value, 4);
    case 'phone':
      return maskDigits(value, 2);
    case 'iban': {
      const compact = value.replace(/\s/g, '');
      return `${compact.slice(0, 2)}**${'*'.repeat(Math.max(0, compact.length - 8))}${compact.slice(-4)}`;
    }
    case 'jwt':
    case 'private-key':
    case 'api-token':
      return REDACTED_MARKER;
    default:
      return partialGeneric(value);
  }
}

function hmac(key: Buffer, input: string | Buffer): Buffer {
  return createHmac('sha256', key).update(input).digest();
}

/** `h_` and 20 hex digits of the keyed hash: deterministic, not reversible without the key. */
function hashText(value: string, key: Buffer): string {
  return `h_${hmac(key, value).toString('hex', 0, 10)}`;
}

function fit(masked: string, value: string, options: MaskTextOptions): string {
  let out = masked;
  if (options.fixedLength !== undefined) {
    const n = options.fixedLength;
    out = [...out].slice(0, n).join('').padEnd(n, '*');
  } else if (options.maxLength !== undefined && [...out].length > options.maxLength) {
    out = [...out].slice(0, options.maxLength).join('');
  }
  // Never the value itself (a one-character column holding `*`, a marker equal to the value).
  if (out === value && value.length > 0) out = out === '*' ? '#' : '*'.repeat(Math.min([...value].length, options.maxLength ?? Infinity));
  return out;
}

/** The masked form of a text value; null for the `null` strategy. */
export function maskText(value: string, strategy: MaskStrategy, options: MaskTextOptions): string | null {
  switch (strategy) {
    case 'null':
      return null;
    case 'redact':
      if (options.fixedLength !== undefined) return '*'.repeat(options.fixedLength);
      if (options.maxLength !== undefined && options.maxLength < REDACTED_MARKER.length) return '*'.repeat(Math.max(1, options.maxLength));
      return fit(REDACTED_MARKER, value, options);
    case 'hash':
      return fit(hashText(value, options.hashKey), value, options);
    case 'partial':
      return fit(partial(value, options.kind), value, options);
  }
}

/** A keyed, deterministic integer in the signed range of `bits` (for numeric columns under `hash`). */
export function hashToInt(hashKey: Buffer, input: string | Buffer, bits: 16 | 32 | 64): bigint {
  const h = hmac(hashKey, input);
  return BigInt.asIntN(bits, h.readBigUInt64BE(0));
}

/** A keyed, deterministic uuid (version 4 and variant bits set) for uuid columns under `hash`. */
export function hashToUuid(hashKey: Buffer, input: string | Buffer): string {
  const b = hmac(hashKey, input).subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Content detectors: find sensitive values inside text, for result columns that cannot be
 * resolved to their sources and for free-text columns. Each is checked beyond its shape
 * where a check exists (Luhn for cards, mod-97 for IBANs, SSA ranges for SSNs, the phone
 * numbering plans of libphonenumber-js), so that order numbers and timestamps are left alone.
 * Every pattern runs in time linear in the text (no nested quantifiers).
 */
import { findPhoneNumbersInText } from 'libphonenumber-js';
import { luhnValid, maskText, REDACTED_MARKER, type MaskStrategy } from './strategies.js';

export const DETECTOR_NAMES = ['email', 'payment-card', 'us-ssn', 'phone', 'iban', 'jwt', 'private-key', 'api-token'] as const;
export type DetectorKind = (typeof DETECTOR_NAMES)[number];

export interface Span {
  readonly start: number;
  readonly end: number;
  readonly kind: DetectorKind;
}

const LOCAL_CHAR = /[A-Za-z0-9._%+-]/;
const DOMAIN_CHAR = /[A-Za-z0-9.-]/;

/**
 * Email addresses: `local@domain.tld` with a letters-only top-level label of two or more.
 * Found from each `@` outwards, so a long run without one costs one pass. Quoted local parts
 * and IP-literal domains are not caught.
 */
function emails(text: string, out: Span[]): void {
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    let start = at;
    while (start > 0 && LOCAL_CHAR.test(text[start - 1]!)) start--;
    let end = at + 1;
    while (end < text.length && DOMAIN_CHAR.test(text[end]!)) end++;
    // A sentence's final dot is not part of the domain.
    while (end > at + 1 && (text[end - 1] === '.' || text[end - 1] === '-')) end--;
    if (start === at) continue;
    const domain = text.slice(at + 1, end);
    const dot = domain.lastIndexOf('.');
    if (dot <= 0 || !/^[A-Za-z]{2,}$/.test(domain.slice(dot + 1)) || domain.includes('..')) continue;
    out.push({ start, end, kind: 'email' });
  }
}

/** Payment cards: 13 to 19 digits, optionally grouped by single spaces or dashes, Luhn-valid. */
function cards(text: string, out: Span[]): void {
  const re = /\d(?:[ -]?\d)+/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const before = m.index > 0 ? text[m.index - 1]! : '';
    if (/[\w.]/.test(before)) continue;
    const digits = m[0].replace(/\D/g, '');
    if (digits.length < 13 || digits.length > 19 || !luhnValid(digits)) continue;
    if (/^(\d)\1+$/.test(digits)) continue;
    out.push({ start: m.index, end: m.index + m[0].length, kind: 'payment-card' });
  }
}

/**
 * US social security numbers written `123-45-6789`, without the numbers the SSA never issues
 * (area 000, 666 or 900-999, group 00, serial 0000). Undashed nine-digit runs are not caught
 * (too many other numbers look like them).
 */
function ssns(text: string, out: Span[]): void {
  const re = /(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const area = Number(m[1]);
    if (area === 0 || area === 666 || area >= 900 || m[2] === '00' || m[3] === '0000') continue;
    out.push({ start: m.index, end: m.index + m[0].length, kind: 'us-ssn' });
  }
}

/** Phone numbers valid in their numbering plan (national US numbers, or any with a `+` country code). */
function phones(text: string, out: Span[]): void {
  if (!/\d{3}/.test(text.replace(/[\s().-]/g, ''))) return;
  for (const found of findPhoneNumbersInText(text, { defaultCountry: 'US' })) {
    if (!found.number.isValid()) continue;
    out.push({ start: found.startsAt, end: found.endsAt, kind: 'phone' });
  }
}

/** IBANs: country code, two check digits and 11 to 30 letters or digits (spaces allowed), mod-97 checked. */
function ibans(text: string, out: Span[]): void {
  const re = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const compact = m[0].replace(/ /g, '');
    const moved = compact.slice(4) + compact.slice(0, 4);
    let rest = 0;
    for (const ch of moved) {
      const v = ch >= 'A' && ch <= 'Z' ? String(ch.charCodeAt(0) - 55) : ch;
      for (const d of v) rest = (rest * 10 + (d.charCodeAt(0) - 48)) % 97;
    }
    if (rest === 1) out.push({ start: m.index, end: m.index + m[0].length, kind: 'iban' });
  }
}

/** JSON Web Tokens: three base64url parts, the header starting `eyJ` (`{"`). */
function jwts(text: string, out: Span[]): void {
  const re = /\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push({ start: m.index, end: m.index + m[0].length, kind: 'jwt' });
}

/** PEM private keys, from the BEGIN line to the END line (or the end of the text when it is cut). */
function privateKeys(text: string, out: Span[]): void {
  const begin = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/g;
  for (let m = begin.exec(text); m !== null; m = begin.exec(text)) {
    const endRe = /-----END [A-Z0-9 ]*PRIVATE KEY-----/g;
    endRe.lastIndex = m.index + m[0].length;
    const e = endRe.exec(text);
    const end = e === null ? text.length : e.index + e[0].length;
    out.push({ start: m.index, end, kind: 'private-key' });
    begin.lastIndex = end;
  }
}

/**
 * API tokens of well-known shapes: AWS access key ids (AKIA/ASIA), GitHub (ghp_, gho_, ghu_,
 * ghs_, ghr_, github_pat_), Slack (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-), Stripe-style secret,
 * restricted and publishable keys (sk_live_, rk_live_, pk_live_, and _test_), Google API keys
 * (AIza). A random string with no such prefix is not caught.
 */
const TOKEN_PATTERNS = [
  /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g,
  /\bgh[pousr]_[A-Za-z0-9]{36,255}\b/g,
  /\bgithub_pat_[A-Za-z0-9_]{22,255}\b/g,
  /\bxox[abprs]-[A-Za-z0-9-]{10,255}/g,
  /\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,255}\b/g,
  /\bAIza[0-9A-Za-z_-]{35}\b/g,
];

function apiTokens(text: string, out: Span[]): void {
  for (const re of TOKEN_PATTERNS) {
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) out.push({ start: m.index, end: m.index + m[0].length, kind: 'api-token' });
  }
}

const FINDERS: Record<DetectorKind, (text: string, out: Span[]) => void> = {
  email: emails,
  'payment-card': cards,
  'us-ssn': ssns,
  phone: phones,
  iban: ibans,
  jwt: jwts,
  'private-key': privateKeys,
  'api-token': apiTokens,
};

/** Detectors tried first win an overlap of equal start (a card number is not also a phone number). */
const ORDER: readonly DetectorKind[] = ['private-key', 'jwt', 'api-token', 'email', 'iban', 'payment-card', 'us-ssn', 'phone'];

/** Sensitive values in `text`, sorted and without overlaps (the earlier, then the longer, wins). */
export function findSensitive(text: string, enabled: ReadonlySet<DetectorKind>): Span[] {
  const found: Span[] = [];
  for (const kind of ORDER) if (enabled.has(kind)) FINDERS[kind](text, found);
  if (found.length <= 1) return found;
  found.sort((a, b) => a.start - b.start || b.end - a.end || ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
  const out: Span[] = [];
  let end = -1;
  for (const s of found) {
    if (s.start < end) continue;
    out.push(s);
    end = s.end;
  }
  return out;
}

/**
 * `text` with every detected value masked, and what was found; undefined when nothing was
 * (the caller then keeps the original bytes). A `null` strategy masks the spans with the
 * redaction marker here; the caller decides whether the whole value becomes NULL.
 */
export function maskDetected(
  text: string,
  enabled: ReadonlySet<DetectorKind>,
  strategy: MaskStrategy,
  hashKey: Buffer,
): { text: string; kinds: DetectorKind[] } | undefined {
  if (enabled.size === 0 || text.length < 6) return undefined;
  const spans = findSensitive(text, enabled);
  if (spans.length === 0) return undefined;
  let out = '';
  let at = 0;
  const kinds: DetectorKind[] = [];
  for (const s of spans) {
    out += text.slice(at, s.start);
    const value = text.slice(s.start, s.end);
    out += strategy === 'null' ? REDACTED_MARKER : (maskText(value, strategy, { hashKey, kind: s.kind }) ?? REDACTED_MARKER);
    at = s.end;
    if (!kinds.includes(s.kind)) kinds.push(s.kind);
  }
  return { text: out + text.slice(at), kinds };
}

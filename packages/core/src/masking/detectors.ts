/**
 * Content detectors: find sensitive values inside text, for result columns that cannot be
 * resolved to their sources and for free-text columns. Each is checked beyond its shape
 * where a check exists (Luhn for cards, mod-97 for IBANs, SSA ranges for SSNs, the phone
 * numbering plans of libphonenumber-js), so that order numbers and timestamps are left alone.
 *
 * Every pattern runs in time linear in the text: no nested quantifiers, and a pattern whose
 * token may contain its own prefix (`xoxb-xoxb-...`) only starts where the previous character
 * cannot belong to a token, so no character is scanned from more than one start.
 */
import { findPhoneNumbersInText } from 'libphonenumber-js';
import { luhnValid, maskText, REDACTED_MARKER, type MaskStrategy } from './strategies.js';

export const DETECTOR_NAMES = ['email', 'payment-card', 'us-ssn', 'phone', 'iban', 'jwt', 'private-key', 'api-token'] as const;
export type DetectorKind = (typeof DETECTOR_NAMES)[number];

/** A detected value: `text.slice(start, end)`. */
export interface Span {
  readonly start: number;
  readonly end: number;
  readonly kind: DetectorKind;
}

/** Characters of an unquoted local part (RFC 5322 atext and the dot). */
const LOCAL_CHAR = /[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]/;
/** Characters that, leading a local part, are more likely punctuation around the address (`'a@b.io'`, `to=a@b.io`). */
const LOCAL_LEAD_PUNCT = /[!#$%&'*/=?^`{|}~]/;
const DOMAIN_CHAR = /[A-Za-z0-9.-]/;
const TLD = /^[A-Za-z]{2,}$/;

/**
 * Email addresses: `local@domain.tld`, the local part as RFC 5322 allows it unquoted, the
 * domain of letters, digits, dots and dashes with a letters-only top-level label of two or
 * more. Found from each `@` outwards, so a long run without one costs one pass. Punctuation
 * that leads the local part (a quote, `=` of `key=value`) is left outside the span when
 * something remains. Not caught: quoted local parts (`"a b"@x.io`), IP-literal domains
 * (`a@[10.0.0.1]`), internationalised addresses, and an address run into a following word
 * (`a@b.com2`) since its top-level label is then not letters.
 */
function emails(text: string, out: Span[]): void {
  for (let at = text.indexOf('@'); at >= 0; at = text.indexOf('@', at + 1)) {
    let start = at;
    while (start > 0 && LOCAL_CHAR.test(text[start - 1]!)) start--;
    while (start < at - 1 && LOCAL_LEAD_PUNCT.test(text[start]!)) start++;
    let end = at + 1;
    while (end < text.length && DOMAIN_CHAR.test(text[end]!)) end++;
    // A sentence's final dot is not part of the domain.
    while (end > at + 1 && (text[end - 1] === '.' || text[end - 1] === '-')) end--;
    if (start === at) continue;
    const domain = text.slice(at + 1, end);
    const dot = domain.lastIndexOf('.');
    if (dot <= 0 || !TLD.test(domain.slice(dot + 1)) || domain.includes('..') || domain.startsWith('.')) continue;
    out.push({ start, end, kind: 'email' });
  }
}

/** Runs of digit groups separated by single spaces or dashes. */
const DIGIT_RUN = /\d+(?:[ -]\d+)*/g;

interface Group {
  readonly start: number;
  readonly end: number;
  /** The separator before the group ('' for the first). */
  readonly sep: string;
}

/**
 * True when groups `i..j` of a longer run look like a card written in groups: the first of
 * four digits, each of three to six, one kind of separator. (A run that is exactly 13 to 19
 * digits is a candidate however it is grouped.)
 */
function cardGrouping(groups: readonly Group[], i: number, j: number): boolean {
  if (i === j) return true;
  if (groups[i]!.end - groups[i]!.start !== 4) return false;
  const sep = groups[i + 1]!.sep;
  for (let g = i; g <= j; g++) {
    const len = groups[g]!.end - groups[g]!.start;
    if (len < 3 || len > 6 || (g > i && groups[g]!.sep !== sep)) return false;
  }
  return true;
}

/**
 * Payment cards: 13 to 19 digits, optionally grouped by single spaces or dashes, Luhn-valid,
 * not one digit repeated. A run of numbers longer than a card (`4242 4242 4242 4242 123`, a
 * card and its code) is searched for the card within it, at group boundaries. Not caught: a
 * number run into letters or underscores (`id_4242...`), the decimals of a number
 * (`3.1415...`), a number that fails the Luhn check, and cards written with other
 * separators (dots, slashes).
 */
function cards(text: string, out: Span[]): void {
  DIGIT_RUN.lastIndex = 0;
  for (let m = DIGIT_RUN.exec(text); m !== null; m = DIGIT_RUN.exec(text)) {
    const runStart = m.index;
    const runEnd = runStart + m[0].length;
    const before = runStart > 0 ? text[runStart - 1]! : '';
    const after = runEnd < text.length ? text[runEnd]! : '';
    // A run's first group may be the end of a word (`id_4242...`) or the decimals of a number
    // (`3.1415...`), its last the start of a word: then no card starts (ends) with it.
    const firstBound = /[A-Za-z_]/.test(before) || (before === '.' && runStart > 1 && /\d/.test(text[runStart - 2]!));
    const lastBound = /[A-Za-z_]/.test(after);
    const groups: Group[] = [];
    for (let k = runStart; k < runEnd; ) {
      const sep = k === runStart ? '' : text[k]!;
      const s = k === runStart ? k : k + 1;
      let e = s;
      while (e < runEnd && text.charCodeAt(e) >= 48 && text.charCodeAt(e) <= 57) e++;
      groups.push({ start: s, end: e, sep });
      k = e;
    }
    const whole = groups.length;
    for (let i = firstBound ? 1 : 0; i < whole; ) {
      // The longest card starting at group i.
      let found = -1;
      let digits = '';
      for (let j = i; j < whole; j++) {
        digits += text.slice(groups[j]!.start, groups[j]!.end);
        if (digits.length > 19 || (lastBound && j === whole - 1)) break;
        if (digits.length < 13 || !luhnValid(digits) || /^(\d)\1+$/.test(digits)) continue;
        if ((i === 0 && j === whole - 1) || cardGrouping(groups, i, j)) found = j;
      }
      if (found < 0) {
        i++;
        continue;
      }
      out.push({ start: groups[i]!.start, end: groups[found]!.end, kind: 'payment-card' });
      i = found + 1;
    }
  }
}

/**
 * US social security numbers written `123-45-6789`, without the numbers the SSA never issues
 * (area 000, 666 or 900-999, group 00, serial 0000). Not caught: undashed nine-digit runs and
 * other separators (too many other numbers look like them), and a number inside a longer
 * dashed run.
 */
function ssns(text: string, out: Span[]): void {
  const re = /(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const area = Number(m[1]);
    if (area === 0 || area === 666 || area >= 900 || m[2] === '00' || m[3] === '0000') continue;
    out.push({ start: m.index, end: m.index + m[0].length, kind: 'us-ssn' });
  }
}

/**
 * Phone numbers that are valid in their numbering plan, as libphonenumber-js finds them in
 * text: national US numbers (`(415) 555-2671`, `415-555-2671`) and international numbers with
 * a `+` country code (`+44 20 7946 0958`). Not caught: numbers of other countries written
 * without their `+` country code, numbers with letters (`1-800-FLOWERS`), and short numbers
 * without an area code (`555-2671`).
 */
function phones(text: string, out: Span[]): void {
  // libphonenumber-js is the slowest detector: skip text with no three digits close together.
  if (!/\d[\s().-]{0,2}\d[\s().-]{0,2}\d/.test(text)) return;
  for (const found of findPhoneNumbersInText(text, { defaultCountry: 'US' })) {
    if (!found.number.isValid()) continue;
    out.push({ start: found.startsAt, end: found.endsAt, kind: 'phone' });
  }
}

/** The ISO 13616 check of an IBAN without spaces: moved, lettered to numbers, mod 97 is 1. */
function ibanValid(compact: string): boolean {
  if (compact.length < 15 || compact.length > 34) return false;
  const moved = compact.slice(4) + compact.slice(0, 4);
  let rest = 0;
  for (let i = 0; i < moved.length; i++) {
    const c = moved.charCodeAt(i);
    rest = c >= 65 ? (rest * 100 + (c - 55)) % 97 : (rest * 10 + (c - 48)) % 97;
  }
  return rest === 1;
}

/**
 * IBAN candidates: compact (`DE89370400440532013000`) or in groups of four
 * (`DE89 3704 0044 0532 0130 00`), not run into letters or digits. Bounded repetitions only.
 */
const IBAN = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}(?![A-Za-z0-9])|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?(?![A-Za-z0-9]))/g;

/**
 * IBANs: country code, two check digits and 11 to 30 upper-case letters or digits, written
 * compact or in groups of four, mod-97 checked. When a grouped one is followed by more
 * groups (`... 0130 00 AND`), the shorter readings are tried. Not caught: lower-case IBANs,
 * other groupings, and one that fails the check.
 */
function ibans(text: string, out: Span[]): void {
  IBAN.lastIndex = 0;
  for (let m = IBAN.exec(text); m !== null; m = IBAN.exec(text)) {
    let candidate = m[0];
    for (;;) {
      if (ibanValid(candidate.replace(/ /g, ''))) {
        out.push({ start: m.index, end: m.index + candidate.length, kind: 'iban' });
        break;
      }
      const space = candidate.lastIndexOf(' ');
      if (space < 0) break;
      candidate = candidate.slice(0, space);
    }
  }
}

/** A base64url segment that decodes to a JSON object. */
function jsonObjectSegment(segment: string): boolean {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

const JWT = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/g;

/**
 * JSON Web Tokens (JWS compact form): three base64url segments separated by dots, the first
 * starting `eyJ` and decoding to a JSON object (the header); the signature may be empty (an
 * unsigned token). Not caught: encrypted tokens (five segments are caught as their first
 * three), and tokens cut inside the header.
 */
function jwts(text: string, out: Span[]): void {
  JWT.lastIndex = 0;
  for (let m = JWT.exec(text); m !== null; m = JWT.exec(text)) {
    const header = m[0].slice(0, m[0].indexOf('.'));
    if (jsonObjectSegment(header)) out.push({ start: m.index, end: m.index + m[0].length, kind: 'jwt' });
  }
}

const PEM_BEGIN = /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK)?-----/g;

/**
 * PEM private keys (`-----BEGIN RSA PRIVATE KEY-----`, `... EC ...`, `... OPENSSH ...`,
 * `... ENCRYPTED ...`, PKCS#8's plain `PRIVATE KEY`, PGP's `PRIVATE KEY BLOCK`), from the
 * BEGIN line through the END line of the same label, or to the end of the text when there is
 * none (a key cut short is still a key). Public keys and certificates are not caught.
 */
function privateKeys(text: string, out: Span[]): void {
  PEM_BEGIN.lastIndex = 0;
  for (let m = PEM_BEGIN.exec(text); m !== null; m = PEM_BEGIN.exec(text)) {
    const endLine = `-----END ${m[1] ?? ''}PRIVATE KEY${m[2] ?? ''}-----`;
    const e = text.indexOf(endLine, m.index + m[0].length);
    const end = e < 0 ? text.length : e + endLine.length;
    out.push({ start: m.index, end, kind: 'private-key' });
    PEM_BEGIN.lastIndex = end;
  }
}

/**
 * API tokens of well-known shapes: AWS access key ids (`AKIA`/`ASIA` and 16 upper-case letters
 * or digits), GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack
 * tokens (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxs-`), Stripe-style keys (`sk_live_`,
 * `sk_test_`, `rk_live_`, `rk_test_`, `pk_live_`) and Google API keys (`AIza` and 35
 * characters). Not caught: a token without such a prefix (a random hex or base64 secret, a
 * bare `Bearer` token), AWS secret access keys, and Stripe's public test keys (`pk_test_`).
 */
const TOKEN_PATTERNS: readonly RegExp[] = [
  /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
  /(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,}/g,
  /(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,}/g,
  /(?<![A-Za-z0-9-])xox[abprs]-[A-Za-z0-9-]{10,}/g,
  /(?<![A-Za-z0-9_])(?:sk_live|sk_test|rk_live|rk_test|pk_live)_[A-Za-z0-9]{10,}/g,
  /(?<![A-Za-z0-9_-])AIza[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])/g,
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

/** Of two spans starting at the same place and as long, the kind listed first is kept. */
const ORDER: readonly DetectorKind[] = ['private-key', 'jwt', 'api-token', 'email', 'iban', 'payment-card', 'us-ssn', 'phone'];
const RANK: Readonly<Record<DetectorKind, number>> = Object.fromEntries(ORDER.map((k, i) => [k, i])) as Record<DetectorKind, number>;

/**
 * Sensitive values in `text`, sorted and without overlaps. Of overlapping values the one that
 * starts first (then the longer) is kept whole, and the part of the other that reaches past
 * it is a span of its own, so that every character of every value found is covered.
 */
export function findSensitive(text: string, enabled: ReadonlySet<DetectorKind>): Span[] {
  const found: Span[] = [];
  for (const kind of ORDER) if (enabled.has(kind)) FINDERS[kind](text, found);
  if (found.length <= 1) return found;
  found.sort((a, b) => a.start - b.start || b.end - a.end || RANK[a.kind] - RANK[b.kind]);
  const out: Span[] = [];
  let end = -1;
  for (const s of found) {
    if (s.end <= end) continue;
    out.push(s.start < end ? { start: end, end: s.end, kind: s.kind } : s);
    end = s.end;
  }
  return out;
}

/**
 * `text` with every detected value masked, and the kinds found; undefined when nothing was
 * (the caller then keeps the original bytes). A `null` strategy masks the values with the
 * redaction marker here; the caller decides whether the whole value becomes NULL.
 */
export function maskDetected(
  text: string,
  enabled: ReadonlySet<DetectorKind>,
  strategy: MaskStrategy,
  hashKey: Buffer,
): { text: string; kinds: DetectorKind[] } | undefined {
  // The shortest value any detector finds is an email such as a@b.io.
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

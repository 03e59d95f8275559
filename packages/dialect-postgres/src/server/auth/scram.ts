/**
 * SCRAM-SHA-256 client side (RFC 5802, RFC 7677) as PostgreSQL uses it in SASL
 * authentication, for the gateway's connections to the real database.
 *
 * PostgreSQL flavour:
 * - no channel binding: the GS2 header is `n,,` and the final message carries `c=biws`;
 * - the user name in client-first-message is empty (`n=,r=...`), as libpq sends it: the
 *   server takes the user from the startup packet and ignores this field;
 * - the password is prepared with SASLprep (RFC 4013) when possible and used as raw UTF-8
 *   otherwise, see {@link saslPrep}.
 *
 * Key derivation uses synchronous PBKDF2, so a handshake blocks the event loop for the
 * server's iteration count (4096 by default: a few milliseconds).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

const GS2_HEADER = 'n,,';
const MAX_ITERATIONS = 0x7fffffff;

/** Non-ASCII space characters (RFC 3454 table C.1.2): mapped to U+0020. */
const NON_ASCII_SPACE: ReadonlyArray<readonly [number, number]> = [
  [0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000],
];

/** "Commonly mapped to nothing" (RFC 3454 table B.1): removed. */
const MAPPED_TO_NOTHING: ReadonlyArray<readonly [number, number]> = [
  [0x00ad, 0x00ad], [0x034f, 0x034f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d],
  [0x2060, 0x2060], [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
];

/** Prohibited output (RFC 4013 section 2.3, RFC 3454 tables C.1.2 and C.2.1 to C.9). */
const PROHIBITED: ReadonlyArray<readonly [number, number]> = [
  // C.1.2 non-ASCII space
  ...NON_ASCII_SPACE,
  // C.2.1 ASCII control
  [0x0000, 0x001f], [0x007f, 0x007f],
  // C.2.2 non-ASCII control
  [0x0080, 0x009f], [0x06dd, 0x06dd], [0x070f, 0x070f], [0x180e, 0x180e], [0x200c, 0x200d],
  [0x2028, 0x2029], [0x2060, 0x2063], [0x206a, 0x206f], [0xfeff, 0xfeff], [0xfff9, 0xfffc],
  [0x1d173, 0x1d17a],
  // C.3 private use
  [0xe000, 0xf8ff], [0xf0000, 0xffffd], [0x100000, 0x10fffd],
  // C.4 non-character code points (the xFFFE/xFFFF pairs are tested separately)
  [0xfdd0, 0xfdef],
  // C.5 surrogates
  [0xd800, 0xdfff],
  // C.6 inappropriate for plain text
  [0xfff9, 0xfffd],
  // C.7 inappropriate for canonical representation
  [0x2ff0, 0x2ffb],
  // C.8 change display properties or deprecated
  [0x0340, 0x0341], [0x200e, 0x200f], [0x202a, 0x202e], [0x206a, 0x206f],
  // C.9 tagging
  [0xe0001, 0xe0001], [0xe0020, 0xe007f],
];

function inRanges(code: number, ranges: ReadonlyArray<readonly [number, number]>): boolean {
  for (const [lo, hi] of ranges) if (code >= lo && code <= hi) return true;
  return false;
}

/** Right-to-left characters (an approximation of RFC 3454 table D.1 by script). */
const RTL = /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\u200f]/u;
/** Left-to-right letters (an approximation of table D.2). */
const LTR_LETTER = /(?![\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}])\p{L}/u;
/** Code points unassigned in the Unicode version of this Node.js. */
const UNASSIGNED = /\p{Cn}/u;

/**
 * The string whose UTF-8 bytes are the SCRAM password, following PostgreSQL (libpq's and the
 * server's pg_saslprep): an ASCII password is used unchanged; otherwise SASLprep is applied
 * (map non-ASCII spaces to U+0020, drop "mapped to nothing" characters, NFKC, check
 * prohibited characters and the bidirectional rule), and when SASLprep rejects the password
 * the raw password is used instead.
 *
 * Limits: Node.js ships no stringprep tables, so the prohibited-character check uses RFC 3454
 * tables C.1.2 to C.9 (small, included here), unassigned code points are those unassigned in
 * Node's Unicode version rather than in Unicode 3.2, and the bidirectional check classifies
 * characters by script. A password the server's SASLprep rejects only for one of these
 * approximated reasons (for example one mixing characters assigned after Unicode 3.2 with
 * characters that NFKC changes) is prepared differently here and the login fails; ASCII
 * passwords and ordinary non-ASCII passwords are exact.
 */
export function saslPrep(password: string): string {
  let ascii = true;
  for (let i = 0; i < password.length; i++) {
    if (password.charCodeAt(i) > 0x7f) {
      ascii = false;
      break;
    }
  }
  if (ascii) return password;

  let mapped = '';
  for (const ch of password) {
    const code = ch.codePointAt(0)!;
    if (inRanges(code, NON_ASCII_SPACE)) mapped += ' ';
    else if (!inRanges(code, MAPPED_TO_NOTHING)) mapped += ch;
  }
  const prepared = mapped.normalize('NFKC');
  if (prepared.length === 0) return password;

  const chars = Array.from(prepared);
  for (const ch of chars) {
    const code = ch.codePointAt(0)!;
    if (inRanges(code, PROHIBITED) || (code & 0xfffe) === 0xfffe || UNASSIGNED.test(ch)) return password;
  }
  if (RTL.test(prepared)) {
    if (LTR_LETTER.test(prepared)) return password;
    if (!RTL.test(chars[0]!) || !RTL.test(chars[chars.length - 1]!)) return password;
  }
  return prepared;
}

/** A printable ASCII character other than `,` (RFC 5802 `printable`). */
function isNonceChar(code: number): boolean {
  return code >= 0x21 && code <= 0x7e && code !== 0x2c;
}

function isNonce(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) if (!isNonceChar(value.charCodeAt(i))) return false;
  return true;
}

/** Strict base64 (RFC 4648 alphabet with padding): decodes, or undefined when malformed. */
function decodeBase64(value: string): Buffer | undefined {
  if (value.length === 0 || value.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return undefined;
  const bytes = Buffer.from(value, 'base64');
  return bytes.toString('base64') === value ? bytes : undefined;
}

/** `=` and `,` escaped as RFC 5802 requires for saslname. */
function saslName(name: string): string {
  return name.replaceAll('=', '=3D').replaceAll(',', '=2C');
}

function hmac(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** Thrown for malformed server messages and failed server verification. */
export class ScramError extends Error {
  override readonly name = 'ScramError';
}

type State = 'initial' | 'first-sent' | 'final-sent' | 'done';

export class ScramClient {
  readonly #password: string;
  readonly #nonce: string;
  readonly #clientFirstBare: string;
  #state: State = 'initial';
  #expectedServerSignature: Buffer | undefined;

  /**
   * @param password the upstream password.
   * @param nonce the client nonce; random (24 base64 characters from 18 bytes) when omitted.
   *   Only tests should pass one.
   * @param username the SCRAM user name; PostgreSQL ignores it and libpq sends ''. Only
   *   interesting for test vectors.
   */
  constructor(password: string, nonce?: string, username = '') {
    const n = nonce ?? randomBytes(18).toString('base64');
    if (!isNonce(n)) throw new ScramError('SCRAM client nonce must be printable ASCII without ","');
    this.#password = password;
    this.#nonce = n;
    this.#clientFirstBare = `n=${saslName(username)},r=${n}`;
  }

  /** The SASLInitialResponse payload: `n,,n=,r=<nonce>`. */
  clientFirstMessage(): string {
    if (this.#state !== 'initial') throw new ScramError('SCRAM client-first-message already sent');
    this.#state = 'first-sent';
    return GS2_HEADER + this.#clientFirstBare;
  }

  /** Checks the server-first-message (SASLContinue) and returns the client-final-message. */
  handleServerFirst(serverFirst: string): string {
    if (this.#state !== 'first-sent') throw new ScramError('SCRAM server-first-message arrived out of order');
    this.#state = 'final-sent';

    const parts = serverFirst.split(',');
    if (parts[0]?.startsWith('m=')) throw new ScramError('SCRAM server requires an unsupported extension');
    if (parts.length < 3) throw new ScramError('malformed SCRAM server-first-message: expected r=, s= and i=');
    const [r, s, i] = parts as [string, string, string];
    if (!r.startsWith('r=')) throw new ScramError('malformed SCRAM server-first-message: missing nonce (r=)');
    if (!s.startsWith('s=')) throw new ScramError('malformed SCRAM server-first-message: missing salt (s=)');
    if (!i.startsWith('i=')) throw new ScramError('malformed SCRAM server-first-message: missing iteration count (i=)');
    for (const extra of parts.slice(3)) {
      // Optional extensions must look like attr=value.
      if (!/^[A-Za-z]=/.test(extra)) throw new ScramError('malformed SCRAM server-first-message: bad attribute');
    }

    const serverNonce = r.slice(2);
    if (!isNonce(serverNonce)) throw new ScramError('invalid SCRAM server nonce: must be printable ASCII without ","');
    if (serverNonce.length <= this.#nonce.length || !serverNonce.startsWith(this.#nonce)) {
      throw new ScramError('invalid SCRAM server nonce: it does not extend the client nonce');
    }
    const salt = decodeBase64(s.slice(2));
    if (salt === undefined) throw new ScramError('invalid SCRAM salt: not base64');
    const iterText = i.slice(2);
    if (!/^[1-9][0-9]{0,9}$/.test(iterText) || Number(iterText) > MAX_ITERATIONS) {
      throw new ScramError(`invalid SCRAM iteration count: ${JSON.stringify(iterText.slice(0, 16))}`);
    }
    const iterations = Number(iterText);

    const saltedPassword = pbkdf2Sync(Buffer.from(saslPrep(this.#password), 'utf8'), salt, iterations, 32, 'sha256');
    const clientKey = hmac(saltedPassword, 'Client Key');
    const storedKey = createHash('sha256').update(clientKey).digest();
    const withoutProof = `c=${Buffer.from(GS2_HEADER).toString('base64')},r=${serverNonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let k = 0; k < proof.length; k++) proof[k] = clientKey[k]! ^ clientSignature[k]!;
    const serverKey = hmac(saltedPassword, 'Server Key');
    this.#expectedServerSignature = hmac(serverKey, authMessage);

    return `${withoutProof},p=${proof.toString('base64')}`;
  }

  /** Checks the server-final-message (SASLFinal); throws unless the server proved it knows the password. */
  verifyServerFinal(serverFinal: string): void {
    if (this.#state !== 'final-sent' || this.#expectedServerSignature === undefined) {
      throw new ScramError('SCRAM server-final-message arrived out of order');
    }
    this.#state = 'done';
    const first = serverFinal.split(',')[0] ?? '';
    if (first.startsWith('e=')) throw new ScramError(`SCRAM authentication failed on the server: ${first.slice(2)}`);
    if (!first.startsWith('v=')) throw new ScramError('malformed SCRAM server-final-message: missing verifier (v=)');
    const signature = decodeBase64(first.slice(2));
    if (signature === undefined) throw new ScramError('malformed SCRAM server-final-message: verifier is not base64');
    const expected = this.#expectedServerSignature;
    if (signature.length !== expected.length || !timingSafeEqual(signature, expected)) {
      throw new ScramError('SCRAM server signature mismatch: the server does not know the password');
    }
  }
}

/**
 * A PostgreSQL lexer for the statement hot path.
 *
 * It follows the token rules of the PostgreSQL server lexer (src/backend/parser/scan.l) closely
 * enough to find exactly where literals, identifiers, comments and statements begin and end:
 * that is what normalization, statement splitting and the audit trail rely on. It does not
 * parse. Errors the server would raise (trailing junk after numbers, bad escapes, unterminated
 * literals) are not raised here: the lexer always produces tokens, and an unterminated literal
 * or quoted identifier extends to the end of the text and is flagged.
 *
 * Literal tokens never carry their content (`value` is ''), except numbers, whose source text is
 * kept because a few classification rules need it.
 */

export const TokenKind = {
  /** Unquoted identifier or keyword; `value` is lower-cased (ASCII letters only, as PostgreSQL does). */
  Word: 1,
  /** `"..."` or `U&"..."`; `value` is the source text including quotes. */
  QuotedIdent: 2,
  /** `'...'`, `E'...'`, `N'...'`, `U&'...'`, with any newline-separated continuations. */
  String: 3,
  /** `B'...'` or `X'...'`. */
  BitString: 4,
  /** `$$...$$` or `$tag$...$tag$`. */
  DollarString: 5,
  /** Integer, decimal, exponent, 0x/0o/0b and `_` separators; `value` is the source text. */
  Number: 6,
  /** Positional parameter `$1`; `value` is the source text. */
  Param: 7,
  /** Operator, as PostgreSQL splits it (`<>`, `->>`, `+`, `@@`); `value` is the source text. */
  Operator: 8,
  /** `( ) [ ] , ; : . :: := ..`; `value` is the source text. */
  Punct: 9,
  /** Any other single character (`\`, `{`, control characters); `value` is the character. */
  Other: 10,
} as const;
export type TokenKind = (typeof TokenKind)[keyof typeof TokenKind];

export interface Token {
  readonly kind: TokenKind;
  /** Offset of the first UTF-16 code unit in the source text. */
  readonly start: number;
  /** Offset just past the last code unit. */
  readonly end: number;
  /** See {@link TokenKind}; '' for strings, bit strings and dollar strings. */
  readonly value: string;
  /** A literal or quoted identifier whose closing delimiter is missing (it runs to the end). */
  readonly unterminated: boolean;
}

export interface LexOptions {
  /**
   * The session's `standard_conforming_strings`. When off, backslash is an escape character
   * in ordinary `'...'` strings too, which moves where such a string ends. Default true (the
   * PostgreSQL default since 9.1); a session that turns it off must be lexed with false.
   */
  readonly standardConformingStrings?: boolean;
}

// Character classes, indexed by char code (< 128). Code units >= 128 are identifier characters.
const IDENT_START = 1;
const IDENT_CONT = 2;
const DIGIT = 4;
const OP_CHAR = 8;
const SPACE = 16;
const HEX = 32;

const CLASS = new Uint8Array(128);
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] = IDENT_START | IDENT_CONT;
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = IDENT_START | IDENT_CONT;
CLASS[0x5f] = IDENT_START | IDENT_CONT; // _
CLASS[0x24] = IDENT_CONT; // $
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = IDENT_CONT | DIGIT | HEX;
for (let c = 0x41; c <= 0x46; c++) CLASS[c] = (CLASS[c] ?? 0) | HEX;
for (let c = 0x61; c <= 0x66; c++) CLASS[c] = (CLASS[c] ?? 0) | HEX;
for (const ch of '~!@#^&|`?+-*/%<>=') CLASS[ch.charCodeAt(0)] = OP_CHAR;
for (const ch of ' \t\n\r\f\v') CLASS[ch.charCodeAt(0)] = SPACE;

const C_QUOTE = 0x27; // '
const C_DQUOTE = 0x22; // "
const C_DOLLAR = 0x24;
const C_DASH = 0x2d;
const C_PLUS = 0x2b;
const C_SLASH = 0x2f;
const C_STAR = 0x2a;
const C_DOT = 0x2e;
const C_COLON = 0x3a;
const C_EQUALS = 0x3d;
const C_BACKSLASH = 0x5c;
const C_AMP = 0x26;
const C_UNDERSCORE = 0x5f;
const C_LF = 0x0a;
const C_CR = 0x0d;

function classOf(c: number): number {
  return c < 128 ? (CLASS[c] ?? 0) : IDENT_START | IDENT_CONT;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** Characters that stop PostgreSQL from trimming a trailing `+`/`-` off a multi-character operator. */
function blocksOperatorTrim(c: number): boolean {
  // ~ ! @ # ^ & | ` ? %
  return (
    c === 0x7e || c === 0x21 || c === 0x40 || c === 0x23 || c === 0x5e ||
    c === 0x26 || c === 0x7c || c === 0x60 || c === 0x3f || c === 0x25
  );
}

/** How a quoted literal body is scanned. */
const QuoteMode = {
  /** `''` doubles a quote; backslash is ordinary. */
  Standard: 0,
  /** `''` doubles a quote; backslash escapes the next character. */
  Escape: 1,
  /** No doubling: the first quote ends the segment (bit and hex strings). */
  Bits: 2,
} as const;
type QuoteMode = (typeof QuoteMode)[keyof typeof QuoteMode];

/** Splits SQL text into tokens. Whitespace and comments produce no tokens. */
export function lex(text: string, options?: LexOptions): Token[] {
  const standardStrings = options?.standardConformingStrings ?? true;
  const tokens: Token[] = [];
  const n = text.length;
  let i = 0;

  const push = (kind: TokenKind, start: number, end: number, value: string, unterminated: boolean): void => {
    tokens.push({ kind, start, end, value, unterminated });
  };

  while (i < n) {
    const c = text.charCodeAt(i);
    const cls = classOf(c);

    if (cls & SPACE) {
      i++;
      continue;
    }

    const next = i + 1 < n ? text.charCodeAt(i + 1) : -1;

    // Comments.
    if (c === C_DASH && next === C_DASH) {
      i = skipLineComment(text, i + 2);
      continue;
    }
    if (c === C_SLASH && next === C_STAR) {
      i = skipBlockComment(text, i + 2);
      continue;
    }

    if (cls & IDENT_START) {
      // Prefixed literals are recognized only where a token starts.
      if (next === C_QUOTE) {
        if (c === 0x45 || c === 0x65) {
          // E'...'
          const end = scanQuoted(text, i + 2, QuoteMode.Escape);
          push(TokenKind.String, i, end < 0 ? n : end, '', end < 0);
          i = end < 0 ? n : end;
          continue;
        }
        if (c === 0x42 || c === 0x62 || c === 0x58 || c === 0x78) {
          // B'...' and X'...'
          const end = scanQuoted(text, i + 2, QuoteMode.Bits);
          push(TokenKind.BitString, i, end < 0 ? n : end, '', end < 0);
          i = end < 0 ? n : end;
          continue;
        }
        if (c === 0x4e || c === 0x6e) {
          // N'...' lexes as an ordinary string.
          const end = scanQuoted(text, i + 2, standardStrings ? QuoteMode.Standard : QuoteMode.Escape);
          push(TokenKind.String, i, end < 0 ? n : end, '', end < 0);
          i = end < 0 ? n : end;
          continue;
        }
      } else if ((c === 0x55 || c === 0x75) && next === C_AMP) {
        const third = i + 2 < n ? text.charCodeAt(i + 2) : -1;
        if (third === C_QUOTE) {
          // U&'...': quotes double, backslashes are Unicode escapes handled after lexing.
          const end = scanQuoted(text, i + 3, QuoteMode.Standard);
          push(TokenKind.String, i, end < 0 ? n : end, '', end < 0);
          i = end < 0 ? n : end;
          continue;
        }
        if (third === C_DQUOTE) {
          const end = scanQuotedIdent(text, i + 3);
          const stop = end < 0 ? n : end;
          push(TokenKind.QuotedIdent, i, stop, text.slice(i, stop), end < 0);
          i = stop;
          continue;
        }
      }

      // Identifier or keyword.
      let j = i + 1;
      let upper = c >= 0x41 && c <= 0x5a;
      let nonAscii = c >= 128;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (d < 128) {
          if (!((CLASS[d] ?? 0) & IDENT_CONT)) break;
          if (d >= 0x41 && d <= 0x5a) upper = true;
        } else {
          nonAscii = true;
        }
        j++;
      }
      const raw = text.slice(i, j);
      push(TokenKind.Word, i, j, upper ? downcase(raw, nonAscii) : raw, false);
      i = j;
      continue;
    }

    if (cls & DIGIT || (c === C_DOT && isDigit(next))) {
      const end = scanNumber(text, i);
      push(TokenKind.Number, i, end, text.slice(i, end), false);
      i = end;
      continue;
    }

    if (c === C_QUOTE) {
      const end = scanQuoted(text, i + 1, standardStrings ? QuoteMode.Standard : QuoteMode.Escape);
      push(TokenKind.String, i, end < 0 ? n : end, '', end < 0);
      i = end < 0 ? n : end;
      continue;
    }

    if (c === C_DQUOTE) {
      const end = scanQuotedIdent(text, i + 1);
      const stop = end < 0 ? n : end;
      push(TokenKind.QuotedIdent, i, stop, text.slice(i, stop), end < 0);
      i = stop;
      continue;
    }

    if (c === C_DOLLAR) {
      if (isDigit(next)) {
        let j = i + 2;
        while (j < n && isDigit(text.charCodeAt(j))) j++;
        push(TokenKind.Param, i, j, text.slice(i, j), false);
        i = j;
        continue;
      }
      // A dollar-quote delimiter: `$$` or `$tag$`, the tag an identifier without `$`.
      let j = i + 1;
      if (next !== C_DOLLAR && next >= 0 && classOf(next) & IDENT_START) {
        j = i + 2;
        while (j < n) {
          const d = text.charCodeAt(j);
          if (d === C_DOLLAR || !(classOf(d) & IDENT_CONT)) break;
          j++;
        }
      }
      if (j < n && text.charCodeAt(j) === C_DOLLAR) {
        const delimiter = text.slice(i, j + 1);
        const close = text.indexOf(delimiter, j + 1);
        const end = close < 0 ? n : close + delimiter.length;
        push(TokenKind.DollarString, i, end, '', close < 0);
        i = end;
        continue;
      }
      // Not a delimiter: a lone `$`, which the server rejects.
      push(TokenKind.Other, i, i + 1, '$', false);
      i++;
      continue;
    }

    if (cls & OP_CHAR) {
      let j = i + 1;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (!(classOf(d) & OP_CHAR)) break;
        // A comment start ends the operator.
        const e = j + 1 < n ? text.charCodeAt(j + 1) : -1;
        if ((d === C_DASH && e === C_DASH) || (d === C_SLASH && e === C_STAR)) break;
        j++;
      }
      let len = j - i;
      const last = text.charCodeAt(j - 1);
      if (len > 1 && (last === C_PLUS || last === C_DASH)) {
        let blocked = false;
        for (let k = i; k < j - 1; k++) {
          if (blocksOperatorTrim(text.charCodeAt(k))) {
            blocked = true;
            break;
          }
        }
        if (!blocked) {
          do len--;
          while (len > 1 && (text.charCodeAt(i + len - 1) === C_PLUS || text.charCodeAt(i + len - 1) === C_DASH));
        }
      }
      push(TokenKind.Operator, i, i + len, text.slice(i, i + len), false);
      i += len;
      continue;
    }

    switch (c) {
      case 0x28: // (
      case 0x29: // )
      case 0x5b: // [
      case 0x5d: // ]
      case 0x2c: // ,
      case 0x3b: // ;
        push(TokenKind.Punct, i, i + 1, text[i]!, false);
        i++;
        continue;
      case C_COLON:
        if (next === C_COLON || next === C_EQUALS) {
          push(TokenKind.Punct, i, i + 2, text.slice(i, i + 2), false);
          i += 2;
        } else {
          push(TokenKind.Punct, i, i + 1, ':', false);
          i++;
        }
        continue;
      case C_DOT:
        if (next === C_DOT) {
          push(TokenKind.Punct, i, i + 2, '..', false);
          i += 2;
        } else {
          push(TokenKind.Punct, i, i + 1, '.', false);
          i++;
        }
        continue;
      default:
        push(TokenKind.Other, i, i + 1, text[i]!, false);
        i++;
    }
  }
  return tokens;
}

/** Lower-cases ASCII letters only; PostgreSQL leaves other characters alone in UTF-8. */
function downcase(raw: string, nonAscii: boolean): string {
  if (!nonAscii) return raw.toLowerCase();
  let out = '';
  for (let k = 0; k < raw.length; k++) {
    const d = raw.charCodeAt(k);
    out += d >= 0x41 && d <= 0x5a ? String.fromCharCode(d + 32) : raw[k]!;
  }
  return out;
}

function skipLineComment(text: string, from: number): number {
  const n = text.length;
  let j = from;
  while (j < n) {
    const d = text.charCodeAt(j);
    if (d === C_LF || d === C_CR) break;
    j++;
  }
  return j;
}

/** Skips a (possibly nested) block comment body; returns the offset after it, or the text length. */
function skipBlockComment(text: string, from: number): number {
  const n = text.length;
  let depth = 1;
  let j = from;
  while (j < n) {
    const d = text.charCodeAt(j);
    if (d === C_STAR && j + 1 < n && text.charCodeAt(j + 1) === C_SLASH) {
      j += 2;
      if (--depth === 0) return j;
    } else if (d === C_SLASH && j + 1 < n && text.charCodeAt(j + 1) === C_STAR) {
      j += 2;
      depth++;
    } else {
      j++;
    }
  }
  return n;
}

/**
 * Scans a quoted literal body starting after its opening quote. Returns the offset after the
 * closing quote, or -1 when the text ends first. Follows PostgreSQL's continuation rule: a
 * closing quote, then whitespace (and `--` comments) containing a newline, then a quote,
 * continues the same literal in the same mode.
 */
function scanQuoted(text: string, from: number, mode: QuoteMode): number {
  const n = text.length;
  let j = from;
  for (;;) {
    if (mode === QuoteMode.Escape) {
      for (;;) {
        if (j >= n) return -1;
        const d = text.charCodeAt(j);
        if (d === C_BACKSLASH) {
          j += 2;
        } else if (d === C_QUOTE) {
          if (j + 1 < n && text.charCodeAt(j + 1) === C_QUOTE) j += 2;
          else break;
        } else {
          j++;
        }
      }
    } else {
      for (;;) {
        const q = text.indexOf("'", j);
        if (q < 0) return -1;
        if (mode === QuoteMode.Standard && q + 1 < n && text.charCodeAt(q + 1) === C_QUOTE) {
          j = q + 2;
          continue;
        }
        j = q;
        break;
      }
    }
    // j is at the closing quote.
    const cont = continuationQuote(text, j + 1);
    if (cont < 0) return j + 1;
    j = cont + 1;
  }
}

/** Offset of a continuation quote after a closed literal, or -1. */
function continuationQuote(text: string, from: number): number {
  const n = text.length;
  let j = from;
  let newline = false;
  while (j < n) {
    const d = text.charCodeAt(j);
    if (d === C_LF || d === C_CR) {
      newline = true;
      j++;
    } else if (d < 128 && (CLASS[d] ?? 0) & SPACE) {
      j++;
    } else if (d === C_DASH && j + 1 < n && text.charCodeAt(j + 1) === C_DASH) {
      j = skipLineComment(text, j + 2);
    } else {
      return d === C_QUOTE && newline ? j : -1;
    }
  }
  return -1;
}

/** Scans a quoted identifier body after its opening `"`; returns the offset after the closing quote or -1. */
function scanQuotedIdent(text: string, from: number): number {
  const n = text.length;
  let j = from;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return -1;
    if (q + 1 < n && text.charCodeAt(q + 1) === C_DQUOTE) {
      j = q + 2;
      continue;
    }
    return q + 1;
  }
}

/** Consumes `digit (_? digit)*` where `digit` matches `mask`; returns the end offset (== from when none). */
function scanDigits(text: string, from: number, mask: number, maxDigit = 0x39): number {
  const n = text.length;
  let j = from;
  if (j >= n) return j;
  const first = text.charCodeAt(j);
  if (!(first < 128 && (CLASS[first] ?? 0) & mask && first <= maxDigit)) return j;
  j++;
  while (j < n) {
    const d = text.charCodeAt(j);
    if (d < 128 && (CLASS[d] ?? 0) & mask && d <= maxDigit) {
      j++;
    } else if (d === C_UNDERSCORE && j + 1 < n) {
      const e = text.charCodeAt(j + 1);
      if (e < 128 && (CLASS[e] ?? 0) & mask && e <= maxDigit) j += 2;
      else break;
    } else {
      break;
    }
  }
  return j;
}

function scanNumber(text: string, start: number): number {
  const n = text.length;
  const c = text.charCodeAt(start);
  if (c === 0x30 && start + 1 < n) {
    const p = text.charCodeAt(start + 1) | 0x20;
    if (p === 0x78 || p === 0x6f || p === 0x62) {
      // 0x / 0o / 0b, with an optional `_` before each digit.
      const mask = p === 0x78 ? HEX : DIGIT;
      const max = p === 0x78 ? 0x7a : p === 0x6f ? 0x37 : 0x31;
      let j = start + 2;
      let digits = 0;
      while (j < n) {
        let d = text.charCodeAt(j);
        let step = 1;
        if (d === C_UNDERSCORE && j + 1 < n) {
          d = text.charCodeAt(j + 1);
          step = 2;
        }
        if (d < 128 && (CLASS[d] ?? 0) & mask && d <= max) {
          j += step;
          digits++;
        } else {
          break;
        }
      }
      if (digits > 0) return j;
    }
  }
  let j: number;
  if (c === C_DOT) {
    j = scanDigits(text, start + 1, DIGIT);
  } else {
    j = scanDigits(text, start, DIGIT);
    if (j < n && text.charCodeAt(j) === C_DOT) {
      // `1..5` is an integer followed by `..`.
      if (j + 1 < n && text.charCodeAt(j + 1) === C_DOT) return j;
      j = scanDigits(text, j + 1, DIGIT);
    }
  }
  if (j < n && (text.charCodeAt(j) | 0x20) === 0x65) {
    let k = j + 1;
    if (k < n && (text.charCodeAt(k) === C_PLUS || text.charCodeAt(k) === C_DASH)) k++;
    const e = scanDigits(text, k, DIGIT);
    if (e > k) j = e;
  }
  return j;
}

/**
 * A MySQL / MariaDB lexer for the statement hot path.
 *
 * It follows the token rules of the server lexer (sql/sql_lex.cc) closely enough to find
 * exactly where literals, identifiers, comments and statements begin and end: that is what
 * normalization, statement splitting, the audit trail and the analysis rely on. It does not
 * parse, and it never throws: an unterminated literal or quoted identifier extends to the end
 * of the text and is flagged.
 *
 * What MySQL's lexer does that matters here:
 * - strings are `'...'` and `"..."` (unless ANSI_QUOTES makes `"` quote identifiers); a quote
 *   is escaped by doubling it or, unless NO_BACKSLASH_ESCAPES, by a backslash; adjacent
 *   strings are one literal (`'a' 'b'` is `'ab'`), as is a charset introducer with its string
 *   (`_utf8mb4'x'`, `_binary 0x41`) and `N'...'`;
 * - identifiers are quoted with backticks (doubled to escape); `@var`, `@'var'`, `@@var` and
 *   `@@global.var` are variables;
 * - hex and bit literals: `0x1F`, `X'1F'`, `0b01`, `B'01'` (the `0x`/`0b` prefixes are lower
 *   case only: `0X1F` is an identifier, as is `1abc`);
 * - comments: `#` to the end of the line, `-- ` (two dashes then a space or control character)
 *   to the end of the line, and `/* ... *\/`, which do not nest;
 * - executable comments: `/*! ... *\/` and `/*!50110 ... *\/` hold code that the server runs
 *   (MariaDB also runs `/*M! ... *\/` and `/*M!100100 ... *\/`; MySQL treats those as plain
 *   comments). Their content is lexed as code here, whatever the version number says, so that
 *   nothing the server may run is hidden. A server older than a versioned comment's number
 *   skips it as a comment instead, to the first `*\/` (one nested comment allowed): when that
 *   end differs from where the code ends (a `*\/` inside a string of the comment), the tokens
 *   after it are flagged {@link TokenFlag.Suspect} and the statement is not analysed.
 *
 * Literal tokens carry no content (`value` is ''), except numbers, whose source text is kept.
 */

export const TokenKind = {
  /** Unquoted identifier or keyword; `value` is lower-cased. */
  Word: 1,
  /** `` `...` `` (or `"..."` with ANSI_QUOTES); `value` is the identifier, unescaped. */
  QuotedIdent: 2,
  /**
   * A string literal: `'...'`, `"..."`, `N'...'`, with its charset introducer and the strings
   * that follow it (they are one literal). `value` is ''.
   */
  String: 3,
  /** `X'..'`, `0x..`, `B'..'`, `0b..`, with an introducer if any. `value` is ''. */
  Binary: 4,
  /** Integer, decimal or float; `value` is the source text. */
  Number: 5,
  /** `?` placeholder. */
  Param: 6,
  /**
   * `@name` (user variable) or `@@name`, `@@global.name` (system variable); `value` is the
   * lower-cased text, `@?` for a quoted user variable name (it may be a host name: `'u'@'h'`).
   */
  Variable: 7,
  /** Operator (`<=>`, `->>`, `:=`, `&&`, `+` ...); `value` is the source text. */
  Operator: 8,
  /** `( ) , ; . { } :`; `value` is the character. */
  Punct: 9,
  /** Any other character (`\`, `$`, control characters); `value` is the character. */
  Other: 10,
} as const;
export type TokenKind = (typeof TokenKind)[keyof typeof TokenKind];

export const TokenFlag = {
  /** A literal, quoted identifier or executable comment whose end is missing. */
  Unterminated: 1,
  /** Inside an executable comment (`/*! ... *\/`). */
  Executable: 2,
  /** After an executable comment whose end depends on the server version (see the module comment). */
  Suspect: 4,
} as const;

export interface Token {
  readonly kind: TokenKind;
  /** Offset of the first UTF-16 code unit in the source text. */
  readonly start: number;
  /** Offset just past the last code unit. */
  readonly end: number;
  /** See {@link TokenKind}. */
  readonly value: string;
  /** {@link TokenFlag} bits. */
  readonly flags: number;
}

export interface LexOptions {
  /** `mariadb` runs `/*M! ... *\/` comments; `mysql` (the default) treats them as comments. */
  readonly dialect?: 'mysql' | 'mariadb';
  /** sql_mode ANSI_QUOTES: `"..."` quotes an identifier, not a string. */
  readonly ansiQuotes?: boolean;
  /** sql_mode NO_BACKSLASH_ESCAPES: backslash is an ordinary character in strings. */
  readonly noBackslashEscapes?: boolean;
  /**
   * Reads versioned executable comments (`/*!50110 ... *\/`) as a server older than their
   * version does: as comments. Used to see what such a server would run when the two readings
   * differ (see {@link TokenFlag.Suspect}).
   */
  readonly skipVersioned?: boolean;
}

// Character classes, indexed by char code (< 128). Code units >= 128 are identifier characters.
const IDENT = 1;
const DIGIT = 2;
const SPACE = 4;
const HEX = 8;

const CLASS = new Uint8Array(128);
for (let c = 0x41; c <= 0x5a; c++) CLASS[c] = IDENT;
for (let c = 0x61; c <= 0x7a; c++) CLASS[c] = IDENT;
CLASS[0x5f] = IDENT; // _
CLASS[0x24] = IDENT; // $
for (let c = 0x30; c <= 0x39; c++) CLASS[c] = IDENT | DIGIT | HEX;
for (let c = 0x41; c <= 0x46; c++) CLASS[c] = (CLASS[c] ?? 0) | HEX;
for (let c = 0x61; c <= 0x66; c++) CLASS[c] = (CLASS[c] ?? 0) | HEX;
for (const ch of ' \t\n\r\f\v') CLASS[ch.charCodeAt(0)] = SPACE;

const C_QUOTE = 0x27; // '
const C_DQUOTE = 0x22; // "
const C_BACKTICK = 0x60;
const C_DASH = 0x2d;
const C_SLASH = 0x2f;
const C_STAR = 0x2a;
const C_DOT = 0x2e;
const C_HASH = 0x23;
const C_BANG = 0x21;
const C_AT = 0x40;
const C_BACKSLASH = 0x5c;
const C_LF = 0x0a;
const C_CR = 0x0d;

function isIdentChar(c: number): boolean {
  return c >= 128 || (c >= 0 && ((CLASS[c] ?? 0) & IDENT) !== 0);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isSpace(c: number): boolean {
  return c >= 0 && c < 128 && ((CLASS[c] ?? 0) & SPACE) !== 0;
}

/** Operators, longest first within each leading character. */
const OPERATORS: readonly string[] = [
  '<=>', '->>', '<<', '>>', '<=', '>=', '<>', '!=', ':=', '&&', '||', '->',
  '=', '<', '>', '!', '~', '^', '&', '|', '+', '-', '*', '/', '%',
];

/** Character sets that can introduce a literal (`_utf8mb4'x'`). */
export const CHARSETS: ReadonlySet<string> = new Set([
  'armscii8', 'ascii', 'big5', 'binary', 'cp1250', 'cp1251', 'cp1256', 'cp1257', 'cp850', 'cp852', 'cp866', 'cp932',
  'dec8', 'eucjpms', 'euckr', 'filename', 'gb18030', 'gb2312', 'gbk', 'geostd8', 'greek', 'hebrew', 'hp8', 'keybcs2',
  'koi8r', 'koi8u', 'latin1', 'latin2', 'latin5', 'latin7', 'macce', 'macroman', 'sjis', 'swe7', 'tis620', 'ucs2', 'ujis',
  'utf16', 'utf16le', 'utf32', 'utf8', 'utf8mb3', 'utf8mb4',
]);

/** Splits SQL text into tokens. Whitespace and comments produce no tokens. */
export function lex(text: string, options?: LexOptions): Token[] {
  const ansiQuotes = options?.ansiQuotes === true;
  const escapes = options?.noBackslashEscapes !== true;
  const mariadb = options?.dialect === 'mariadb';
  const tokens: Token[] = [];
  const n = text.length;
  let i = 0;
  /** Inside an executable comment: its code ends at the next `*\/` outside literals. */
  let executable = false;
  /** For a versioned executable comment: where a server too old for it skips to (-1: none). */
  let skipEnd = -1;
  /** Flags for the next token pushed (an issue found between tokens). */
  let pending = 0;

  const push = (kind: TokenKind, start: number, end: number, value: string, flags = 0): void => {
    tokens.push({ kind, start, end, value, flags: flags | pending | (executable ? TokenFlag.Executable : 0) });
    pending = 0;
  };
  /** Flags the last token and the next one: the statement around this point is in doubt. */
  const flagAround = (flag: number): void => {
    const last = tokens[tokens.length - 1];
    if (last !== undefined) tokens[tokens.length - 1] = { ...last, flags: last.flags | flag };
    pending |= flag;
  };

  while (i < n) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    const next = i + 1 < n ? text.charCodeAt(i + 1) : -1;

    // Comments.
    if (c === C_HASH) {
      i = skipLine(text, i + 1);
      continue;
    }
    if (c === C_DASH && next === C_DASH) {
      const third = i + 2 < n ? text.charCodeAt(i + 2) : -1;
      // `--` starts a comment only when followed by whitespace, a control character or the end.
      if (third < 0 || third <= 0x20 || third === 0x7f) {
        i = skipLine(text, i + 2);
        continue;
      }
    }
    if (c === C_STAR && next === C_SLASH && executable) {
      // The end of an executable comment's code.
      executable = false;
      i += 2;
      if (skipEnd >= 0 && skipEnd !== i) flagAround(TokenFlag.Suspect);
      skipEnd = -1;
      continue;
    }
    if (c === C_SLASH && next === C_STAR) {
      const third = i + 2 < n ? text.charCodeAt(i + 2) : -1;
      const fourth = i + 3 < n ? text.charCodeAt(i + 3) : -1;
      const bang = third === C_BANG ? i + 3 : mariadb && third === 0x4d && fourth === C_BANG ? i + 4 : -1;
      if (bang >= 0) {
        if (executable) {
          // An executable comment inside another: MySQL discards it, MariaDB expands it.
          flagAround(TokenFlag.Suspect);
          const end = text.indexOf('*/', i + 2);
          i = end < 0 ? n : end + 2;
          if (end < 0) flagAround(TokenFlag.Unterminated);
          continue;
        }
        // Five or six digits: a version the server compares with its own.
        let j = bang;
        while (j < n && j - bang < 6 && isDigit(text.charCodeAt(j))) j++;
        const versioned = j - bang >= 5;
        if (!versioned) j = bang;
        if (versioned && options?.skipVersioned === true) {
          const end = skipComment(text, j, 1);
          if (end < 0) flagAround(TokenFlag.Unterminated);
          i = end < 0 ? n : end;
          continue;
        }
        executable = true;
        skipEnd = versioned ? skipComment(text, j, 1) : -1;
        i = j;
        continue;
      }
      const end = skipComment(text, i + 2, 0);
      if (end < 0) {
        // An unterminated comment: the server rejects the text.
        flagAround(TokenFlag.Unterminated);
        i = n;
      } else {
        i = end;
      }
      continue;
    }

    if (c === C_QUOTE || (c === C_DQUOTE && !ansiQuotes)) {
      const end = scanQuoted(text, i + 1, c, escapes);
      push(TokenKind.String, i, end < 0 ? n : end, '', end < 0 ? TokenFlag.Unterminated : 0);
      i = end < 0 ? n : end;
      continue;
    }
    if (c === C_BACKTICK || c === C_DQUOTE) {
      const end = scanQuoted(text, i + 1, c, false);
      const stop = end < 0 ? n : end;
      const body = text.slice(i + 1, end < 0 ? n : end - 1);
      const quote = c === C_BACKTICK ? '`' : '"';
      push(TokenKind.QuotedIdent, i, stop, body.includes(quote) ? body.split(quote + quote).join(quote) : body, end < 0 ? TokenFlag.Unterminated : 0);
      i = stop;
      continue;
    }

    // A word part right after `ident.` is an identifier even when it starts with digits (`t.1a`).
    const prev = tokens[tokens.length - 1];
    const afterDot =
      prev !== undefined && prev.kind === TokenKind.Punct && prev.value === '.' && prev.end === i && isQualifier(tokens[tokens.length - 2], prev.start);

    if (isDigit(c) && !afterDot) {
      i = number(text, i, push);
      continue;
    }
    if (c === C_DOT && isDigit(next) && !(prev !== undefined && prev.end === i && (prev.kind === TokenKind.Word || prev.kind === TokenKind.QuotedIdent))) {
      // `.5`
      let j = i + 1;
      while (j < n && isDigit(text.charCodeAt(j))) j++;
      j = exponent(text, j);
      push(TokenKind.Number, i, j, text.slice(i, j));
      i = j;
      continue;
    }

    if (isIdentChar(c)) {
      // Prefixed literals: X'..', B'..', N'..'.
      if (next === C_QUOTE && !afterDot) {
        const lower = c | 0x20;
        if (lower === 0x78 || lower === 0x62) {
          const close = text.indexOf("'", i + 2);
          const end = close < 0 ? n : close + 1;
          push(TokenKind.Binary, i, end, '', close < 0 ? TokenFlag.Unterminated : 0);
          i = end;
          continue;
        }
        if (lower === 0x6e) {
          const end = scanQuoted(text, i + 2, C_QUOTE, escapes);
          push(TokenKind.String, i, end < 0 ? n : end, '', end < 0 ? TokenFlag.Unterminated : 0);
          i = end < 0 ? n : end;
          continue;
        }
      }
      let j = i + 1;
      let fold = (c >= 0x41 && c <= 0x5a) || c >= 128;
      while (j < n) {
        const d = text.charCodeAt(j);
        if (!isIdentChar(d)) break;
        if ((d >= 0x41 && d <= 0x5a) || d >= 128) fold = true;
        j++;
      }
      const raw = text.slice(i, j);
      push(TokenKind.Word, i, j, fold ? raw.toLowerCase() : raw);
      i = j;
      continue;
    }

    if (c === C_AT) {
      i = variable(text, i, push, escapes);
      continue;
    }

    if (c === 0x3f) {
      push(TokenKind.Param, i, i + 1, '?');
      i++;
      continue;
    }

    switch (c) {
      case 0x28: // (
      case 0x29: // )
      case 0x2c: // ,
      case 0x3b: // ;
      case C_DOT:
      case 0x7b: // {
      case 0x7d: // }
        push(TokenKind.Punct, i, i + 1, text[i]!);
        i++;
        continue;
      default:
        break;
    }

    let op: string | undefined;
    for (const o of OPERATORS) {
      if (text.startsWith(o, i)) {
        op = o;
        break;
      }
    }
    if (op !== undefined) {
      push(TokenKind.Operator, i, i + op.length, op);
      i += op.length;
      continue;
    }
    if (c === 0x3a) {
      push(TokenKind.Punct, i, i + 1, ':');
      i++;
      continue;
    }
    push(TokenKind.Other, i, i + 1, text[i]!);
    i++;
  }
  if (executable) flagAround(TokenFlag.Unterminated);
  return mergeLiterals(tokens);
}

/** The token before a `.` names something that can be qualified (`t.`, `` `t`. ``). */
function isQualifier(t: Token | undefined, dot: number): boolean {
  return t !== undefined && t.end === dot && (t.kind === TokenKind.Word || t.kind === TokenKind.QuotedIdent);
}

function skipLine(text: string, from: number): number {
  const n = text.length;
  let j = from;
  while (j < n) {
    const d = text.charCodeAt(j);
    if (d === C_LF || d === C_CR) break;
    j++;
  }
  return j;
}

/**
 * Skips a comment body as the server skips it (its consume_comment): to the first `*\/`, with
 * up to `nesting` inner `/*` comments. Returns the offset after it, or -1 when the text ends.
 */
function skipComment(text: string, from: number, nesting: number): number {
  const n = text.length;
  let j = from;
  while (j < n) {
    const d = text.charCodeAt(j);
    if (nesting > 0 && d === C_SLASH && j + 1 < n && text.charCodeAt(j + 1) === C_STAR) {
      const inner = skipComment(text, j + 2, nesting - 1);
      if (inner < 0) return -1;
      j = inner;
      continue;
    }
    if (d === C_STAR && j + 1 < n && text.charCodeAt(j + 1) === C_SLASH) return j + 2;
    j++;
  }
  return -1;
}

/**
 * Scans a quoted body after its opening quote `q`. Returns the offset after the closing quote,
 * or -1 when the text ends first. A doubled quote is a quote; with `escapes`, a backslash
 * escapes the next character.
 */
export function scanQuoted(text: string, from: number, q: number, escapes: boolean): number {
  const n = text.length;
  let j = from;
  while (j < n) {
    const d = text.charCodeAt(j);
    if (d === C_BACKSLASH && escapes) {
      j += 2;
    } else if (d === q) {
      if (j + 1 < n && text.charCodeAt(j + 1) === q) j += 2;
      else return j + 1;
    } else {
      j++;
    }
  }
  return -1;
}

function exponent(text: string, from: number): number {
  const n = text.length;
  if (from < n && (text.charCodeAt(from) | 0x20) === 0x65) {
    let k = from + 1;
    if (k < n && (text.charCodeAt(k) === 0x2b || text.charCodeAt(k) === C_DASH)) k++;
    if (k < n && isDigit(text.charCodeAt(k))) {
      while (k < n && isDigit(text.charCodeAt(k))) k++;
      return k;
    }
  }
  return from;
}

type Push = (kind: TokenKind, start: number, end: number, value: string, flags?: number) => void;

/** A token that starts with a digit: a number, a hex or bit number, or an identifier (`1abc`). */
function number(text: string, start: number, push: Push): number {
  const n = text.length;
  let j = start;
  while (j < n && isIdentChar(text.charCodeAt(j))) j++;
  const run = text.slice(start, j);
  if (/^0x[0-9a-fA-F]+$/.test(run) || /^0b[01]+$/.test(run)) {
    push(TokenKind.Binary, start, j, '');
    return j;
  }
  if (/^[0-9]+$/.test(run)) {
    let k = j;
    if (k < n && text.charCodeAt(k) === C_DOT) {
      k++;
      while (k < n && isDigit(text.charCodeAt(k))) k++;
    }
    k = exponent(text, k);
    push(TokenKind.Number, start, k, text.slice(start, k));
    return k;
  }
  // `1e5`, `1e+5`, `1.5e3` with the exponent inside the run.
  const m = /^[0-9]+[eE]$/.exec(run);
  if (m !== null && j < n && (text.charCodeAt(j) === 0x2b || text.charCodeAt(j) === C_DASH) && isDigit(j + 1 < n ? text.charCodeAt(j + 1) : -1)) {
    let k = j + 1;
    while (k < n && isDigit(text.charCodeAt(k))) k++;
    push(TokenKind.Number, start, k, text.slice(start, k));
    return k;
  }
  if (/^[0-9]+[eE][0-9]+$/.test(run)) {
    push(TokenKind.Number, start, j, run);
    return j;
  }
  // Digits then letters: an identifier.
  push(TokenKind.Word, start, j, run.toLowerCase());
  return j;
}

/** `@name`, `@'name'`, `` @`name` ``, `@@name`, `@@global.name`. */
function variable(text: string, start: number, push: Push, escapes: boolean): number {
  const n = text.length;
  let j = start + 1;
  const system = j < n && text.charCodeAt(j) === C_AT;
  if (system) j++;
  const c = j < n ? text.charCodeAt(j) : -1;
  if (!system && (c === C_QUOTE || c === C_DQUOTE || c === C_BACKTICK)) {
    const end = scanQuoted(text, j + 1, c, c !== C_BACKTICK && escapes);
    const stop = end < 0 ? n : end;
    push(TokenKind.Variable, start, stop, '@?', end < 0 ? TokenFlag.Unterminated : 0);
    return stop;
  }
  if (system && c === C_BACKTICK) {
    const end = scanQuoted(text, j + 1, c, false);
    const stop = end < 0 ? n : end;
    push(TokenKind.Variable, start, stop, '@@' + text.slice(j + 1, end < 0 ? n : end - 1).toLowerCase(), end < 0 ? TokenFlag.Unterminated : 0);
    return stop;
  }
  let k = j;
  while (k < n) {
    const d = text.charCodeAt(k);
    // User variable names may hold `.`; system variables are `scope.name` at most.
    if (isIdentChar(d) || (d === C_DOT && !system)) k++;
    else break;
  }
  if (system && k < n && text.charCodeAt(k) === C_DOT && k + 1 < n && isIdentChar(text.charCodeAt(k + 1))) {
    const scope = text.slice(j, k).toLowerCase();
    if (scope === 'global' || scope === 'session' || scope === 'local' || scope === 'persist' || scope === 'persist_only') {
      k++;
      while (k < n && isIdentChar(text.charCodeAt(k))) k++;
    }
  }
  if (k === j) {
    push(TokenKind.Other, start, start + 1, '@');
    return start + 1;
  }
  push(TokenKind.Variable, start, k, text.slice(start, k).toLowerCase());
  return k;
}

/**
 * Merges what the server reads as one literal: a charset introducer with the literal after it
 * (`_utf8mb4 'x'`, `_binary 0x41`), and a string with the strings that follow it (`'a' 'b'`).
 */
function mergeLiterals(tokens: Token[]): Token[] {
  let out: Token[] | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    let j = i;
    let kind: TokenKind | undefined;
    if (t.kind === TokenKind.Word && t.value.length > 1 && t.value.charCodeAt(0) === 0x5f && CHARSETS.has(t.value.slice(1))) {
      const lit = tokens[i + 1];
      if (lit !== undefined && (lit.kind === TokenKind.String || lit.kind === TokenKind.Binary)) {
        j = i + 1;
        kind = lit.kind;
      }
    } else if (t.kind === TokenKind.String) {
      kind = TokenKind.String;
    }
    if (kind === TokenKind.String) {
      while (j + 1 < tokens.length && tokens[j + 1]!.kind === TokenKind.String) j++;
    }
    if (kind === undefined || j === i) {
      out?.push(t);
      continue;
    }
    out ??= tokens.slice(0, i);
    let flags = 0;
    for (let k = i; k <= j; k++) flags |= tokens[k]!.flags;
    out.push({ kind, start: t.start, end: tokens[j]!.end, value: '', flags });
    i = j;
  }
  return out ?? tokens;
}

export interface LiteralOptions {
  readonly ansiQuotes?: boolean;
  readonly noBackslashEscapes?: boolean;
}

const ESCAPES: Readonly<Record<string, string>> = { '0': '\0', b: '\b', n: '\n', r: '\r', t: '\t', Z: '\x1a' };

/**
 * The value of a string literal token (introducer, `N` prefix and adjacent strings included),
 * as MySQL reads it: escapes resolved, quotes undoubled. Undefined when it is not a plain
 * string (hex and bit literals, unterminated strings).
 */
export function stringValue(text: string, token: Token, options?: LiteralOptions): string | undefined {
  if (token.kind !== TokenKind.String || (token.flags & TokenFlag.Unterminated) !== 0) return undefined;
  const escapes = options?.noBackslashEscapes !== true;
  let out = '';
  let i = token.start;
  const end = token.end;
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c === C_QUOTE || (c === C_DQUOTE && options?.ansiQuotes !== true)) {
      const close = scanQuoted(text, i + 1, c, escapes);
      if (close < 0 || close > end) return undefined;
      const body = text.slice(i + 1, close - 1);
      const q = String.fromCharCode(c);
      let k = 0;
      while (k < body.length) {
        const ch = body[k]!;
        if (ch === '\\' && escapes && k + 1 < body.length) {
          const e = body[k + 1]!;
          // `\%` and `\_` keep their backslash (they are LIKE escapes).
          out += e === '%' || e === '_' ? '\\' + e : (ESCAPES[e] ?? e);
          k += 2;
        } else if (ch === q && body[k + 1] === q) {
          out += q;
          k += 2;
        } else {
          out += ch;
          k++;
        }
      }
      i = close;
      continue;
    }
    // A comment between the parts: executable ones may hold more parts; not worth reading.
    if (c === C_HASH || c === C_DASH || c === C_SLASH || c === C_STAR) return undefined;
    // Whitespace, the introducer, the N prefix.
    i++;
  }
  return out;
}

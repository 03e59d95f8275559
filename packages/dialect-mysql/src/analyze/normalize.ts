/**
 * Statement splitting and normalization on top of the lexer.
 *
 * Normalization rules (the output is what the audit trail stores, and the shape key for the
 * more expensive analysis):
 * - every string (with its introducer and the strings concatenated to it), hex and bit literal
 *   and number becomes `?`; `?` placeholders stay `?`;
 * - a `-` directly before a number becomes part of the literal when it cannot be a binary
 *   minus (`x = -1` and `x = 1` have the same shape, `a - 1` keeps its minus);
 * - comments are dropped, and the content of executable comments (`/*! ... *\/`) is kept as
 *   the code it is; tokens are re-joined with single spaces by a fixed rule (no space inside
 *   parentheses, before `,`, around `.`, or between a function name and its `(`);
 * - unquoted identifiers and keywords are lower-cased; quoted identifiers are written with
 *   backticks, as they were written otherwise; variables are lower-cased;
 * - `IN (?, ?, ...)` with only literals or placeholders becomes `IN (...)`;
 * - statements are split at semicolons, except inside the compound body of CREATE
 *   PROCEDURE/FUNCTION/TRIGGER/EVENT and MariaDB's compound statements (see compound.ts);
 *   empty statements are dropped; the request's normalized text is its statements joined
 *   with `; `.
 *
 * MySQL's server reads a multi-statement text statement after statement, each up to its `;`;
 * a statement with unbalanced parentheses is a syntax error that stops the whole request. So
 * a `;` inside parentheses ends a statement here too (the statement is then malformed).
 */
import { compoundEnd } from './compound.js';
import { lex, TokenFlag, TokenKind, type LexOptions, type Token } from './lexer.js';

export interface ScannedStatement {
  /** Index of the statement's first token in {@link ScanResult.tokens}. */
  readonly start: number;
  /** Index just past its last token (the terminating `;` is excluded). */
  readonly end: number;
  readonly normalized: string;
  /** Leading keyword upper-cased, or '' when the statement does not start with a keyword. */
  readonly command: string;
  /**
   * False when the statement has unbalanced parentheses, an unterminated literal, quoted
   * identifier or comment, or an executable comment whose end depends on the server version.
   * The server rejects such text or may read it differently: it is analysed as unknown.
   */
  readonly wellFormed: boolean;
  /** The statement holds a compound body (stored program, MariaDB compound statement). */
  readonly compound: boolean;
}

export interface ScanResult {
  readonly tokens: readonly Token[];
  readonly statements: readonly ScannedStatement[];
}

export interface NormalizedSql {
  /** Normalized statements joined with `; `; '' for a request without statements. */
  readonly normalized: string;
  /** Normalized text of each statement. */
  readonly statements: string[];
  /** Leading keyword of each statement, upper-cased ('' when there is none). */
  readonly commands: string[];
}

export type NormalizeOptions = LexOptions;

const BAD_FLAGS = TokenFlag.Unterminated | TokenFlag.Suspect;

/** Lexes once and splits into statements, normalizing each. */
export function scanSql(text: string, options?: NormalizeOptions): ScanResult {
  return splitTokens(lex(text, options));
}

/** Splits tokens into statements. */
export function splitTokens(tokens: readonly Token[]): ScanResult {
  const statements: ScannedStatement[] = [];
  const count = tokens.length;
  let start = 0;
  while (start < count) {
    const t = tokens[start]!;
    if (t.kind === TokenKind.Punct && t.value === ';') {
      start++;
      continue;
    }
    const compound = compoundEnd(tokens, start, count);
    let end = compound ?? start;
    if (compound === undefined) {
      while (end < count) {
        const u = tokens[end]!;
        if (u.kind === TokenKind.Punct && u.value === ';') break;
        end++;
      }
    }
    statements.push(makeStatement(tokens, start, end, compound !== undefined));
    start = end + 1;
  }
  return { tokens, statements };
}

export function normalizeSql(text: string, options?: NormalizeOptions): NormalizedSql {
  const { statements } = scanSql(text, options);
  const texts: string[] = [];
  const commands: string[] = [];
  for (const s of statements) {
    texts.push(s.normalized);
    commands.push(s.command);
  }
  return { normalized: texts.join('; '), statements: texts, commands };
}

function makeStatement(tokens: readonly Token[], start: number, end: number, compound: boolean): ScannedStatement {
  let depth = 0;
  let wellFormed = true;
  for (let i = start; i < end; i++) {
    const t = tokens[i]!;
    if ((t.flags & BAD_FLAGS) !== 0) wellFormed = false;
    if (t.kind !== TokenKind.Punct) continue;
    if (t.value === '(') depth++;
    else if (t.value === ')' && --depth < 0) wellFormed = false;
  }
  return {
    start,
    end,
    normalized: renderStatement(tokens, start, end),
    command: leadingCommand(tokens, start, end),
    wellFormed: wellFormed && depth === 0,
    compound,
  };
}

export function leadingCommand(tokens: readonly Token[], start: number, end: number): string {
  let i = start;
  while (i < end && tokens[i]!.kind === TokenKind.Punct && tokens[i]!.value === '(') i++;
  const t = tokens[i];
  return i < end && t !== undefined && t.kind === TokenKind.Word ? t.value.toUpperCase() : '';
}

/** Keywords after which a `-` before a number is a sign, not a subtraction. */
const SIGN_CONTEXT_WORDS: ReadonlySet<string> = new Set([
  'select', 'where', 'and', 'or', 'xor', 'not', 'then', 'else', 'when', 'case', 'limit', 'offset', 'having', 'on',
  'return', 'returning', 'by', 'between', 'like', 'rlike', 'regexp', 'is', 'distinct', 'all', 'any', 'some', 'to',
  'default', 'escape', 'values', 'value', 'set', 'in', 'with', 'as', 'div', 'mod', 'interval', 'if', 'elseif', 'until',
  'do', 'binary',
]);

/** Keywords that keep a space before a following `(`; other words are treated as function names. */
const SPACED_PAREN_WORDS: ReadonlySet<string> = new Set([
  'in', 'as', 'values', 'value', 'exists', 'and', 'or', 'xor', 'not', 'on', 'using', 'from', 'join', 'where', 'select',
  'when', 'then', 'else', 'by', 'with', 'over', 'lateral', 'between', 'like', 'is', 'case', 'table', 'union',
  'intersect', 'except', 'distinct', 'into', 'do', 'having', 'group', 'order', 'limit', 'offset', 'recursive',
  'unique', 'key', 'check', 'primary', 'references', 'partition', 'to', 'default', 'row', 'for', 'explain', 'update',
  'delete', 'insert', 'replace', 'set', 'index', 'return', 'if', 'elseif', 'any', 'all', 'some', 'columns', 'ignore',
  'force', 'use', 'window', 'all', 'interval', 'binary', 'constraint', 'foreign', 'fulltext', 'spatial',
]);

function isLiteral(kind: TokenKind): boolean {
  return kind === TokenKind.String || kind === TokenKind.Number || kind === TokenKind.Binary;
}

/** True when the token can end an operand, so a following `-` is a binary minus. */
function endsOperand(t: Token): boolean {
  switch (t.kind) {
    case TokenKind.Word:
      return !SIGN_CONTEXT_WORDS.has(t.value);
    case TokenKind.QuotedIdent:
    case TokenKind.String:
    case TokenKind.Binary:
    case TokenKind.Number:
    case TokenKind.Param:
    case TokenKind.Variable:
      return true;
    case TokenKind.Punct:
      return t.value === ')' || t.value === '}';
    default:
      return false;
  }
}

/** A `-` at index i that is the sign of the number that follows. */
export function isSign(tokens: readonly Token[], i: number, start: number, end: number): boolean {
  const t = tokens[i]!;
  if (t.kind !== TokenKind.Operator || t.value !== '-' || i + 1 >= end) return false;
  if (tokens[i + 1]!.kind !== TokenKind.Number) return false;
  return i === start || !endsOperand(tokens[i - 1]!);
}

/**
 * When tokens[open] starts `( item, item, ... )` whose items are all literals (optionally
 * signed numbers) or placeholders, returns the index of the closing `)`; otherwise -1.
 */
function literalListEnd(tokens: readonly Token[], open: number, end: number): number {
  const first = tokens[open];
  if (open >= end || first === undefined || first.kind !== TokenKind.Punct || first.value !== '(') return -1;
  let i = open + 1;
  for (;;) {
    if (i >= end) return -1;
    let t = tokens[i]!;
    if (t.kind === TokenKind.Operator && t.value === '-' && i + 1 < end && tokens[i + 1]!.kind === TokenKind.Number) {
      i++;
      t = tokens[i]!;
    }
    if (!isLiteral(t.kind) && t.kind !== TokenKind.Param) return -1;
    i++;
    if (i >= end) return -1;
    const sep = tokens[i]!;
    if (sep.kind !== TokenKind.Punct) return -1;
    if (sep.value === ')') return i;
    if (sep.value !== ',') return -1;
    i++;
  }
}

/**
 * What the normalized text does not show but the analysis sees: the kind of each literal
 * (`s` string, `b` hex or bit, `n` number, `p` placeholder) outside `IN (literal, ...)` lists,
 * which the parser sees as `IN (1)` whatever they hold. Two statements with the same
 * normalized text and the same signature give the parser the same text, and the keyword
 * analysis the same tokens but for literal values.
 */
export function literalSignature(tokens: readonly Token[], start: number, end: number): string {
  let out = '';
  for (let i = start; i < end; i++) {
    const t = tokens[i]!;
    if (t.kind === TokenKind.Word && t.value === 'in') {
      const close = literalListEnd(tokens, i + 1, end);
      if (close > 0) {
        i = close;
        continue;
      }
    }
    if (t.kind === TokenKind.String) out += 's';
    else if (t.kind === TokenKind.Binary) out += 'b';
    else if (t.kind === TokenKind.Number) out += 'n';
    else if (t.kind === TokenKind.Param) out += 'p';
  }
  return out;
}

/** A quoted identifier as normalized text: backticks, inner backticks doubled. */
export function quoteIdent(name: string): string {
  return '`' + (name.includes('`') ? name.split('`').join('``') : name) + '`';
}

/** Renders tokens [start, end) as normalized text. */
export function renderStatement(tokens: readonly Token[], start: number, end: number): string {
  let out = '';
  let glued = true; // no leading space
  let prev: Token | undefined;

  for (let i = start; i < end; i++) {
    const t = tokens[i]!;
    let piece: string;
    let glueBefore = false;
    let glueAfter = false;

    switch (t.kind) {
      case TokenKind.Word:
        piece = t.value;
        if (piece === 'in') {
          const close = literalListEnd(tokens, i + 1, end);
          if (close > 0) {
            out += glued ? 'in (...)' : ' in (...)';
            glued = false;
            prev = tokens[close];
            i = close;
            continue;
          }
        }
        break;
      case TokenKind.QuotedIdent:
        piece = (t.flags & TokenFlag.Unterminated) !== 0 ? '?' : quoteIdent(t.value);
        break;
      case TokenKind.String:
      case TokenKind.Binary:
      case TokenKind.Number:
      case TokenKind.Param:
        piece = '?';
        break;
      case TokenKind.Variable:
        piece = t.value;
        // `'user'@'host'`, `user@host`: no space before the host.
        if (prev !== undefined && prev.end === t.start) glueBefore = true;
        break;
      case TokenKind.Operator:
        if (isSign(tokens, i, start, end)) {
          prev = t;
          continue; // the number that follows renders as `?`
        }
        piece = t.value;
        break;
      case TokenKind.Punct:
        piece = t.value;
        switch (piece) {
          case '(':
            glueAfter = true;
            if (prev !== undefined && (prev.kind === TokenKind.QuotedIdent || (prev.kind === TokenKind.Word && !SPACED_PAREN_WORDS.has(prev.value)))) {
              glueBefore = true;
            }
            break;
          case '.':
            glueBefore = true;
            glueAfter = true;
            break;
          case ')':
          case ',':
          case ';':
          case ':':
            glueBefore = true;
            break;
          default:
            break;
        }
        break;
      default: {
        // Other: keep printable characters, never control characters.
        const code = t.value.charCodeAt(0);
        piece = code < 0x20 || code === 0x7f ? '\ufffd' : t.value;
        break;
      }
    }

    if (glued || glueBefore) out += piece;
    else out += ' ' + piece;
    glued = glueAfter;
    prev = t;
  }
  return out;
}

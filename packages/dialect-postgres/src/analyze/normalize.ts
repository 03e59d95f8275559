/**
 * Statement splitting and normalization on top of the lexer.
 *
 * Normalization rules (the output is what the audit trail stores, and the shape key for any
 * later, more expensive analysis):
 * - every string, escape string, Unicode string, bit string, dollar-quoted string and number
 *   becomes `?`; adjacent newline-continued strings are one literal, so one `?`;
 * - a `-` directly before a number becomes part of the literal when it cannot be a binary
 *   minus (at the start, after an operator, `(`, `,`, `[`, or a keyword such as SELECT, WHERE,
 *   THEN): `x = -1` and `x = 1` have the same shape, `a - 1` keeps its minus;
 * - positional parameters (`$1`) are kept as written;
 * - comments are dropped; tokens are re-joined with single spaces by a fixed rule (no space
 *   inside parentheses and brackets, before `,`, around `.` and `::`, or between a function
 *   name and its `(`), so the original layout never changes the shape;
 * - unquoted identifiers and keywords are lower-cased; quoted identifiers are kept as written;
 *   an unterminated quoted identifier becomes `?`;
 * - `IN (?, ?, ...)` with only literals or parameters becomes `IN (...)`;
 * - statements are split at semicolons outside parentheses and outside the
 *   `BEGIN ATOMIC ... END` body of CREATE FUNCTION / CREATE PROCEDURE; empty statements are
 *   dropped; the request's normalized text is its statements joined with `; `.
 *
 * Because `?` is also a PostgreSQL operator character, an operator `?` and a placeholder
 * look alike in the output; shapes stay deterministic, which is what the fingerprint needs.
 */
import { lex, TokenKind, type LexOptions, type Token } from './lexer.js';

export interface ScannedStatement {
  /** Index of the statement's first token in {@link ScanResult.tokens}. */
  readonly start: number;
  /** Index just past its last token (the terminating `;` is excluded). */
  readonly end: number;
  readonly normalized: string;
  /** Leading keyword upper-cased, or '' when the statement does not start with a keyword. */
  readonly command: string;
  /**
   * False when the statement has unbalanced parentheses, an unclosed BEGIN ATOMIC body, or an
   * unterminated literal or quoted identifier. The server rejects such text; where a statement
   * ends in it is a guess, so it must not be classified as anything but unknown.
   */
  readonly wellFormed: boolean;
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

/** Lexes once and splits into statements, normalizing each. */
export function scanSql(text: string, options?: NormalizeOptions): ScanResult {
  const tokens = lex(text, options);
  const statements: ScannedStatement[] = [];
  const count = tokens.length;

  let start = 0;
  let parenDepth = 0;
  let beginDepth = 0;
  let wellFormed = true;
  // Leading unquoted words of the current statement, to spot CREATE [OR REPLACE] FUNCTION/PROCEDURE.
  let wordCount = 0;
  let routine = false;
  let w0 = '';
  let w1 = '';
  let w2 = '';

  for (let i = 0; i < count; i++) {
    const t = tokens[i]!;
    if (t.kind === TokenKind.Punct) {
      const v = t.value;
      if (v === ';') {
        if (parenDepth === 0 && beginDepth === 0) {
          if (i > start) statements.push(makeStatement(tokens, start, i, wellFormed));
          start = i + 1;
          wordCount = 0;
          routine = false;
          wellFormed = true;
        }
      } else if (v === '(') {
        parenDepth++;
      } else if (v === ')') {
        if (parenDepth > 0) parenDepth--;
        else wellFormed = false;
      }
    } else if (t.kind === TokenKind.Word) {
      const v = t.value;
      if (wordCount < 4) {
        if (wordCount === 0) {
          w0 = v;
        } else if (wordCount === 1) {
          w1 = v;
          routine = w0 === 'create' && (v === 'function' || v === 'procedure');
        } else if (wordCount === 2) {
          w2 = v;
        } else if (w0 === 'create' && w1 === 'or' && w2 === 'replace') {
          routine = v === 'function' || v === 'procedure';
        }
        wordCount++;
      }
      if (routine && parenDepth === 0) {
        // Only `BEGIN ATOMIC` opens a body: a function may itself be named `begin`.
        if (v === 'begin') {
          const next = tokens[i + 1];
          if (next !== undefined && next.kind === TokenKind.Word && next.value === 'atomic') beginDepth++;
        } else if (v === 'case') {
          if (beginDepth > 0) beginDepth++;
        } else if (v === 'end') {
          if (beginDepth > 0) beginDepth--;
        }
      }
    } else if (t.unterminated) {
      wellFormed = false;
    }
  }
  if (count > start) {
    statements.push(makeStatement(tokens, start, count, wellFormed && parenDepth === 0 && beginDepth === 0));
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

function makeStatement(tokens: readonly Token[], start: number, end: number, wellFormed: boolean): ScannedStatement {
  return {
    start,
    end,
    normalized: renderStatement(tokens, start, end),
    command: leadingCommand(tokens, start, end),
    wellFormed,
  };
}

function leadingCommand(tokens: readonly Token[], start: number, end: number): string {
  let i = start;
  while (i < end && tokens[i]!.kind === TokenKind.Punct && tokens[i]!.value === '(') i++;
  const t = tokens[i];
  return i < end && t !== undefined && t.kind === TokenKind.Word ? t.value.toUpperCase() : '';
}

/** Keywords after which a `-` before a number is a sign, not a subtraction. */
const SIGN_CONTEXT_WORDS: ReadonlySet<string> = new Set([
  'select', 'where', 'and', 'or', 'not', 'then', 'else', 'when', 'case', 'limit', 'offset',
  'having', 'on', 'return', 'returning', 'by', 'between', 'like', 'ilike', 'is', 'distinct',
  'all', 'any', 'some', 'to', 'default', 'escape', 'values', 'set', 'in', 'with', 'as',
]);

/** Keywords that keep a space before a following `(`; other words are treated as function names. */
const SPACED_PAREN_WORDS: ReadonlySet<string> = new Set([
  'in', 'as', 'values', 'exists', 'and', 'or', 'not', 'on', 'using', 'from', 'join', 'where',
  'select', 'when', 'then', 'else', 'by', 'with', 'over', 'filter', 'within', 'return',
  'returning', 'set', 'any', 'all', 'some', 'lateral', 'between', 'like', 'ilike', 'is', 'case',
  'table', 'union', 'intersect', 'except', 'distinct', 'into', 'do', 'having', 'group', 'order',
  'limit', 'offset', 'materialized', 'recursive', 'include', 'unique', 'key', 'check',
  'primary', 'references', 'partition', 'to', 'default', 'array', 'row', 'for', 'option',
  'explain', 'analyze', 'analyse', 'copy', 'conflict', 'update', 'delete', 'insert',
]);

function isLiteral(kind: TokenKind): boolean {
  return (
    kind === TokenKind.String || kind === TokenKind.Number ||
    kind === TokenKind.BitString || kind === TokenKind.DollarString
  );
}

/** True when the token can end an operand, so a following `-` is a binary minus. */
function endsOperand(t: Token): boolean {
  switch (t.kind) {
    case TokenKind.Word:
      return !SIGN_CONTEXT_WORDS.has(t.value);
    case TokenKind.QuotedIdent:
    case TokenKind.String:
    case TokenKind.BitString:
    case TokenKind.DollarString:
    case TokenKind.Number:
    case TokenKind.Param:
      return true;
    case TokenKind.Punct:
      return t.value === ')' || t.value === ']';
    default:
      return false;
  }
}

/** A `-` at index i that is the sign of the number that follows. */
function isSign(tokens: readonly Token[], i: number, start: number, end: number): boolean {
  const t = tokens[i]!;
  if (t.kind !== TokenKind.Operator || t.value !== '-' || i + 1 >= end) return false;
  if (tokens[i + 1]!.kind !== TokenKind.Number) return false;
  return i === start || !endsOperand(tokens[i - 1]!);
}

/**
 * When tokens[open] starts `( item, item, ... )` whose items are all literals (optionally
 * signed numbers) or parameters, returns the index of the closing `)`; otherwise -1.
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

// Spacing flags for the renderer.
const GLUE_NONE = 0;
const GLUE_AFTER = 1; // nothing after this piece: ( [ . :: :

/** Renders tokens [start, end) as normalized text. */
export function renderStatement(tokens: readonly Token[], start: number, end: number): string {
  let out = '';
  let prevGlue = GLUE_AFTER; // no leading space
  let prev: Token | undefined;

  for (let i = start; i < end; i++) {
    const t = tokens[i]!;
    let piece: string;
    let glueBefore = false;
    let glueAfter = false;

    switch (t.kind) {
      case TokenKind.Word: {
        piece = t.value;
        if (piece === 'in') {
          const close = literalListEnd(tokens, i + 1, end);
          if (close > 0) {
            out += prevGlue === GLUE_AFTER ? 'in (...)' : ' in (...)';
            prevGlue = GLUE_NONE;
            prev = tokens[close];
            i = close;
            continue;
          }
        }
        break;
      }
      case TokenKind.QuotedIdent:
        piece = t.unterminated ? '?' : t.value;
        break;
      case TokenKind.String:
      case TokenKind.BitString:
      case TokenKind.DollarString:
      case TokenKind.Number:
        piece = '?';
        break;
      case TokenKind.Param:
        piece = t.value;
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
          case '[':
          case '.':
          case '::':
          case ':':
            glueBefore = true;
            glueAfter = true;
            break;
          case ')':
          case ']':
          case ',':
          case ';':
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

    if (prevGlue === GLUE_AFTER || glueBefore) out += piece;
    else out += ' ' + piece;
    prevGlue = glueAfter ? GLUE_AFTER : GLUE_NONE;
    prev = t;
  }
  return out;
}

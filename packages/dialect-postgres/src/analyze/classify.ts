/**
 * Operation class of one statement from its leading keywords.
 *
 * This is a lexical classifier, not a parser: it reads the first words of a statement and a
 * few structural clues (data-modifying CTEs, `SELECT ... INTO`, locking clauses, the target of
 * COPY, EXPLAIN ANALYZE). Whatever it does not recognize is `unknown`, which callers treat as
 * privileged. It cannot see what functions called from a query do (`SELECT nextval(...)`,
 * `SELECT set_config('role', ...)`): that needs catalog knowledge.
 */
import { OperationClass } from '@sluice/core';
import { TokenKind, type Token } from './lexer.js';

/** Nesting limit for statements inside statements (EXPLAIN, PREPARE, CTE bodies, ...). */
const MAX_DEPTH = 16;

/** Classifies tokens [start, end) as one statement (no trailing `;`). */
export function classifyStatement(tokens: readonly Token[], start = 0, end = tokens.length): OperationClass {
  return classifyRange(tokens, start, Math.min(end, tokens.length), 0);
}

function wordAt(tokens: readonly Token[], i: number, end: number): string | undefined {
  if (i >= end) return undefined;
  const t = tokens[i];
  return t !== undefined && t.kind === TokenKind.Word ? t.value : undefined;
}

function isPunct(tokens: readonly Token[], i: number, end: number, value: string): boolean {
  if (i >= end) return false;
  const t = tokens[i];
  return t !== undefined && t.kind === TokenKind.Punct && t.value === value;
}

/** Index of the `)` matching the `(` at `open`, or -1. */
function matchingParen(tokens: readonly Token[], open: number, end: number): number {
  let depth = 0;
  for (let i = open; i < end; i++) {
    const t = tokens[i]!;
    if (t.kind !== TokenKind.Punct) continue;
    if (t.value === '(') depth++;
    else if (t.value === ')' && --depth === 0) return i;
  }
  return -1;
}

/** First index in [from, end) holding `word` outside parentheses, or -1. */
function findWordAtDepth0(tokens: readonly Token[], from: number, end: number, word: string): number {
  let depth = 0;
  for (let i = from; i < end; i++) {
    const t = tokens[i]!;
    if (t.kind === TokenKind.Punct) {
      if (t.value === '(') depth++;
      else if (t.value === ')') depth--;
    } else if (depth === 0 && t.kind === TokenKind.Word && t.value === word) {
      return i;
    }
  }
  return -1;
}

function classifyRange(tokens: readonly Token[], start: number, end: number, depth: number): OperationClass {
  if (depth > MAX_DEPTH) return OperationClass.Unknown;
  let i = start;
  while (isPunct(tokens, i, end, '(')) i++;
  const first = wordAt(tokens, i, end);
  if (first === undefined) return OperationClass.Unknown;

  switch (first) {
    case 'select':
      return classifySelect(tokens, i + 1, end);
    case 'values':
    case 'table':
    case 'show':
    case 'fetch':
    case 'move':
    case 'close':
      return OperationClass.Read;
    case 'with':
      return classifyWith(tokens, i + 1, end, depth);
    case 'insert':
    case 'update':
    case 'delete':
    case 'merge':
    case 'truncate':
    case 'lock':
    case 'notify':
      return OperationClass.Write;
    case 'copy':
      return classifyCopy(tokens, i + 1, end, depth);
    case 'explain':
      return classifyExplain(tokens, i + 1, end, depth);
    case 'create':
      return classifyCreate(tokens, i + 1, end);
    case 'alter':
      return classifyAlter(tokens, i + 1, end);
    case 'drop':
      return classifyDrop(tokens, i + 1, end);
    case 'comment':
    case 'reindex':
    case 'cluster':
    case 'refresh':
    case 'security':
    case 'import':
      return OperationClass.Ddl;
    case 'grant':
    case 'revoke':
    case 'reassign':
      return OperationClass.Privilege;
    case 'vacuum':
    case 'analyze':
    case 'analyse':
    case 'checkpoint':
    case 'load':
      return OperationClass.Admin;
    case 'begin':
    case 'start':
    case 'commit':
    case 'end':
    case 'rollback':
    case 'abort':
    case 'savepoint':
    case 'release':
      return OperationClass.Transaction;
    case 'prepare':
      return classifyPrepare(tokens, i + 1, end, depth);
    case 'set':
      return classifySet(tokens, i + 1, end);
    case 'reset':
      return classifyReset(tokens, i + 1, end);
    case 'discard':
    case 'deallocate':
    case 'listen':
    case 'unlisten':
      return OperationClass.SessionSetting;
    case 'declare': {
      const f = findWordAtDepth0(tokens, i + 1, end, 'for');
      return f < 0 ? OperationClass.Unknown : classifyRange(tokens, f + 1, end, depth + 1);
    }
    default:
      // execute (needs the prepared statement), do and call (run code), and anything else.
      return OperationClass.Unknown;
  }
}

/**
 * SELECT reads, except `SELECT ... INTO` (creates a table) and locking clauses
 * (`FOR UPDATE` / `FOR NO KEY UPDATE` / `FOR SHARE` / `FOR KEY SHARE`, which need UPDATE
 * privilege and block writers). `into` and `for` followed by a lock strength are looked for
 * at any depth; inside a plain query they have no other meaning.
 */
function classifySelect(tokens: readonly Token[], from: number, end: number): OperationClass {
  for (let i = from; i < end; i++) {
    const t = tokens[i]!;
    if (t.kind !== TokenKind.Word) continue;
    if (t.value === 'into') return OperationClass.Write;
    if (t.value === 'for') {
      const next = wordAt(tokens, i + 1, end);
      if (next === 'update' || next === 'share' || next === 'no' || next === 'key') return OperationClass.Write;
    }
  }
  return OperationClass.Read;
}

/**
 * WITH: walks the CTE list (`name [(cols)] AS [[NOT] MATERIALIZED] (body) [SEARCH ...]
 * [CYCLE ...]`, comma separated) and classifies each body and the main statement. Any
 * data-modifying part makes the whole statement a write. A list it cannot follow is unknown.
 */
function classifyWith(tokens: readonly Token[], from: number, end: number, depth: number): OperationClass {
  let i = from;
  if (wordAt(tokens, i, end) === 'recursive') i++;
  let write = false;
  let unknown = false;
  for (;;) {
    const name = tokens[i];
    if (i >= end || name === undefined || (name.kind !== TokenKind.Word && name.kind !== TokenKind.QuotedIdent)) {
      return OperationClass.Unknown;
    }
    i++;
    if (isPunct(tokens, i, end, '(')) {
      const close = matchingParen(tokens, i, end);
      if (close < 0) return OperationClass.Unknown;
      i = close + 1;
    }
    if (wordAt(tokens, i, end) !== 'as') return OperationClass.Unknown;
    i++;
    if (wordAt(tokens, i, end) === 'not') i++;
    if (wordAt(tokens, i, end) === 'materialized') i++;
    if (!isPunct(tokens, i, end, '(')) return OperationClass.Unknown;
    const close = matchingParen(tokens, i, end);
    if (close < 0) return OperationClass.Unknown;
    const body = classifyRange(tokens, i + 1, close, depth + 1);
    if (body === OperationClass.Write) write = true;
    else if (body !== OperationClass.Read) unknown = true;
    i = close + 1;
    // SEARCH ... SET col / CYCLE ... SET col [TO v DEFAULT v] USING col
    if (wordAt(tokens, i, end) === 'search') {
      const set = findWordAtDepth0(tokens, i, end, 'set');
      if (set < 0) return OperationClass.Unknown;
      i = set + 2;
    }
    if (wordAt(tokens, i, end) === 'cycle') {
      const using = findWordAtDepth0(tokens, i, end, 'using');
      if (using < 0) return OperationClass.Unknown;
      i = using + 2;
    }
    if (isPunct(tokens, i, end, ',')) {
      i++;
      continue;
    }
    break;
  }
  const main = classifyRange(tokens, i, end, depth + 1);
  if (unknown || main === OperationClass.Unknown) return OperationClass.Unknown;
  if (write) return OperationClass.Write;
  return main;
}

/**
 * COPY ... FROM STDIN is copy-in, COPY ... TO STDOUT copy-out. COPY to or from a server file
 * or PROGRAM reads, writes or runs things on the database host and is admin. COPY of a
 * data-modifying query (`COPY (DELETE ... RETURNING ...) TO STDOUT`) is a write.
 */
function classifyCopy(tokens: readonly Token[], from: number, end: number, depth: number): OperationClass {
  let inner: OperationClass = OperationClass.Read;
  let i = from;
  if (isPunct(tokens, i, end, '(')) {
    const close = matchingParen(tokens, i, end);
    if (close < 0) return OperationClass.Unknown;
    inner = classifyRange(tokens, i + 1, close, depth + 1);
    i = close + 1;
  }
  let dir = -1;
  let depthHere = 0;
  for (; i < end; i++) {
    const t = tokens[i]!;
    if (t.kind === TokenKind.Punct) {
      if (t.value === '(') depthHere++;
      else if (t.value === ')') depthHere--;
    } else if (depthHere === 0 && t.kind === TokenKind.Word && (t.value === 'from' || t.value === 'to')) {
      dir = i;
      break;
    }
  }
  if (dir < 0) return OperationClass.Unknown;
  const incoming = tokens[dir]!.value === 'from';
  const target = tokens[dir + 1];
  if (dir + 1 >= end || target === undefined) return OperationClass.Unknown;
  let cls: OperationClass;
  if (target.kind === TokenKind.Word && (target.value === 'stdin' || target.value === 'stdout')) {
    if ((target.value === 'stdin') !== incoming) return OperationClass.Unknown;
    cls = incoming ? OperationClass.CopyIn : OperationClass.CopyOut;
  } else if ((target.kind === TokenKind.Word && target.value === 'program') || target.kind === TokenKind.String) {
    return OperationClass.Admin;
  } else {
    return OperationClass.Unknown;
  }
  if (inner === OperationClass.Write) return OperationClass.Write;
  if (inner !== OperationClass.Read) return OperationClass.Unknown;
  return cls;
}

/** EXPLAIN only plans (read) unless ANALYZE runs the statement: then it is the statement's class. */
function classifyExplain(tokens: readonly Token[], from: number, end: number, depth: number): OperationClass {
  let i = from;
  let analyze = false;
  if (isPunct(tokens, i, end, '(')) {
    const close = matchingParen(tokens, i, end);
    if (close < 0) return OperationClass.Unknown;
    // Options: name [value], comma separated.
    let j = i + 1;
    while (j < close) {
      const name = wordAt(tokens, j, close);
      if (name === 'analyze' || name === 'analyse') {
        const value = tokens[j + 1];
        const off =
          j + 1 < close && value !== undefined &&
          ((value.kind === TokenKind.Word && (value.value === 'false' || value.value === 'off')) ||
            (value.kind === TokenKind.Number && value.value === '0'));
        if (!off) analyze = true;
      }
      while (j < close && !isPunct(tokens, j, close, ',')) j++;
      j++;
    }
    i = close + 1;
  } else {
    for (;;) {
      const w = wordAt(tokens, i, end);
      if (w === 'analyze' || w === 'analyse') analyze = true;
      else if (w !== 'verbose') break;
      i++;
    }
  }
  if (!analyze) return OperationClass.Read;
  return classifyRange(tokens, i, end, depth + 1);
}

function isRoleObject(tokens: readonly Token[], i: number, end: number): boolean {
  const w = wordAt(tokens, i, end);
  if (w === 'role' || w === 'group') return true;
  // CREATE/ALTER/DROP USER MAPPING is foreign-data DDL, not a role.
  return w === 'user' && wordAt(tokens, i + 1, end) !== 'mapping';
}

function classifyCreate(tokens: readonly Token[], from: number, end: number): OperationClass {
  return isRoleObject(tokens, from, end) ? OperationClass.Privilege : OperationClass.Ddl;
}

function classifyAlter(tokens: readonly Token[], from: number, end: number): OperationClass {
  if (isRoleObject(tokens, from, end)) return OperationClass.Privilege;
  const w = wordAt(tokens, from, end);
  if (w === 'system') return OperationClass.Admin;
  if (w === 'default' && wordAt(tokens, from + 1, end) === 'privileges') return OperationClass.Privilege;
  return OperationClass.Ddl;
}

function classifyDrop(tokens: readonly Token[], from: number, end: number): OperationClass {
  return isRoleObject(tokens, from, end) ? OperationClass.Privilege : OperationClass.Ddl;
}

/** PREPARE TRANSACTION 'id' is a transaction; PREPARE name [(types)] AS stmt is stmt's class. */
function classifyPrepare(tokens: readonly Token[], from: number, end: number, depth: number): OperationClass {
  if (wordAt(tokens, from, end) === 'transaction' && from + 1 < end && tokens[from + 1]?.kind === TokenKind.String) {
    return OperationClass.Transaction;
  }
  const as = findWordAtDepth0(tokens, from, end, 'as');
  return as < 0 ? OperationClass.Unknown : classifyRange(tokens, as + 1, end, depth + 1);
}

/** A configuration parameter name as PostgreSQL looks it up (case-insensitive). */
function parameterName(t: Token | undefined): string | undefined {
  if (t === undefined) return undefined;
  if (t.kind === TokenKind.Word) return t.value;
  if (t.kind === TokenKind.QuotedIdent && !t.unterminated && t.value.startsWith('"')) {
    return t.value.slice(1, -1).replaceAll('""', '"').toLowerCase();
  }
  return undefined;
}

/** `role` / `session authorization` / `session_authorization` at i: changes the effective role. */
function isRoleParameter(tokens: readonly Token[], i: number, end: number): boolean {
  if (i >= end) return false;
  const name = parameterName(tokens[i]);
  if (name === 'role' || name === 'session_authorization') return true;
  return name === 'session' && tokens[i]?.kind === TokenKind.Word && wordAt(tokens, i + 1, end) === 'authorization';
}

/** SET is a session setting, except SET [SESSION | LOCAL] ROLE / SESSION AUTHORIZATION: privilege. */
function classifySet(tokens: readonly Token[], from: number, end: number): OperationClass {
  let i = from;
  const scope = wordAt(tokens, i, end);
  if (isRoleParameter(tokens, i, end)) return OperationClass.Privilege;
  if (scope === 'session' || scope === 'local') i++;
  return isRoleParameter(tokens, i, end) ? OperationClass.Privilege : OperationClass.SessionSetting;
}

function classifyReset(tokens: readonly Token[], from: number, end: number): OperationClass {
  return isRoleParameter(tokens, from, end) ? OperationClass.Privilege : OperationClass.SessionSetting;
}

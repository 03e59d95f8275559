/**
 * The analysis of one MySQL / MariaDB statement: its operation classes, objects, hazards,
 * functions, result lineage and write lineage.
 *
 * The statement's kind is read from its leading keywords; the tokens decide its classes and
 * hazards; node-sql-parser's tree, for the statements that need one, gives the objects,
 * columns, functions and lineage. That split follows what each is good at:
 * - the grammar of node-sql-parser covers queries and DML well but rejects much of MySQL's
 *   administrative, privilege and DDL syntax (CREATE/ALTER/DROP USER, REVOKE, SET ROLE,
 *   SET PASSWORD, KILL, FLUSH, INSTALL PLUGIN, SHUTDOWN, PREPARE/EXECUTE, HANDLER, DROP
 *   TEMPORARY TABLE, ALTER TABLE ... ALTER COLUMN ... DROP DEFAULT ...), and misreads operator
 *   precedence (see expr.ts). Statements whose class, objects and hazards are fixed by their
 *   keywords and names are read from the tokens, with the grammar of the server;
 * - statements whose objects come from expressions and subqueries (SELECT, INSERT, UPDATE,
 *   DELETE, SET with values, CALL, DO, CREATE TABLE ... SELECT) need the tree. When the
 *   parser rejects one, the statement is `unknown` (never harmless) with the parser's message
 *   as `unanalysable`, and it keeps the classes and hazards its tokens show.
 *
 * Whatever the parser says, these come from the tokens of every statement that runs
 * expressions: functions with side effects (`LOAD_FILE`, `sys_exec`...), `INTO OUTFILE` and
 * `INTO DUMPFILE`, an always-true WHERE.
 *
 * Statements that are not understood (malformed, or rejected by the parser) are also scanned
 * piece by piece (at each `;` inside them) for what a statement starting there would do, so
 * that a hazard hidden in text the server may read differently is still reported.
 */
import { Hazard, OperationClass, type ResultLineage, type WriteLineage } from '@sluice/core';
import { compoundParts } from './compound.js';
import type { ExprOptions } from './expr.js';
import { Facts, type ObjectKind } from './facts.js';
import { functionEffect } from './functions.js';
import { lex, stringValue, TokenKind, type LexOptions, type Token } from './lexer.js';
import { resultLineage } from './lineage.js';
import { splitTokens, type ScannedStatement } from './normalize.js';
import { parseTokens, type AstNode, type Dialect, type ParserInput } from './parse.js';
import { dmlBounds, type TruthContext } from './truth.js';
import { isObj } from './tree.js';
import { Walker } from './walk.js';
import { untoldWrite, writeLineage } from './write-lineage.js';

export const EXECUTE_UNSEEN = 'EXECUTE of a prepared statement the analyzer has not seen';

/** Nesting limit for statements inside statements (PREPARE, EXPLAIN, compound statements). */
const MAX_DEPTH = 16;

export interface Context {
  readonly text: string;
  readonly tokens: readonly Token[];
  readonly dialect: Dialect;
  readonly lex: LexOptions;
  readonly expr: ExprOptions;
  readonly depth: number;
}

/** What one statement's analysis gives, beyond its facts. */
export interface StatementResult {
  readonly facts: Facts;
  readonly lineage?: ResultLineage;
  /** The tables whose rows the statement writes, with the lineage of the written columns. */
  readonly writes?: readonly WriteLineage[];
  /** PREPARE name FROM 'text': the prepared statement, analysed. */
  readonly prepared?: { readonly name: string; readonly result: StatementResult; readonly normalized: string; readonly command: string };
}

/**
 * SHOW, EXPLAIN, DESCRIBE and HELP return rows from the server's own state (warnings quoting
 * values, column defaults, other sessions' statements): no lineage, so that masking scans them
 * with the content detectors rather than taking them for rows that draw on nothing.
 */
const SERVER_ROWS: ResultLineage | undefined = undefined;

const DROP_TABLE_KINDS = new Set(['table', 'tables', 'view', 'sequence']);
const ROUTINE_KINDS = new Set(['procedure', 'function', 'trigger', 'event']);
const DDL_OTHER_KINDS = new Set(['tablespace', 'server', 'logfile', 'spatial', 'resource', 'package']);

/** Words that can start a statement inside EXPLAIN, ANALYZE (MariaDB) or SET STATEMENT ... FOR. */
const EXPLAINABLE = new Set(['select', 'with', 'table', 'values', 'insert', 'replace', 'update', 'delete']);

class StatementAnalyzer {
  readonly facts = new Facts();
  readonly #ctx: Context;
  readonly #start: number;
  readonly #end: number;
  /** Only tokens are read (the scan of a statement that is not understood). */
  readonly #keywordsOnly: boolean;
  lineage: ResultLineage | undefined;
  writes: readonly WriteLineage[] | undefined;
  prepared: StatementResult['prepared'];

  constructor(ctx: Context, start: number, end: number, keywordsOnly = false) {
    this.#ctx = ctx;
    this.#start = start;
    this.#end = end;
    this.#keywordsOnly = keywordsOnly;
  }

  // --- token helpers -------------------------------------------------------------------------

  tok(i: number): Token | undefined {
    return i < this.#end ? this.#ctx.tokens[i] : undefined;
  }

  word(i: number): string | undefined {
    const t = this.tok(i);
    return t !== undefined && t.kind === TokenKind.Word ? t.value : undefined;
  }

  punct(i: number, v: string): boolean {
    const t = this.tok(i);
    return t !== undefined && t.kind === TokenKind.Punct && t.value === v;
  }

  /** An identifier (unquoted or quoted), not a reserved word. */
  ident(i: number): string | undefined {
    const t = this.tok(i);
    if (t === undefined) return undefined;
    if (t.kind === TokenKind.QuotedIdent) return t.value;
    return t.kind === TokenKind.Word ? t.value : undefined;
  }

  /** `name` or `schema.name` at i: the name, its schema, and the index after it. */
  qualified(i: number): { schema: string | undefined; name: string; next: number } | undefined {
    const first = this.ident(i);
    if (first === undefined) return undefined;
    if (this.punct(i + 1, '.')) {
      const second = this.ident(i + 2);
      if (second !== undefined) return { schema: first, name: second, next: i + 3 };
    }
    return { schema: undefined, name: first, next: i + 1 };
  }

  /** The index of the first word in `words` at parenthesis depth 0 from i, or -1. */
  find(i: number, words: ReadonlySet<string> | string): number {
    let depth = 0;
    for (; i < this.#end; i++) {
      const t = this.#ctx.tokens[i]!;
      if (t.kind === TokenKind.Punct) {
        if (t.value === '(') depth++;
        else if (t.value === ')') depth--;
        continue;
      }
      if (depth === 0 && t.kind === TokenKind.Word && (typeof words === 'string' ? t.value === words : words.has(t.value))) return i;
    }
    return -1;
  }

  /** A user or role name: `name`, `'name'@'host'`, `` `name` ``, CURRENT_USER. */
  account(i: number): { name: string | undefined; next: number } | undefined {
    const t = this.tok(i);
    if (t === undefined) return undefined;
    let name: string | undefined;
    if (t.kind === TokenKind.Word || t.kind === TokenKind.QuotedIdent) name = t.value;
    else if (t.kind === TokenKind.String) {
      name = stringValue(this.#ctx.text, t, this.#ctx.lex);
      // The name is a literal: the analysis shows its value.
      this.facts.literalDependent = true;
    } else return undefined;
    let next = i + 1;
    if (this.word(next) === 'current_user' || name === 'current_user') {
      if (this.punct(next, '(') && this.punct(next + 1, ')')) next += 2;
      return { name: undefined, next };
    }
    // @'host', @host
    const host = this.tok(next);
    if (host !== undefined && host.kind === TokenKind.Variable) next++;
    return { name, next };
  }

  /** Accounts separated by commas from i; each becomes a role object. */
  accounts(i: number, stop: ReadonlySet<string> = new Set()): number {
    for (;;) {
      if (stop.has(this.word(i) ?? '')) return i;
      const a = this.account(i);
      if (a === undefined) return i;
      if (a.name !== undefined) this.facts.object(undefined, a.name, 'role', 'ddl');
      i = a.next;
      // Skip options up to the next comma (IDENTIFIED BY ..., WITH ADMIN OPTION ...).
      while (i < this.#end && !this.punct(i, ',') && !stop.has(this.word(i) ?? '')) i++;
      if (!this.punct(i, ',')) return i;
      i++;
    }
  }

  // --- token-level facts ---------------------------------------------------------------------

  /** Functions with side effects and `INTO OUTFILE / DUMPFILE`, from the tokens. */
  tokenEffects(from = this.#start, to = this.#end): void {
    const tokens = this.#ctx.tokens;
    for (let i = from; i < to; i++) {
      const t = tokens[i]!;
      if ((t.kind === TokenKind.Word || t.kind === TokenKind.QuotedIdent) && i + 1 < to && this.punct(i + 1, '(')) {
        const name = t.kind === TokenKind.Word ? t.value : t.value.toLowerCase();
        const effect = functionEffect(name);
        if (effect !== undefined) {
          this.facts.op(effect.op);
          if (effect.hazard !== undefined) this.facts.hazard(effect.hazard);
        }
      }
      if (t.kind === TokenKind.Word && (t.value === 'next' || t.value === 'previous') && this.word(i + 1) === 'value' && this.word(i + 2) === 'for') {
        // MariaDB: NEXT VALUE FOR s advances the sequence.
        if (t.value === 'next') this.facts.op(OperationClass.Write);
      }
      if (t.kind === TokenKind.Word && t.value === 'into') {
        const w = this.word(i + 1);
        if (w === 'outfile' || w === 'dumpfile') {
          this.facts.op(OperationClass.Write);
          this.facts.hazard(Hazard.ServerFile);
        }
      }
    }
  }

  /** The tree of the statement's tokens (or of [from, end) with `prefix` before them). */
  parse(from = this.#start, to = this.#end, prefix?: string): { ast: AstNode; input: ParserInput } | string {
    if (this.#keywordsOnly) return 'not parsed';
    const result = parseTokens(this.#ctx.tokens, from, to, this.#ctx.dialect, prefix);
    if (!result.ok) return result.error;
    return { ast: result.ast, input: result.input };
  }

  /** Walks a parsed tree into the facts. */
  walk(ast: AstNode, input: ParserInput): void {
    try {
      new Walker(this.facts, { natural: input.natural }).statement(ast);
    } catch (e) {
      this.facts.unknown(`analysis failed: ${e instanceof Error ? e.name : 'error'}`);
    }
  }

  /** The write lineage of a parsed statement that writes rows. */
  writeLineage(ast: AstNode, input: ParserInput): void {
    this.writes = writeLineage(ast, {
      natural: input.natural,
      dialect: this.#ctx.dialect,
      ...(input.rowAlias === undefined ? {} : { rowAlias: input.rowAlias }),
    });
  }

  // --- nested statements ---------------------------------------------------------------------

  /** Analyses tokens [from, to) as a statement of their own. */
  nested(from: number, to: number, ctx: Context = this.#ctx): StatementResult {
    if (ctx.depth >= MAX_DEPTH) {
      const f = new Facts();
      f.unknown('statements nested too deeply');
      return { facts: f };
    }
    const scan = splitTokens(ctx.tokens.slice(from, to));
    const inner: Context = { ...ctx, tokens: scan.tokens, depth: ctx.depth + 1 };
    if (scan.statements.length !== 1) {
      const f = new Facts();
      f.unknown(scan.statements.length === 0 ? 'no statement' : 'several statements where one is expected');
      for (const s of scan.statements) f.merge(analyzeStatement(inner, s, this.#keywordsOnly).facts);
      return { facts: f };
    }
    return analyzeStatement(inner, scan.statements[0]!, this.#keywordsOnly);
  }

  // --- the statement -------------------------------------------------------------------------

  analyze(): void {
    const s = this.#start;
    let w0 = this.word(s);
    if (w0 === undefined && this.punct(s, '(')) w0 = '(';
    // `label:` before a compound statement (MariaDB).
    if (this.ident(s) !== undefined && this.punct(s + 1, ':')) w0 = 'begin';
    switch (w0) {
      case 'select':
      case 'table':
      case 'values':
      case '(':
        return this.query();
      case 'with': {
        const main = this.afterWith(s);
        const verb = this.word(main);
        if (verb === 'update' || verb === 'delete') return this.dml(verb);
        return this.query();
      }
      case 'insert':
      case 'replace':
        return this.insert();
      case 'update':
      case 'delete':
        return this.dml(w0);
      case 'do':
        return this.doStatement();
      case 'call':
        return this.call();
      case 'set':
        return this.set();
      case 'show':
        return this.show();
      case 'help':
        this.facts.op(OperationClass.Read);
        this.lineage = SERVER_ROWS;
        return;
      case 'explain':
      case 'describe':
      case 'desc':
        return this.explain();
      case 'analyze':
        return this.analyzeStatement();
      case 'use': {
        this.facts.op(OperationClass.SessionSetting);
        const db = this.ident(s + 1);
        if (db !== undefined) this.facts.object(undefined, db, 'schema', 'read');
        return;
      }
      case 'begin':
        if (this.word(s + 1) === 'not' || this.punct(s + 1, ':')) return this.compound();
        this.facts.op(OperationClass.Transaction);
        return;
      case 'if':
      case 'case':
      case 'loop':
      case 'while':
      case 'repeat':
      case 'for':
        return this.compound();
      case 'start': {
        const w1 = this.word(s + 1);
        if (w1 === 'transaction') this.facts.op(OperationClass.Transaction);
        else if (w1 === 'slave' || w1 === 'replica' || w1 === 'group_replication' || w1 === 'all') this.facts.op(OperationClass.Admin);
        else this.facts.unknown('statement not recognised');
        return;
      }
      case 'stop':
        this.facts.op(OperationClass.Admin);
        return;
      case 'commit':
      case 'rollback':
      case 'savepoint':
      case 'release':
      case 'xa':
        this.facts.op(OperationClass.Transaction);
        return;
      case 'lock':
        return this.lock();
      case 'unlock':
        this.facts.op(this.word(s + 1) === 'instance' ? OperationClass.Admin : OperationClass.Transaction);
        return;
      case 'truncate': {
        this.facts.op(OperationClass.Write);
        this.facts.hazard(Hazard.Truncate);
        const i = this.word(s + 1) === 'table' ? s + 2 : s + 1;
        const t = this.qualified(i);
        if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'write');
        return;
      }
      case 'create':
        return this.create();
      case 'alter':
        return this.alter();
      case 'drop':
        return this.drop();
      case 'rename':
        return this.rename();
      case 'grant':
      case 'revoke':
        return this.grant();
      case 'load':
        return this.load();
      case 'prepare':
        return this.prepare();
      case 'execute':
        return this.execute();
      case 'deallocate':
        this.facts.op(OperationClass.SessionSetting);
        this.facts.deallocate = this.ident(this.word(s + 1) === 'prepare' ? s + 2 : s + 1) ?? '';
        return;
      case 'handler':
        return this.handler();
      case 'kill':
      case 'flush':
      case 'purge':
      case 'shutdown':
      case 'restart':
      case 'cache':
      case 'uninstall':
        this.facts.op(OperationClass.Admin);
        return;
      case 'reset':
        this.facts.op(OperationClass.Admin);
        // RESET PERSIST removes settings persisted for the next start.
        if (this.word(s + 1) === 'persist') this.facts.hazard(Hazard.AlterSystem);
        return;
      case 'install':
        // INSTALL PLUGIN / COMPONENT loads code into the server.
        this.facts.op(OperationClass.Admin);
        this.facts.hazard(Hazard.CreateExtension);
        return;
      case 'change':
        // CHANGE MASTER / REPLICATION SOURCE / REPLICATION FILTER: the server's replication setup.
        this.facts.op(OperationClass.Admin);
        this.facts.hazard(Hazard.AlterSystem);
        return;
      case 'optimize':
      case 'repair':
      case 'check':
        return this.maintenance(OperationClass.Admin, 'ddl');
      case 'checksum':
        return this.maintenance(OperationClass.Read, 'read');
      case 'binlog':
        // BINLOG 'base64 events': replays binary-log events, any change they hold.
        this.facts.op(OperationClass.Admin);
        this.facts.unknown('BINLOG replays events the analyzer cannot see');
        this.facts.hazard(Hazard.DynamicSql);
        return;
      case 'clone':
        this.facts.op(OperationClass.Admin);
        if (this.word(s + 1) === 'local') this.facts.hazard(Hazard.ServerFile);
        return;
      case 'import':
        // IMPORT TABLE FROM 'file.sdi': reads files of the server.
        this.facts.op(OperationClass.Ddl);
        this.facts.hazard(Hazard.ServerFile);
        return;
      case 'signal':
      case 'resignal':
      case 'get':
        this.facts.op(OperationClass.Read);
        return;
      default:
        this.facts.unknown(w0 === undefined ? 'statement not recognised' : `statement ${w0.toUpperCase()} is not recognised`);
    }
  }

  /** The index after a `WITH ...` clause at i (of its main statement). */
  afterWith(i: number): number {
    if (this.word(i) !== 'with') return i;
    i++;
    if (this.word(i) === 'recursive') i++;
    for (;;) {
      if (this.ident(i) === undefined) return i;
      i++;
      if (this.punct(i, '(')) i = this.closing(i) + 1;
      if (this.word(i) !== 'as') return i;
      i++;
      if (!this.punct(i, '(')) return i;
      i = this.closing(i) + 1;
      if (!this.punct(i, ',')) return i;
      i++;
    }
  }

  closing(open: number): number {
    let depth = 0;
    for (let i = open; i < this.#end; i++) {
      if (this.punct(i, '(')) depth++;
      else if (this.punct(i, ')') && --depth === 0) return i;
    }
    return this.#end;
  }

  // --- queries and DML -----------------------------------------------------------------------

  query(): void {
    this.facts.op(OperationClass.Read);
    this.tokenEffects();
    const parsed = this.parse();
    if (typeof parsed === 'string') {
      this.facts.unknown(parsed);
      return;
    }
    const { ast, input } = parsed;
    this.walk(ast, input);
    if (input.locking) this.facts.op(OperationClass.Write);
    if (input.into === undefined) this.lineage = resultLineage(ast, { natural: input.natural });
  }

  insert(): void {
    this.facts.op(OperationClass.Write);
    this.tokenEffects();
    // The target, from the tokens: INSERT [modifiers] [INTO] name.
    let i = this.#start + 1;
    while (['low_priority', 'delayed', 'high_priority', 'ignore', 'into'].includes(this.word(i) ?? '')) i++;
    const t = this.qualified(i);
    const parsed = this.parse();
    if (typeof parsed === 'string') {
      if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'write');
      this.facts.unknown(parsed);
      return;
    }
    this.walk(parsed.ast, parsed.input);
    this.writeLineage(parsed.ast, parsed.input);
    if (isObj(parsed.ast['returning'])) this.lineage = resultLineage(parsed.ast);
  }

  dml(verb: 'update' | 'delete'): void {
    this.facts.op(OperationClass.Write);
    this.tokenEffects();
    const ctx: TruthContext = { literal: false };
    const bounds = dmlBounds({ text: this.#ctx.text, tokens: this.#ctx.tokens, literals: this.#ctx.lex }, this.#start, this.#end, this.#ctx.expr, ctx);
    if (ctx.literal) this.facts.literalDependent = true;
    if (bounds.unbounded) this.facts.hazard(verb === 'delete' ? Hazard.DeleteWithoutWhere : Hazard.UpdateWithoutWhere);
    const parsed = this.parse();
    if (typeof parsed === 'string') {
      this.facts.unknown(parsed);
      return;
    }
    this.walk(parsed.ast, parsed.input);
    this.writeLineage(parsed.ast, parsed.input);
    if (isObj(parsed.ast['returning'])) this.lineage = resultLineage(parsed.ast);
  }

  doStatement(): void {
    // DO expr, ...: evaluates the expressions, returns nothing.
    this.facts.op(OperationClass.Read);
    this.tokenEffects();
    const parsed = this.parse();
    if (typeof parsed === 'string') this.facts.unknown(parsed);
    else this.walk(parsed.ast, parsed.input);
  }

  call(): void {
    // A procedure may do anything its definer may; its result sets are not known here.
    this.facts.op(OperationClass.Write);
    this.tokenEffects();
    const p = this.qualified(this.#start + 1);
    if (p !== undefined && p.name === 'execute_prepared_stmt' && (p.schema === undefined || p.schema === 'sys')) {
      // sys.execute_prepared_stmt('text') prepares and runs its argument.
      const arg = this.tok(p.next + 1);
      if (this.punct(p.next, '(') && arg !== undefined && arg.kind === TokenKind.String && this.punct(p.next + 2, ')')) {
        this.facts.fn(`${p.schema === undefined ? '' : 'sys.'}execute_prepared_stmt`);
        this.preparedText(undefined, arg);
        return;
      }
      this.facts.unknown('sys.execute_prepared_stmt() of a statement text the analyzer cannot see');
      this.facts.hazard(Hazard.DynamicSql);
      return;
    }
    const parsed = this.parse();
    if (typeof parsed === 'string') {
      const p = this.qualified(this.#start + 1);
      if (p !== undefined) this.facts.fn((p.schema === undefined ? p.name : `${p.schema}.${p.name}`).toLowerCase());
      if (this.readsInside(this.#start + 1)) this.facts.unknown(parsed);
      return;
    }
    this.walk(parsed.ast, parsed.input);
  }

  /** True when tokens from i hold a subquery or a function call (something that reads). */
  readsInside(i: number): boolean {
    for (; i < this.#end; i++) {
      const t = this.#ctx.tokens[i]!;
      if (t.kind === TokenKind.Word && (t.value === 'select' || ((t.value === 'table' || t.value === 'values') && this.punct(i - 1, '(')))) return true;
      if ((t.kind === TokenKind.Word || t.kind === TokenKind.QuotedIdent) && this.punct(i + 1, '(') && !['in', 'values', 'row', 'interval'].includes(t.value)) return true;
    }
    return false;
  }

  // --- SET -------------------------------------------------------------------------------------

  set(): void {
    const s = this.#start;
    const w1 = this.word(s + 1);
    const w2 = this.word(s + 2);
    if (w1 === 'password' || w1 === 'role' || (w1 === 'default' && w2 === 'role')) {
      this.facts.op(OperationClass.Privilege);
      this.facts.hazard(Hazard.RoleChange);
      if (w1 === 'role') {
        const name = this.ident(s + 2);
        if (name !== undefined && !['all', 'none', 'default'].includes(name)) this.accounts(s + 2, new Set(['except']));
      }
      return;
    }
    if (w1 === 'statement') {
      // MariaDB: SET STATEMENT var = value [, ...] FOR statement
      this.facts.op(OperationClass.SessionSetting);
      const f = this.find(s + 2, 'for');
      if (f < 0) {
        this.facts.unknown('SET STATEMENT without FOR');
        return;
      }
      this.assignedVariables(s + 2, f);
      const inner = this.nested(f + 1, this.#end);
      this.facts.merge(inner.facts);
      this.lineage = inner.lineage;
      this.writes = inner.writes;
      return;
    }
    if (w1 === 'names' || w1 === 'charset' || (w1 === 'character' && w2 === 'set')) {
      this.facts.op(OperationClass.SessionSetting);
      this.setting(w1 === 'names' ? 'names' : 'character set');
      return;
    }
    this.assignedVariables(s + 1, this.#end);
    const global = this.globalScope();
    if (global) {
      this.facts.op(OperationClass.Admin);
      this.facts.hazard(Hazard.AlterSystem);
    } else {
      this.facts.op(OperationClass.SessionSetting);
    }
    if (this.find(s + 1, 'transaction') === s + 1 || this.find(s + 1, 'transaction') === s + 2) return;
    this.tokenEffects();
    if (!this.readsInside(s + 1)) return;
    // Values that read (a subquery, a function): the tree says what.
    const parsed = this.parse();
    if (typeof parsed === 'string') this.facts.unknown(parsed);
    else this.walk(parsed.ast, parsed.input);
  }

  setting(name: string): void {
    if (!this.facts.settings.includes(name)) this.facts.settings.push(name);
  }

  /** The system variables assigned by `SET a = 1, GLOBAL b = 2, @@session.c = 3` (not user variables). */
  assignedVariables(from: number, to: number): void {
    let atStart = true;
    let depth = 0;
    for (let i = from; i < to; i++) {
      const t = this.#ctx.tokens[i]!;
      if (t.kind === TokenKind.Punct) {
        if (t.value === '(') depth++;
        else if (t.value === ')') depth--;
        else if (t.value === ',' && depth === 0) atStart = true;
        continue;
      }
      if (!atStart || depth > 0) continue;
      if (t.kind === TokenKind.Word && ['global', 'session', 'local', 'persist', 'persist_only'].includes(t.value)) continue;
      if (t.kind === TokenKind.Word && t.value !== 'transaction') this.setting(t.value);
      else if (t.kind === TokenKind.Variable && t.value.startsWith('@@')) {
        const name = t.value.slice(2);
        const dot = name.indexOf('.');
        this.setting(dot >= 0 && /^(global|session|local|persist|persist_only)$/.test(name.slice(0, dot)) ? name.slice(dot + 1) : name);
      }
      atStart = false;
    }
  }

  /** SET GLOBAL / PERSIST / PERSIST_ONLY, or `@@global.x`, `@@persist.x` for any assignment. */
  globalScope(): boolean {
    let depth = 0;
    for (let i = this.#start + 1; i < this.#end; i++) {
      const t = this.#ctx.tokens[i]!;
      if (t.kind === TokenKind.Punct) {
        if (t.value === '(') depth++;
        else if (t.value === ')') depth--;
        continue;
      }
      if (depth > 0) continue;
      const atStart = i === this.#start + 1 || this.punct(i - 1, ',');
      if (atStart && t.kind === TokenKind.Word && (t.value === 'global' || t.value === 'persist' || t.value === 'persist_only')) return true;
      if (atStart && t.kind === TokenKind.Variable && /^@@(global|persist|persist_only)\b/.test(t.value)) return true;
    }
    return false;
  }

  // --- SHOW, EXPLAIN, DESCRIBE -----------------------------------------------------------------

  show(): void {
    this.facts.op(OperationClass.Read);
    this.lineage = SERVER_ROWS;
    // SHOW ... WHERE expr evaluates it.
    this.tokenEffects();
    const s = this.#start;
    let i = s + 1;
    while (['full', 'extended', 'global', 'session', 'storage'].includes(this.word(i) ?? '')) i++;
    const w = this.word(i);
    let target: number | undefined;
    if (w === 'create' && (this.word(i + 1) === 'table' || this.word(i + 1) === 'view')) target = i + 2;
    else if (w === 'columns' || w === 'fields' || w === 'index' || w === 'indexes' || w === 'keys') {
      const from = this.word(i + 1);
      if (from === 'from' || from === 'in') target = i + 2;
    }
    if (target === undefined) return;
    const t = this.qualified(target);
    if (t === undefined) return;
    let schema = t.schema;
    const from = this.word(t.next);
    if (schema === undefined && (from === 'from' || from === 'in')) schema = this.ident(t.next + 1);
    this.facts.object(schema, t.name, 'table', 'read');
  }

  explain(): void {
    const s = this.#start;
    let i = s + 1;
    let runs = false;
    // EXPLAIN [FORMAT = x] [ANALYZE] [EXTENDED | PARTITIONS] [INTO @var] [FOR CONNECTION n]
    for (;;) {
      const w = this.word(i);
      if (w === 'format') {
        i += this.tok(i + 1)?.kind === TokenKind.Operator ? 3 : 2;
      } else if (w === 'analyze') {
        runs = true;
        i++;
      } else if (w === 'extended' || w === 'partitions' || w === 'verbose') {
        i++;
      } else if (w === 'into' && this.tok(i + 1)?.kind === TokenKind.Variable) {
        i += 2;
      } else {
        break;
      }
    }
    this.lineage = SERVER_ROWS;
    if (this.word(i) === 'for' && this.word(i + 1) === 'connection') {
      this.facts.op(OperationClass.Read);
      return;
    }
    const w = this.word(i);
    if ((w !== undefined && EXPLAINABLE.has(w)) || this.punct(i, '(')) {
      const inner = this.nested(i, this.#end);
      if (runs) {
        // EXPLAIN ANALYZE runs the statement.
        this.facts.merge(inner.facts);
        this.writes = inner.writes;
      } else {
        this.facts.merge(inner.facts, { asRead: true });
        for (const u of inner.facts.unanalysable) this.facts.unknown(u);
      }
      return;
    }
    // DESCRIBE t [column]: the table's definition.
    this.facts.op(OperationClass.Read);
    const t = this.qualified(i);
    if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'read');
  }

  /** ANALYZE TABLE (statistics), or MariaDB's ANALYZE statement (runs it and explains). */
  analyzeStatement(): void {
    const s = this.#start;
    let i = s + 1;
    if (this.word(i) === 'format') i += this.tok(i + 1)?.kind === TokenKind.Operator ? 3 : 2;
    const w = this.word(i);
    // ANALYZE TABLE t is the maintenance statement, not a TABLE statement.
    if ((w !== undefined && w !== 'table' && EXPLAINABLE.has(w)) || this.punct(i, '(')) {
      this.lineage = SERVER_ROWS;
      const inner = this.nested(i, this.#end);
      this.facts.merge(inner.facts);
      this.writes = inner.writes;
      return;
    }
    this.maintenance(OperationClass.Admin, 'ddl');
  }

  /** OPTIMIZE / REPAIR / CHECK / CHECKSUM / ANALYZE [NO_WRITE_TO_BINLOG | LOCAL] TABLE t, ... */
  maintenance(op: OperationClass, access: 'read' | 'ddl'): void {
    this.facts.op(op);
    let i = this.#start + 1;
    while (['no_write_to_binlog', 'local'].includes(this.word(i) ?? '')) i++;
    if (this.word(i) !== 'table' && this.word(i) !== 'tables') return;
    i++;
    for (;;) {
      const t = this.qualified(i);
      if (t === undefined) return;
      this.facts.object(t.schema, t.name, 'table', access);
      if (!this.punct(t.next, ',')) return;
      i = t.next + 1;
    }
  }

  // --- DDL -----------------------------------------------------------------------------------

  /** `[IF [NOT] EXISTS]` at i: the index after it. */
  ifExists(i: number): number {
    if (this.word(i) === 'if' && this.word(i + 1) === 'not' && this.word(i + 2) === 'exists') return i + 3;
    if (this.word(i) === 'if' && this.word(i + 1) === 'exists') return i + 2;
    return i;
  }

  /** Comma-separated qualified names from i, each an object. */
  names(i: number, kind: ObjectKind, access: 'read' | 'write' | 'ddl'): void {
    for (;;) {
      const t = this.qualified(i);
      if (t === undefined) return;
      this.facts.object(t.schema, t.name, kind, access);
      if (!this.punct(t.next, ',')) return;
      i = t.next + 1;
    }
  }

  /** Skips `OR REPLACE`, `ALGORITHM = x`, `DEFINER = user`, `SQL SECURITY x`, AGGREGATE, TEMPORARY... */
  skipCreateOptions(i: number): number {
    for (;;) {
      const w = this.word(i);
      if (w === 'or' && this.word(i + 1) === 'replace') i += 2;
      else if ((w === 'algorithm' || w === 'definer') && this.tok(i + 1)?.kind === TokenKind.Operator) {
        const a = w === 'definer' ? this.account(i + 2) : undefined;
        i = a?.next ?? i + 3;
      } else if (w === 'sql' && this.word(i + 1) === 'security') i += 3;
      else if (w === 'aggregate' || w === 'temporary' || w === 'online' || w === 'offline' || w === 'ignore' || w === 'unique' || w === 'fulltext' || w === 'spatial') i++;
      else return i;
    }
  }

  create(): void {
    const s = this.#start;
    const i = this.skipCreateOptions(s + 1);
    const kind = this.word(i);
    // MariaDB: CREATE OR REPLACE TABLE / SEQUENCE / DATABASE drops what it replaces first.
    if (this.word(s + 1) === 'or' && this.word(s + 2) === 'replace') {
      if (kind === 'table' || kind === 'sequence') this.facts.hazard(Hazard.DropTable);
      else if (kind === 'database' || kind === 'schema') this.facts.hazard(Hazard.DropDatabase);
    }
    switch (kind) {
      case 'table': {
        this.facts.op(OperationClass.Ddl);
        const t = this.qualified(this.ifExists(i + 1));
        if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'ddl');
        this.tableFiles(i + 1);
        // DEFAULT (expr) and generated columns are evaluated for the rows of CREATE ... SELECT.
        this.tokenEffects();
        const like = this.find(i + 1, 'like');
        if (like >= 0) {
          const src = this.qualified(like + 1);
          if (src !== undefined) {
            this.facts.op(OperationClass.Read);
            this.facts.object(src.schema, src.name, 'table', 'read');
          }
        }
        // CREATE TABLE ... [AS] SELECT: writes the rows the query reads.
        if (this.find(i + 1, new Set(['select', 'with', 'values', 'table'])) < 0 && !this.hasSubquery(i + 1)) return;
        this.facts.op(OperationClass.Write);
        const parsed = this.parse();
        if (typeof parsed === 'string') {
          this.facts.unknown(parsed);
        } else {
          this.walk(parsed.ast, parsed.input);
          this.writeLineage(parsed.ast, parsed.input);
        }
        return;
      }
      case 'view': {
        // The query runs when the view is read, not now.
        this.facts.op(OperationClass.Ddl);
        const t = this.qualified(this.ifExists(i + 1));
        if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'ddl');
        return;
      }
      case 'index': {
        this.facts.op(OperationClass.Ddl);
        const on = this.find(i + 1, 'on');
        const t = on < 0 ? undefined : this.qualified(on + 1);
        if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'ddl');
        return;
      }
      case 'database':
      case 'schema': {
        this.facts.op(OperationClass.Ddl);
        const name = this.ident(this.ifExists(i + 1));
        if (name !== undefined) this.facts.object(undefined, name, 'schema', 'ddl');
        return;
      }
      case 'user':
      case 'role':
        this.facts.op(OperationClass.Privilege);
        this.facts.hazard(Hazard.RoleChange);
        this.accounts(this.ifExists(i + 1), new Set(['identified', 'default', 'require', 'with', 'password', 'account', 'comment', 'attribute']));
        return;
      case 'procedure':
      case 'function':
      case 'trigger':
      case 'event':
        return this.routine(kind, i);
      case 'sequence':
      default:
        if (kind !== undefined && (kind === 'sequence' || DDL_OTHER_KINDS.has(kind))) {
          this.facts.op(OperationClass.Ddl);
          if (kind === 'sequence') {
            const t = this.qualified(this.ifExists(i + 1));
            if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'ddl');
          }
          return;
        }
        this.facts.unknown(`CREATE ${kind?.toUpperCase() ?? ''} is not recognised`.trim());
    }
  }

  /**
   * Table options that put a table's data in a file of the server chosen by the statement:
   * DATA / INDEX DIRECTORY, and MariaDB's CONNECT engine (FILE_NAME = '/etc/passwd' reads it).
   */
  tableFiles(from: number): void {
    for (let i = from; i < this.#end; i++) {
      const w = this.word(i);
      const next = this.word(i + 1);
      const value = this.tok(i + 1)?.kind === TokenKind.Operator ? this.word(i + 2) : next;
      if (((w === 'data' || w === 'index') && next === 'directory') || w === 'file_name' || (w === 'engine' && value === 'connect')) {
        this.facts.hazard(Hazard.ServerFile);
      }
    }
  }

  /** True when tokens from i hold `(SELECT` (a subquery). */
  hasSubquery(i: number): boolean {
    for (; i + 1 < this.#end; i++) if (this.punct(i, '(') && (this.word(i + 1) === 'select' || this.word(i + 1) === 'with')) return true;
    return false;
  }

  /** CREATE PROCEDURE / FUNCTION / TRIGGER / EVENT: the body does not run now (an event's will, on its own). */
  routine(kind: string, i: number): void {
    this.facts.op(OperationClass.Ddl);
    const t = this.qualified(this.ifExists(i + 1));
    if (kind === 'function' && this.find(i + 1, 'soname') >= 0) {
      // A loadable function: code from a shared library.
      this.facts.op(OperationClass.Admin);
      this.facts.hazard(Hazard.CreateExtension);
    }
    if (t !== undefined) this.facts.object(t.schema, t.name, kind === 'trigger' || kind === 'event' ? 'other' : 'function', 'ddl');
    if (kind === 'trigger') {
      const on = this.find(i + 1, 'on');
      const table = on < 0 ? undefined : this.qualified(on + 1);
      if (table !== undefined) this.facts.object(table.schema, table.name, 'table', 'ddl');
    }
    if (kind === 'event') this.eventBody(i + 1);
  }

  /**
   * An event's body runs later without passing through the gateway again: its classes and
   * hazards are the CREATE EVENT's (the body of a procedure, function or trigger runs when it
   * is called or its table is written, and is not analysed, as in the PostgreSQL dialect).
   */
  eventBody(from: number): void {
    const d = this.find(from, 'do');
    if (d < 0) return;
    const body = compoundParts(this.#ctx.tokens, d + 1, this.#end);
    if (body === undefined) {
      this.facts.merge(this.nested(d + 1, this.#end).facts);
      return;
    }
    this.analyzeParts(body);
  }

  alter(): void {
    const s = this.#start;
    const i = this.skipCreateOptions(s + 1);
    const kind = this.word(i);
    switch (kind) {
      case 'table':
        return this.alterTable(i + 1);
      case 'user':
      case 'role':
        this.facts.op(OperationClass.Privilege);
        this.facts.hazard(Hazard.RoleChange);
        this.accounts(this.ifExists(i + 1), new Set(['identified', 'default', 'require', 'with', 'password', 'account', 'comment', 'attribute', 'discard', 'retain']));
        return;
      case 'database':
      case 'schema': {
        this.facts.op(OperationClass.Ddl);
        const name = this.ident(i + 1);
        if (name !== undefined && !['character', 'charset', 'collate', 'default', 'encryption', 'read', 'upgrade', 'comment'].includes(name)) {
          this.facts.object(undefined, name, 'schema', 'ddl');
        }
        return;
      }
      case 'view': {
        this.facts.op(OperationClass.Ddl);
        const t = this.qualified(i + 1);
        if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'ddl');
        return;
      }
      case 'procedure':
      case 'function':
      case 'event': {
        this.facts.op(OperationClass.Ddl);
        const t = this.qualified(i + 1);
        if (t !== undefined) this.facts.object(t.schema, t.name, kind === 'event' ? 'other' : 'function', 'ddl');
        if (kind === 'event') this.eventBody(i + 1);
        return;
      }
      case 'instance':
        // ROTATE ... MASTER KEY, RELOAD TLS, ENABLE / DISABLE INNODB REDO_LOG: server configuration.
        this.facts.op(OperationClass.Admin);
        this.facts.hazard(Hazard.AlterSystem);
        return;
      case 'resource':
        this.facts.op(OperationClass.Admin);
        return;
      case 'sequence': {
        this.facts.op(OperationClass.Ddl);
        const t = this.qualified(this.ifExists(i + 1));
        if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'ddl');
        return;
      }
      default:
        if (kind !== undefined && DDL_OTHER_KINDS.has(kind)) {
          this.facts.op(OperationClass.Ddl);
          return;
        }
        this.facts.unknown(`ALTER ${kind?.toUpperCase() ?? ''} is not recognised`.trim());
    }
  }

  /**
   * ALTER TABLE: ddl; the hazards come from the tokens (an unquoted DROP is a drop clause:
   * DROP is reserved and cannot name a column; TRUNCATE PARTITION deletes rows; DISCARD
   * TABLESPACE deletes the table's data file); the tree, when the parser reads it, adds the
   * columns changed.
   */
  alterTable(i: number): void {
    this.facts.op(OperationClass.Ddl);
    const t = this.qualified(this.ifExists(i));
    const entry = t === undefined ? undefined : this.facts.object(t.schema, t.name, 'table', 'ddl');
    for (let j = t?.next ?? i; j < this.#end; j++) {
      const w = this.word(j);
      if (w === 'drop') this.facts.hazard(Hazard.AlterDrop);
      else if (w === 'engine' && (this.word(j + 1) === 'blackhole' || this.word(j + 2) === 'blackhole')) {
        // A BLACKHOLE table keeps no rows: converting one discards them all.
        this.facts.hazard(Hazard.Truncate);
      }
      else if (w === 'truncate' && this.word(j + 1) === 'partition') this.facts.hazard(Hazard.Truncate);
      else if (w === 'discard' && (this.word(j + 1) === 'tablespace' || this.word(j + 2) === 'tablespace')) this.facts.hazard(Hazard.AlterDrop);
      else if (w === 'rename' && t !== undefined) {
        // RENAME [TO | AS] new_name (not RENAME COLUMN / INDEX / KEY).
        let k = j + 1;
        if (this.word(k) === 'to' || this.word(k) === 'as') k++;
        if (!['column', 'index', 'key'].includes(this.word(k) ?? '')) {
          const n = this.qualified(k);
          if (n !== undefined) this.facts.object(n.schema, n.name, 'table', 'ddl');
        }
      }
    }
    this.tableFiles(i);
    // DEFAULT (expr) of an added column and generated columns are evaluated for existing rows.
    this.tokenEffects();
    if (entry === undefined) return;
    const parsed = this.parse();
    if (typeof parsed !== 'string') this.walk(parsed.ast, parsed.input);
  }

  drop(): void {
    const s = this.#start;
    let i = s + 1;
    if (this.word(i) === 'temporary') i++;
    const kind = this.word(i);
    if (kind !== undefined && DROP_TABLE_KINDS.has(kind)) {
      this.facts.op(OperationClass.Ddl);
      this.facts.hazard(Hazard.DropTable);
      this.names(this.ifExists(i + 1), 'table', 'ddl');
      return;
    }
    switch (kind) {
      case 'database':
      case 'schema': {
        // DATABASE and SCHEMA are synonyms in MySQL: both are drop-database.
        this.facts.op(OperationClass.Ddl);
        this.facts.hazard(Hazard.DropDatabase);
        const name = this.ident(this.ifExists(i + 1));
        if (name !== undefined) this.facts.object(undefined, name, 'schema', 'ddl');
        return;
      }
      case 'index': {
        // DROP INDEX i ON t is ALTER TABLE t DROP INDEX i.
        this.facts.op(OperationClass.Ddl);
        this.facts.hazard(Hazard.AlterDrop);
        const on = this.find(i + 1, 'on');
        const t = on < 0 ? undefined : this.qualified(on + 1);
        if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'ddl');
        return;
      }
      case 'user':
      case 'role':
        this.facts.op(OperationClass.Privilege);
        this.facts.hazard(Hazard.RoleChange);
        this.accounts(this.ifExists(i + 1));
        return;
      case 'prepare':
        this.facts.op(OperationClass.SessionSetting);
        this.facts.deallocate = this.ident(i + 1) ?? '';
        return;
      case 'procedure':
      case 'function':
      case 'trigger':
      case 'event': {
        this.facts.op(OperationClass.Ddl);
        const t = this.qualified(this.ifExists(i + 1));
        if (t !== undefined) this.facts.object(t.schema, t.name, kind === 'trigger' || kind === 'event' ? 'other' : 'function', 'ddl');
        return;
      }
      default:
        if (kind !== undefined && (DDL_OTHER_KINDS.has(kind) || ROUTINE_KINDS.has(kind))) {
          this.facts.op(OperationClass.Ddl);
          return;
        }
        this.facts.unknown(`DROP ${kind?.toUpperCase() ?? ''} is not recognised`.trim());
    }
  }

  rename(): void {
    const s = this.#start;
    const kind = this.word(s + 1);
    if (kind === 'user') {
      this.facts.op(OperationClass.Privilege);
      this.facts.hazard(Hazard.RoleChange);
      this.accounts(s + 2, new Set(['to']));
      return;
    }
    if (kind !== 'table' && kind !== 'tables') {
      this.facts.unknown('statement RENAME is not recognised');
      return;
    }
    // RENAME TABLE a TO b [, c TO d]
    this.facts.op(OperationClass.Ddl);
    let i = s + 2;
    for (;;) {
      const from = this.qualified(i);
      if (from === undefined || this.word(from.next) !== 'to') return;
      const to = this.qualified(from.next + 1);
      if (to === undefined) return;
      this.facts.object(from.schema, from.name, 'table', 'ddl');
      this.facts.object(to.schema, to.name, 'table', 'ddl');
      if (!this.punct(to.next, ',')) return;
      i = to.next + 1;
    }
  }

  grant(): void {
    this.facts.op(OperationClass.Privilege);
    this.facts.hazard(Hazard.GrantRevoke);
    const s = this.#start;
    // GRANT PROXY ON account TO account: names users only.
    if (this.word(s + 1) === 'proxy') return;
    const on = this.find(s + 1, 'on');
    if (on < 0) {
      // GRANT role [, role] TO account: role membership.
      const to = this.find(s + 1, new Set(['to', 'from']));
      // REVOKE ALL [PRIVILEGES], GRANT OPTION FROM ...: privileges, not roles.
      const privileges = this.find(s + 1, new Set(['privileges', 'option', 'proxy']));
      if (to > 0 && (privileges < 0 || privileges > to)) {
        let i = s + 1;
        if (this.word(i) === 'if' && this.word(i + 1) === 'exists') i += 2;
        this.accounts(i, new Set(['to', 'from']));
      }
      return;
    }
    // Columns named in the privilege list: `SELECT (a, b)`.
    const columns: string[] = [];
    for (let i = s + 1; i < on; i++) {
      if (!this.punct(i, '(')) continue;
      for (let j = i + 1; j < on && !this.punct(j, ')'); j++) {
        const c = this.ident(j);
        if (c !== undefined) columns.push(c.toLowerCase());
      }
    }
    let i = on + 1;
    let kind: ObjectKind = 'table';
    const w = this.word(i);
    if (w === 'table') i++;
    else if (w === 'function' || w === 'procedure') {
      kind = 'function';
      i++;
    }
    // `*`, `*.*`, `db.*`, `db.t`, `t`
    const star = (k: number): boolean => this.tok(k)?.kind === TokenKind.Operator && this.tok(k)?.value === '*';
    if (star(i)) {
      if (this.punct(i + 1, '.') && star(i + 2)) this.facts.object(undefined, '*', 'database', 'ddl');
      return;
    }
    const first = this.ident(i);
    if (first === undefined) return;
    if (this.punct(i + 1, '.') && star(i + 2)) {
      this.facts.object(undefined, first, 'schema', 'ddl');
      return;
    }
    const t = this.qualified(i);
    if (t === undefined) return;
    const entry = this.facts.object(t.schema, t.name, kind, 'ddl');
    for (const c of columns) entry.columns.add(c);
  }

  lock(): void {
    const s = this.#start;
    const w = this.word(s + 1);
    if (w === 'instance') {
      this.facts.op(OperationClass.Admin);
      return;
    }
    this.facts.op(OperationClass.Write);
    if (w !== 'table' && w !== 'tables') return;
    // LOCK TABLES t [[AS] a] {READ [LOCAL] | [LOW_PRIORITY] WRITE}, ...
    let i = s + 2;
    for (;;) {
      const t = this.qualified(i);
      if (t === undefined) return;
      this.facts.object(t.schema, t.name, 'table', 'write');
      let j = t.next;
      while (j < this.#end && !this.punct(j, ',')) j++;
      if (j >= this.#end) return;
      i = j + 1;
    }
  }

  /**
   * LOAD DATA / LOAD XML: INFILE reads a file of the database server (write + server-file);
   * LOCAL INFILE has the client send the file, like COPY FROM STDIN (copy-in).
   */
  load(): void {
    const s = this.#start;
    const w1 = this.word(s + 1);
    if (w1 === 'index') {
      // LOAD INDEX INTO CACHE
      this.facts.op(OperationClass.Admin);
      return;
    }
    if (w1 !== 'data' && w1 !== 'xml') {
      this.facts.unknown('statement LOAD is not recognised');
      return;
    }
    const infile = this.find(s + 2, 'infile');
    const local = infile > 0 && this.find(s + 2, 'local') >= 0 && this.find(s + 2, 'local') < infile;
    if (local) {
      this.facts.op(OperationClass.CopyIn);
    } else {
      this.facts.op(OperationClass.Write);
      this.facts.hazard(Hazard.ServerFile);
    }
    this.tokenEffects();
    const table = this.find(s + 2, 'table');
    const t = table < 0 ? undefined : this.qualified(table + 1);
    const parsed = w1 === 'data' ? this.parse() : 'LOAD XML';
    if (typeof parsed !== 'string') {
      this.walk(parsed.ast, parsed.input);
      this.writeLineage(parsed.ast, parsed.input);
      return;
    }
    if (t !== undefined) this.facts.object(t.schema, t.name, 'table', 'write');
    if (this.readsInside(s + 2)) this.facts.unknown(parsed);
    // The rows come from the file: which columns, the tree would have told.
    else if (t !== undefined) this.writes = [untoldWrite(t.schema, t.name)];
  }

  // --- prepared statements and handlers ------------------------------------------------------

  prepare(): void {
    const s = this.#start;
    const name = this.ident(s + 1) ?? '';
    const from = this.word(s + 2) === 'from' ? s + 3 : -1;
    const src = from < 0 ? undefined : this.tok(from);
    if (src !== undefined && src.kind === TokenKind.String && from + 1 === this.#end) {
      this.preparedText(name, src);
      return;
    }
    // PREPARE s FROM @var: the text is built at run time.
    this.facts.unknown('PREPARE of a statement text the analyzer cannot see');
    this.facts.hazard(Hazard.DynamicSql);
  }

  /** PREPARE name FROM 'text' (and EXECUTE IMMEDIATE 'text'): analyses the text. */
  preparedText(name: string | undefined, src: Token): void {
    this.facts.literalDependent = true;
    const value = stringValue(this.#ctx.text, src, this.#ctx.lex);
    if (value === undefined) {
      this.facts.unknown('PREPARE of a string that cannot be read');
      this.facts.hazard(Hazard.DynamicSql);
      return;
    }
    const tokens = lex(value, this.#ctx.lex);
    const scan = splitTokens(tokens);
    const inner: Context = { ...this.#ctx, text: value, tokens, depth: this.#ctx.depth + 1 };
    if (scan.statements.length !== 1 || this.#ctx.depth >= MAX_DEPTH) {
      this.facts.unknown(scan.statements.length === 1 ? 'statements nested too deeply' : 'PREPARE of a text that is not one statement');
      for (const st of scan.statements) this.facts.merge(analyzeStatement(inner, st, this.#keywordsOnly).facts);
      return;
    }
    const st = scan.statements[0]!;
    const result = analyzeStatement(inner, st, this.#keywordsOnly);
    this.facts.merge(result.facts);
    if (name !== undefined) this.prepared = { name, result, normalized: st.normalized, command: st.command };
    // Run now (EXECUTE IMMEDIATE, sys.execute_prepared_stmt): its rows are this statement's.
    else {
      this.lineage = result.lineage;
      this.writes = result.writes;
    }
  }

  execute(): void {
    const s = this.#start;
    if (this.word(s + 1) === 'immediate') {
      // MariaDB: EXECUTE IMMEDIATE 'text' | @var | expression
      const src = this.tok(s + 2);
      const end = this.find(s + 3, 'using');
      if (src !== undefined && src.kind === TokenKind.String && (s + 3 === this.#end || end === s + 3)) {
        this.preparedText(undefined, src);
        return;
      }
      this.facts.unknown('EXECUTE IMMEDIATE of a statement text the analyzer cannot see');
      this.facts.hazard(Hazard.DynamicSql);
      return;
    }
    // The session substitutes the prepared statement's analysis when it has seen it.
    this.facts.unknown(EXECUTE_UNSEEN);
    this.facts.hazard(Hazard.DynamicSql);
    this.facts.execute = this.ident(s + 1) ?? '';
  }

  handler(): void {
    const s = this.#start;
    const t = this.qualified(s + 1);
    this.facts.op(OperationClass.Read);
    if (t === undefined) return;
    const w = this.word(t.next);
    if (w === 'open') {
      let alias: string | undefined;
      if (this.word(t.next + 1) === 'as') alias = this.ident(t.next + 2);
      else alias = this.ident(t.next + 1);
      const entry = this.facts.object(t.schema, t.name, 'table', 'read');
      entry.columns.add('*');
      this.facts.handler = { open: alias ?? t.name };
    } else if (w === 'read') {
      this.tokenEffects();
      // The rows of the table the handler was opened on (the session knows which, by name).
      const entry = this.facts.object(t.schema, t.name, 'table', 'read');
      entry.columns.add('*');
      this.facts.handler = { read: t.name };
      const all = [t.schema === undefined ? { table: t.name, column: '*' } : { schema: t.schema, table: t.name, column: '*' }];
      this.lineage = { all, predicates: all, functions: [] };
    } else if (w === 'close') {
      this.facts.handler = { close: t.name };
    }
  }

  // --- compound statements (MariaDB) ----------------------------------------------------------

  compound(): void {
    if (this.#ctx.dialect !== 'mariadb') {
      // A syntax error for MySQL's server, which then runs nothing more of the request.
      this.facts.unknown('compound statements run only inside stored programs in MySQL');
      return;
    }
    const parts = compoundParts(this.#ctx.tokens, this.#start, this.#end);
    if (parts === undefined) {
      this.facts.unknown('compound statement not understood');
      return;
    }
    this.analyzeParts(parts);
  }

  /** The statements and conditions of a compound statement that runs now. */
  analyzeParts(parts: { statements: readonly [number, number][]; expressions: readonly [number, number][] }): void {
    for (const [a, b] of parts.statements) {
      const w = this.word(a);
      // Flow control and declarations of the compound statement itself.
      if (w === 'leave' || w === 'iterate' || w === 'open' || w === 'close' || w === 'fetch') continue;
      if (w === 'declare') {
        const cursor = this.find(a + 1, 'cursor');
        const def = this.find(a + 1, 'default');
        if (cursor > 0 && this.word(cursor + 1) === 'for') this.facts.merge(this.nested(cursor + 2, b).facts);
        else if (def > 0) this.expression(def + 1, b);
        continue;
      }
      if (w === 'return') {
        this.expression(a + 1, b);
        continue;
      }
      this.facts.merge(this.nested(a, b).facts);
    }
    for (const [a, b] of parts.expressions) this.expression(a, b);
  }

  /** An expression evaluated by a compound statement: what it reads and calls. */
  expression(a: number, b: number): void {
    if (a >= b) return;
    this.tokenEffects(a, b);
    const parsed = this.parse(a, b, 'select');
    if (typeof parsed === 'string') {
      this.facts.unknown(parsed);
      return;
    }
    this.walk(parsed.ast, parsed.input);
  }

  // --- what a statement that is not understood may do ----------------------------------------

  /**
   * Scans the statement as the server might split it (at each `;`): every piece is classified
   * from its keywords alone, and its classes and hazards are added.
   */
  keywordScan(): void {
    const tokens = this.#ctx.tokens;
    let a = this.#start;
    for (let i = this.#start; i <= this.#end; i++) {
      if (i < this.#end && !(tokens[i]!.kind === TokenKind.Punct && tokens[i]!.value === ';')) continue;
      if (i > a) {
        const piece = new StatementAnalyzer({ ...this.#ctx, depth: this.#ctx.depth + 1 }, a, i, true);
        try {
          if (this.#ctx.depth < MAX_DEPTH) piece.analyze();
        } catch {
          // Too deep for the scan: the statement is unknown already.
        }
        for (const op of piece.facts.operations) this.facts.op(op);
        for (const h of piece.facts.hazards) this.facts.hazard(h);
        if (piece.facts.literalDependent) this.facts.literalDependent = true;
      }
      a = i + 1;
    }
  }
}

/** Analyses one scanned statement of a token list. */
/**
 * Whether tokens [from, to) store a value in a user variable: `@v := ...`, `INTO @v`, or
 * `SET @v = ...` (a SET statement, or SET inside an UPDATE, which cannot assign variables, is
 * read conservatively). A variable outlives the statement: what it holds can be read later
 * without naming the table it came from.
 */
function assignsUserVariable(tokens: readonly Token[], from: number, to: number): boolean {
  const user = (t: Token | undefined) => t !== undefined && t.kind === TokenKind.Variable && !t.value.startsWith('@@');
  let set = false;
  // CALL p(@v): an OUT or INOUT parameter stores into the variable whatever the body reads.
  const call = tokens[from]?.kind === TokenKind.Word && tokens[from]!.value === 'call';
  for (let i = from; i < to; i++) {
    const t = tokens[i]!;
    if (t.kind === TokenKind.Word && t.value === 'set') set = true;
    if (!user(t)) continue;
    if (call) return true;
    const next = tokens[i + 1];
    if (next !== undefined && next.kind === TokenKind.Operator && (next.value === ':=' || (set && next.value === '='))) return true;
    // INTO @a, @b: the first target follows INTO, the others a comma.
    for (let j = i - 1; j >= from; j--) {
      const p = tokens[j]!;
      if (p.kind === TokenKind.Punct && p.value === ',') {
        if (!user(tokens[j - 1])) break;
        j--;
        continue;
      }
      if (p.kind === TokenKind.Word && p.value === 'into') return true;
      break;
    }
  }
  return false;
}

export function analyzeStatement(ctx: Context, s: ScannedStatement, keywordsOnly = false): StatementResult {
  const a = new StatementAnalyzer(ctx, s.start, s.end, keywordsOnly);
  if (assignsUserVariable(ctx.tokens, s.start, s.end)) a.facts.assignsVariables = true;
  if (!s.wellFormed) {
    a.facts.unknown('malformed statement (unbalanced parentheses, an unterminated literal or comment, or an executable comment whose end depends on the server version)');
    a.keywordScan();
    return { facts: a.facts };
  }
  try {
    a.analyze();
  } catch (e) {
    a.facts.unknown(`analysis failed: ${e instanceof Error ? e.name : 'error'}`);
  }
  // Whatever path the analysis took, a statement it could not class is unknown, never nothing
  // (a labelled block with nothing recognisable in it, say).
  if (a.facts.operations.length === 0) a.facts.unknown('the statement could not be classified');
  // What the statement would do if the server read it otherwise (not for statements that were
  // understood, whose pieces are their own).
  if (a.facts.operations.includes(OperationClass.Unknown) && !keywordsOnly) a.keywordScan();
  return {
    facts: a.facts,
    ...(a.lineage === undefined ? {} : { lineage: a.lineage }),
    ...(a.writes === undefined ? {} : { writes: a.writes }),
    ...(a.prepared === undefined ? {} : { prepared: a.prepared }),
  };
}

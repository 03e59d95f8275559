/**
 * DO blocks: the body of a LANGUAGE plpgsql block is compiled with the PL/pgSQL parser and
 * every SQL statement and expression in it is analysed as if sent on its own. `EXECUTE` of a
 * constant string is analysed too; `EXECUTE` of a string built at run time (concatenation,
 * format(), a variable) cannot be: it is `unknown` with the `dynamic-sql` hazard. A block in
 * any other language is opaque: `unknown` and `dynamic-sql`.
 */
import { Hazard, OperationClass } from '@sluice/core';
import { Facts } from './facts.js';
import { lex, TokenKind } from './lexer.js';
import { parsePlpgsql, parseSql } from './parse.js';
import { as, isObj, list, stringConstant, stringNode, text, unwrap, type Obj } from './tree.js';
import { analyzeSqlInto } from './walk.js';

/** Fields holding SQL that PL/pgSQL builds at run time, by statement type. */
const DYNAMIC_FIELDS: Readonly<Record<string, string>> = {
  PLpgSQL_stmt_dynexecute: 'query',
  PLpgSQL_stmt_dynfors: 'query',
  PLpgSQL_stmt_open: 'dynquery',
  PLpgSQL_stmt_return_query: 'dynquery',
};

// PL/pgSQL expression parse modes (RawParseMode in parser.h).
const PARSE_DEFAULT = 0;
const PARSE_EXPR = 2;
const PARSE_ASSIGN_FIRST = 3;
const PARSE_ASSIGN_LAST = 5;

/** Analyses a DoStmt's fields into `facts`. The result always depends on the body's text. */
export function analyzeDoBlock(f: Obj, facts: Facts, depth: number): void {
  facts.literalDependent = true;
  let body: string | undefined;
  let language = 'plpgsql';
  for (const a of list(f['args'])) {
    const d = as(a, 'DefElem');
    if (d === undefined) continue;
    if (d['defname'] === 'as') body = stringNode(d['arg']);
    else if (d['defname'] === 'language') language = (stringNode(d['arg']) ?? '').toLowerCase();
  }
  if (body === undefined) {
    facts.unknown('DO without a body');
    return;
  }
  if (language !== 'plpgsql') {
    facts.unknown(`DO block in language ${language}: its code cannot be analysed`);
    facts.hazard(Hazard.DynamicSql);
    return;
  }
  let tag = 'body';
  while (body.includes(`$${tag}$`)) tag += '_';
  const parsed = parsePlpgsql(`DO $${tag}$${body}$${tag}$`);
  if (!parsed.ok) {
    facts.unknown(`PL/pgSQL: ${parsed.error}`);
    return;
  }
  const inner = new Facts();
  const variables = new Set<string>();
  collectNames(parsed.tree, variables);
  new PlWalker(inner, depth, variables).visit(parsed.tree);
  // A block that runs no SQL at all (only RAISE, NULL, assignments of constants) reads nothing.
  if (inner.operations.length === 0) inner.op(OperationClass.Read);
  facts.merge(inner);
}

/** Variable names (datums) and block labels: references to them are not columns. */
function collectNames(v: unknown, out: Set<string>): void {
  if (Array.isArray(v)) {
    for (const item of v) collectNames(item, out);
    return;
  }
  if (!isObj(v)) return;
  for (const key in v) {
    const value = v[key];
    if ((key === 'refname' || key === 'label') && typeof value === 'string') out.add(value);
    else collectNames(value, out);
  }
}

class PlWalker {
  constructor(
    readonly facts: Facts,
    readonly depth: number,
    readonly variables: ReadonlySet<string>,
  ) {}

  visit(v: unknown, dynamic = false): void {
    if (Array.isArray(v)) {
      for (const item of v) this.visit(item, dynamic);
      return;
    }
    if (!isObj(v)) return;
    const n = unwrap(v);
    if (n === undefined) {
      for (const key in v) this.visit(v[key], dynamic);
      return;
    }
    const [type, f] = n;
    if (type === 'PLpgSQL_expr') {
      this.#expression(text(f['query']) ?? '', typeof f['parseMode'] === 'number' ? f['parseMode'] : PARSE_DEFAULT, dynamic);
      return;
    }
    if (type === 'PLpgSQL_stmt_commit' || type === 'PLpgSQL_stmt_rollback') this.facts.op(OperationClass.Transaction);
    const dynamicField = DYNAMIC_FIELDS[type];
    for (const key in f) this.visit(f[key], key === dynamicField);
  }

  #sql(sql: string, nested: boolean, what: string): boolean {
    return analyzeSqlInto(sql, this.facts, { depth: this.depth + 1, variables: this.variables, nested, what });
  }

  #expression(query: string, mode: number, dynamic: boolean): void {
    if (dynamic) {
      this.#dynamic(query);
      return;
    }
    if (mode === PARSE_DEFAULT) {
      this.#sql(query, false, 'PL/pgSQL statement');
    } else if (mode >= PARSE_ASSIGN_FIRST && mode <= PARSE_ASSIGN_LAST) {
      // `target := expr` (or `target = expr`): the target may hold subscripts.
      const split = assignmentSplit(query);
      if (split === undefined) {
        this.facts.unknown('PL/pgSQL assignment not understood');
        return;
      }
      this.#sql(`SELECT ${split.target}\n`, true, 'PL/pgSQL assignment');
      this.#sql(`SELECT ${split.value}\n`, true, 'PL/pgSQL assignment');
    } else {
      this.#sql(`SELECT ${query}\n`, true, 'PL/pgSQL expression');
    }
  }

  /** EXECUTE / FOR ... IN EXECUTE / OPEN ... FOR EXECUTE / RETURN QUERY EXECUTE. */
  #dynamic(query: string): void {
    const parsed = parseSql(`SELECT ${query}\n`);
    const select = parsed.ok && parsed.stmts.length === 1 ? as(parsed.stmts[0]!.stmt, 'SelectStmt') : undefined;
    const targets = list(select?.['targetList']);
    const only = targets.length === 1 && select?.['fromClause'] === undefined ? as(targets[0], 'ResTarget') : undefined;
    const constant = only === undefined ? undefined : stringConstant(only['val']);
    if (constant !== undefined) {
      this.#sqlConstant(constant);
      return;
    }
    this.facts.unknown('EXECUTE of a string built at run time');
    this.facts.hazard(Hazard.DynamicSql);
    // What builds the string (format(), functions, subqueries) still runs.
    if (parsed.ok) this.#sql(`SELECT ${query}\n`, true, 'PL/pgSQL expression');
  }

  #sqlConstant(sql: string): void {
    // Dynamic SQL does not see the block's variables.
    analyzeSqlInto(sql, this.facts, { depth: this.depth + 1, what: 'EXECUTE of a constant string' });
  }
}

/** Splits `target := value` (or `=`) at the first assignment operator outside brackets. */
function assignmentSplit(query: string): { target: string; value: string } | undefined {
  let depth = 0;
  for (const t of lex(query)) {
    if (t.kind === TokenKind.Punct) {
      if (t.value === '(' || t.value === '[') depth++;
      else if (t.value === ')' || t.value === ']') depth--;
      else if (t.value === ':=' && depth === 0) return { target: query.slice(0, t.start), value: query.slice(t.end) };
    } else if (t.kind === TokenKind.Operator && t.value === '=' && depth === 0) {
      return { target: query.slice(0, t.start), value: query.slice(t.end) };
    }
  }
  return undefined;
}

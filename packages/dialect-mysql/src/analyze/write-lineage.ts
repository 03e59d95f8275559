/**
 * Column lineage of the rows a statement writes, from node-sql-parser's tree: for each table
 * written, each written column with the flows into it, and the columns that decide which rows
 * are written (see `WriteLineage` in core). The walk is lineage.ts's, with its conservative
 * rules (an unqualified column in a join is attributed to every table in scope, a node it does
 * not understand draws on every relation in scope), over:
 *
 * - INSERT / REPLACE with VALUES, a query (CTEs included), `TABLE t` or SET. A value in a
 *   VALUES row or a SET may name a column set earlier in the row: it carries that value (a
 *   column not set yet holds its default). Without a column list the columns are named by
 *   position (`$1`, `$2` ...; `positional`), unless the catalog gives the table's columns; a
 *   query whose positions are not known (`SELECT *` over a table whose columns are not known)
 *   leaves `columns` absent. ON DUPLICATE KEY UPDATE writes its columns too, from the stored
 *   row, `VALUES(col)` (the value the row would have had), the row alias (`AS new [(a, b)]`)
 *   and, for INSERT ... SELECT, the columns of the query's tables. Positions and names cannot
 *   be matched when both appear: `columns` is then absent.
 * - UPDATE, single- and multiple-table: each `SET [t.]col = expr` writes col of the table t
 *   names (of every table that may have it, for an unqualified column of a join); WHERE is a
 *   FILTER, the joins' conditions JOIN, ORDER BY a SORT. MySQL runs a single-table UPDATE's
 *   assignments from left to right (a later one reads the value an earlier one wrote); MariaDB
 *   (SIMULTANEOUS_ASSIGNMENT) and multiple-table updates give no order: a column read there
 *   may carry its stored value and any value assigned to it.
 * - DELETE, single- and multiple-table: one entry per table deleted from, `columns: []`.
 * - CREATE TABLE ... [AS] SELECT: the written columns are the query's result columns, by name
 *   (an unaliased expression is named as in lineage.ts, not as the server names it).
 * - LOAD DATA: the column list (or the catalog's columns), then the SET columns; values come
 *   from the file, so only a SET expression's subqueries flow.
 *
 * Statement-level flows (`indirect`) are the predicates of the whole statement, as the result
 * lineage gathers them: those of the query an INSERT or CREATE TABLE reads, of subqueries in
 * values, of WHERE, joins and ORDER BY. Every entry of a statement has the same.
 */
import type { ColumnFlow, WriteLineage, WrittenColumn } from '@sluice/core';
import { type Found, FlowSet as Acc, type How, NO_FLOWS as EMPTY, unionFlows as union } from './flows.js';
import { Assigned, LineageWalker, type LineageOptions, type QueryResult, type Relation, Scope, TableRel } from './lineage.js';
import type { Dialect, RowAlias } from './parse.js';
import { branches, fromItems, isObj, list, nameOf, queryOf, type Obj } from './tree.js';

export interface WriteLineageOptions extends LineageOptions {
  /** The INSERT's row alias, which the parser does not see (parse.ts). */
  readonly rowAlias?: RowAlias;
  /** `mariadb`: a single-table UPDATE's assignments may all read the stored row. Default `mysql`. */
  readonly dialect?: Dialect;
}

function sameName(a: string, b: string): boolean {
  return a === b || a.toLowerCase() === b.toLowerCase();
}

/** A table written, while the walk builds its entry. */
class Target {
  /** Written columns by lower-case name; undefined when they cannot be told. */
  columns: Map<string, { name: string; acc: Acc }> | undefined = new Map();
  positional = false;
  /** Values written to columns that cannot be told apart. */
  readonly extra = new Acc();

  constructor(
    readonly schema: string | undefined,
    readonly table: string,
  ) {}

  /** `replace`: the column's value is this one only (a later assignment of the same column). */
  write(name: string, acc: Acc, replace = false): void {
    if (this.columns === undefined) {
      this.extra.merge(acc);
      return;
    }
    const key = name.toLowerCase();
    const known = this.columns.get(key);
    if (known === undefined || replace) this.columns.set(key, { name: known?.name ?? name, acc: union(acc) });
    else known.acc.merge(acc);
  }

  /** Columns can no longer be told: what they hold goes to `extra`. */
  untold(): void {
    for (const c of this.columns?.values() ?? []) this.extra.merge(c.acc);
    this.columns = undefined;
    this.positional = false;
  }

  lineage(indirect: readonly ColumnFlow[]): WriteLineage {
    const all = union(this.extra);
    const columns = this.columns === undefined ? undefined : [...this.columns.values()];
    for (const c of columns ?? []) all.merge(c.acc);
    return {
      ...(this.schema === undefined ? {} : { schema: this.schema }),
      table: this.table,
      ...(columns === undefined ? {} : { columns: columns.map((c): WrittenColumn => ({ name: c.name, flows: c.acc.flowList('TRANSFORMATION') })) }),
      ...(this.positional ? { positional: true } : {}),
      all: all.directSources(),
      indirect,
    };
  }
}

/** The row an INSERT's VALUES or SET builds: a column set earlier carries its value, any other its default. */
class RowRel implements Relation {
  readonly byName = new Map<string, Acc>();

  constructor(
    readonly name: string,
    readonly schema: string | undefined,
  ) {}

  set(column: string, acc: Acc): void {
    this.byName.set(column.toLowerCase(), acc);
  }

  columns(): undefined {
    return undefined;
  }

  column(name: string): Found {
    const acc = this.byName.get(name.toLowerCase());
    return { acc: acc ?? EMPTY, direct: acc !== undefined, definite: true };
  }

  whole(acc: Acc, how: How): void {
    for (const a of this.byName.values()) acc.mergeAs(a, how);
  }
}

/** What an INSERT inserts: by column name, by position, and everything. */
interface Inserted {
  /** The value the row would have had for a column (its default when not inserted: nothing). */
  valueOf(column: string): Acc;
  /** Values by position (a VALUES list or a query whose columns are known). */
  readonly positions: readonly Acc[] | undefined;
  readonly everything: Acc;
}

/** `AS new [(a, b)]` in ON DUPLICATE KEY UPDATE: the row that was to be inserted. */
class RowAliasRel implements Relation {
  readonly schema = undefined;
  readonly qualifiedOnly: boolean;

  constructor(
    readonly name: string,
    readonly aliases: readonly string[],
    readonly inserted: Inserted,
  ) {
    // Without column aliases the row's columns are named only as `new.col`.
    this.qualifiedOnly = aliases.length === 0;
  }

  columns(): undefined {
    return undefined;
  }

  column(name: string): Found | undefined {
    if (this.aliases.length === 0) return { acc: this.inserted.valueOf(name), direct: true, definite: true };
    const i = this.aliases.findIndex((a) => sameName(a, name));
    if (i < 0) return undefined;
    return { acc: this.inserted.positions?.[i] ?? this.inserted.everything, direct: true, definite: true };
  }

  whole(acc: Acc, how: How): void {
    acc.mergeAs(this.inserted.everything, how);
  }
}

class WriteWalker {
  readonly walker: LineageWalker;
  readonly targets = new Map<string, Target>();

  constructor(readonly options: WriteLineageOptions) {
    this.walker = new LineageWalker(options);
  }

  target(schema: string | undefined, table: string): Target {
    const key = `${schema ?? ''}\u0000${table}`;
    let t = this.targets.get(key);
    if (t === undefined) this.targets.set(key, (t = new Target(schema, table)));
    return t;
  }

  statement(ast: Obj): readonly WriteLineage[] | undefined {
    switch (ast['type']) {
      case 'insert':
      case 'replace':
        this.#insert(ast);
        break;
      case 'update':
        this.#update(ast);
        break;
      case 'delete':
        this.#delete(ast);
        break;
      case 'create': {
        const q = queryOf(ast['query_expr']);
        if (ast['keyword'] !== 'table' || q === undefined) return undefined;
        this.#createAs(ast, q);
        break;
      }
      case 'load_data':
        this.#load(ast);
        break;
      default:
        return undefined;
    }
    if (this.targets.size === 0) return undefined;
    const indirect = this.walker.predicates.flowList('FILTER');
    return [...this.targets.values()].map((t) => t.lineage(indirect));
  }

  /** The statement's target table (`table` is a list of one, or the table itself). */
  #named(node: unknown): { schema: string | undefined; table: string } | undefined {
    const t = Array.isArray(node) ? node[0] : node;
    if (!isObj(t)) return undefined;
    const table = nameOf(t['table']);
    return table === undefined ? undefined : { schema: nameOf(t['db']), table };
  }

  // --- INSERT / REPLACE ------------------------------------------------------------------------

  #insert(ast: Obj): void {
    const named = this.#named(ast['table']);
    if (named === undefined) return;
    const { schema, table } = named;
    const w = this.walker;
    const out = this.target(schema, table);
    const listed = list(ast['columns']).map((c) => nameOf(c) ?? '');
    const known = w.known(schema, table);
    const names = listed.length > 0 ? listed : known;
    const values = ast['values'];
    const query = queryOf(values);
    const byName = new Map<string, Acc>();
    let positions: Acc[] | undefined;
    let everything: Acc;
    const sets = list(ast['set']).filter(isObj);
    if (sets.length > 0) {
      // INSERT ... SET a = x, b = a
      const row = new RowRel(table, schema);
      const scope = new Scope(undefined);
      scope.rels.push(row);
      everything = new Acc();
      for (const s of sets) {
        const name = nameOf(s['column']) ?? '';
        const acc = new Acc();
        w.expr(s['value'], scope, acc, 'IDENTITY');
        row.set(name, acc);
        byName.set(name.toLowerCase(), acc);
        everything.merge(acc);
        out.write(name, acc);
      }
    } else {
      let result: QueryResult;
      if (query !== undefined) {
        result = w.query(query, undefined);
        positions = result.columns?.map((c) => c.acc);
      } else {
        positions = [];
        for (const r of isObj(values) ? list(values['values']) : []) {
          // Each row: a value may name a column set earlier in the same row.
          const row = new RowRel(table, schema);
          const scope = new Scope(undefined);
          scope.rels.push(row);
          list(isObj(r) ? r['value'] : undefined).forEach((e, i) => {
            const acc = new Acc();
            w.expr(e, scope, acc, 'IDENTITY');
            (positions![i] ??= new Acc()).merge(acc);
            const name = names?.[i];
            if (name !== undefined) row.set(name, acc);
          });
        }
        result = { columns: undefined, all: union(...positions) };
      }
      everything = union(result.all);
      for (const p of positions ?? []) everything.merge(p);
      if (positions === undefined) {
        out.untold();
        out.extra.merge(everything);
      } else if (names !== undefined) {
        names.forEach((name, i) => {
          const acc = positions![i] ?? everything;
          byName.set(name.toLowerCase(), acc);
          out.write(name, acc);
        });
      } else {
        out.positional = true;
        positions.forEach((acc, i) => out.write(`$${i + 1}`, acc));
      }
    }
    // Whether each inserted column's value is known (else a column may get any of them).
    const told = sets.length > 0 || (positions !== undefined && names !== undefined);
    const inserted: Inserted = {
      valueOf: (column) => byName.get(column.toLowerCase()) ?? (told ? EMPTY : everything),
      positions: sets.length > 0 ? undefined : positions,
      everything,
    };
    const dup = ast['on_duplicate_update'];
    if (isObj(dup)) this.#onDuplicate(list(dup['set']).filter(isObj), out, { schema, table, known, query, inserted });
  }

  /** ON DUPLICATE KEY UPDATE: an update of the stored row that collided. */
  #onDuplicate(
    sets: readonly Obj[],
    out: Target,
    from: { schema: string | undefined; table: string; known: readonly string[] | undefined; query: Obj | undefined; inserted: Inserted },
  ): void {
    const w = this.walker;
    const scope = new Scope(undefined);
    // INSERT ... SELECT: the update may name the columns of the query's tables.
    if (from.query !== undefined && branches(from.query).length === 1) {
      w.with(from.query['with'], scope);
      w.from(from.query['from'], scope);
    }
    const sequential = this.options.dialect !== 'mariadb';
    const stored = new TableRel(from.table, from.schema, from.table, from.schema, from.known, new Assigned(), sequential);
    scope.rels.push(stored);
    scope.items.push({ kind: 'rel', rel: stored });
    const alias = this.options.rowAlias;
    if (alias !== undefined) scope.rels.push(new RowAliasRel(alias.name, alias.columns, from.inserted));
    if (out.positional && sets.length > 0) out.untold();
    w.valuesOf = from.inserted.valueOf;
    try {
      for (const s of sets) {
        const name = nameOf(s['column']) ?? '';
        const acc = new Acc();
        w.expr(s['value'], scope, acc, 'IDENTITY');
        if (sequential) stored.assigned!.replace(name, acc);
        else stored.assigned!.add(name, acc);
        out.write(name, acc);
      }
    } finally {
      w.valuesOf = undefined;
    }
  }

  // --- UPDATE ----------------------------------------------------------------------------------

  #update(ast: Obj): void {
    const w = this.walker;
    const scope = new Scope(undefined);
    w.with(ast['with'], scope);
    const items = fromItems(ast['table']);
    for (const item of items) w.addFromItem(item, scope);
    // Which rows, and in which order (with LIMIT), is decided on the stored values.
    w.expr(ast['where'], scope, w.predicates, 'FILTER');
    for (const o of list(ast['orderby'])) if (isObj(o)) w.expr(o['expr'], scope, w.predicates, 'SORT');
    w.expr(ast['limit'], scope, w.predicates, 'FILTER');
    const tables = scope.rels.filter((r): r is TableRel => r instanceof TableRel);
    if (tables.length === 0) return;
    const single = items.length === 1 && tables.length === 1;
    const sequential = single && this.options.dialect !== 'mariadb';
    for (const t of tables) {
      t.assigned = new Assigned();
      t.replaces = sequential;
    }
    const sets = list(ast['set']).filter(isObj);
    const targetsOf = sets.map((s) => this.#updated(s, scope, tables));
    const round = (): Acc[] =>
      sets.map((s, i) => {
        const column = nameOf(s['column']) ?? '';
        const acc = new Acc();
        w.expr(s['value'], scope, acc, 'IDENTITY');
        for (const t of targetsOf[i]!) {
          if (sequential) t.assigned!.replace(column, acc);
          else t.assigned!.add(column, acc);
        }
        return acc;
      });
    let values = round();
    if (!sequential) {
      // No order: an assignment may read what any other one writes. Walk again until nothing grows.
      const weight = (): number => {
        let n = 0;
        for (const t of tables) for (const a of t.assigned!.byName.values()) n += a.weight;
        return n;
      };
      for (let i = 0; i < sets.length; i++) {
        const before = weight();
        values = round();
        if (weight() === before) break;
      }
    }
    sets.forEach((s, i) => {
      const column = nameOf(s['column']) ?? '';
      for (const t of targetsOf[i]!) this.target(t.tableSchema, t.table).write(column, values[i]!, sequential);
    });
  }

  /** The tables a SET item writes: the one its qualifier names, else every one that may have the column. */
  #updated(s: Obj, scope: Scope, tables: readonly TableRel[]): readonly TableRel[] {
    const qualifier = nameOf(s['table']);
    if (qualifier !== undefined) {
      const named = this.walker.relsNamed(qualifier, nameOf(s['db']), scope).filter((r): r is TableRel => r instanceof TableRel);
      if (named.length > 0) return named;
    }
    if (tables.length === 1) return tables;
    const column = nameOf(s['column']) ?? '';
    const may = tables.filter((t) => t.known === undefined || t.known.some((k) => sameName(k, column)));
    return may.length > 0 ? may : tables;
  }

  // --- DELETE ----------------------------------------------------------------------------------

  #delete(ast: Obj): void {
    const w = this.walker;
    const scope = new Scope(undefined);
    w.with(ast['with'], scope);
    w.from(ast['from'], scope);
    w.expr(ast['where'], scope, w.predicates, 'FILTER');
    for (const o of list(ast['orderby'])) if (isObj(o)) w.expr(o['expr'], scope, w.predicates, 'SORT');
    w.expr(ast['limit'], scope, w.predicates, 'FILTER');
    for (const t of list(ast['table'])) {
      const named = this.#named(t);
      if (named === undefined) continue;
      const rels = w.relsNamed(named.table, named.schema, scope).filter((r): r is TableRel => r instanceof TableRel);
      if (rels.length === 0) this.target(named.schema, named.table);
      for (const r of rels) this.target(r.tableSchema, r.table);
    }
  }

  // --- CREATE TABLE ... SELECT -------------------------------------------------------------------

  #createAs(ast: Obj, query: Obj): void {
    const named = this.#named(ast['table']);
    if (named === undefined) return;
    const out = this.target(named.schema, named.table);
    const result = this.walker.query(query, undefined);
    if (result.columns === undefined) {
      out.untold();
      out.extra.merge(result.all);
      return;
    }
    for (const c of result.columns) out.write(c.name, c.acc);
  }

  // --- LOAD DATA -------------------------------------------------------------------------------

  #load(ast: Obj): void {
    const named = this.#named(ast['table']);
    if (named === undefined) return;
    const w = this.walker;
    const out = this.target(named.schema, named.table);
    const listed: string[] = [];
    const stack: unknown[] = [...list(ast['column'])];
    while (stack.length > 0) {
      const v = stack.shift();
      if (Array.isArray(v)) stack.unshift(...v);
      else if (isObj(v)) {
        if (v['type'] === 'column_ref') {
          const name = nameOf(v['column']);
          if (name !== undefined) listed.push(name);
        } else if (v['type'] !== 'var') {
          stack.unshift(...Object.values(v));
        }
      }
    }
    const names = listed.length > 0 ? listed : w.known(named.schema, named.table);
    if (names === undefined) out.untold();
    const row = new RowRel(named.table, named.schema);
    for (const name of names ?? []) {
      out.write(name, EMPTY);
      row.set(name, EMPTY);
    }
    const scope = new Scope(undefined);
    scope.rels.push(row);
    for (const s of list(ast['set'])) {
      if (!isObj(s)) continue;
      const name = nameOf(s['column']) ?? '';
      const acc = new Acc();
      w.expr(s['value'], scope, acc, 'IDENTITY');
      row.set(name, acc);
      out.write(name, acc, true);
    }
  }
}

/**
 * The tables one parsed statement writes rows to, with the lineage of the written columns;
 * undefined when it writes none (or the walk could not finish). Never throws.
 */
export function writeLineage(ast: Obj, options: WriteLineageOptions = {}): readonly WriteLineage[] | undefined {
  try {
    return new WriteWalker(options).statement(ast);
  } catch {
    return undefined;
  }
}

/** A table written by a statement whose tree is not known (LOAD XML): which columns, and from what, cannot be told. */
export function untoldWrite(schema: string | undefined, table: string): WriteLineage {
  return { ...(schema === undefined ? {} : { schema }), table, all: [], indirect: [] };
}

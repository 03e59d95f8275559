import type { ColumnSource, ResultLineage } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { analyzeUncached } from './analyze.js';
import { type LineageOptions, resultLineageOfSql } from './lineage.js';

const CATALOG: Readonly<Record<string, readonly string[]>> = {
  customers: ['id', 'email', 'name', 'ssn'],
  orders: ['id', 'customer_id', 'total', 'note'],
};
const withCatalog: LineageOptions = { columnsOf: (_schema, table) => CATALOG[table] };

function must(sql: string, options: LineageOptions & { dialect?: 'mysql' | 'mariadb' } = {}): ResultLineage {
  const l = resultLineageOfSql(sql, options);
  if (l === undefined) throw new Error(`no lineage for ${sql}`);
  return l;
}

/** `schema.table.column` (or `table.column`), sorted: sources compared as sets. */
function keys(sources: readonly ColumnSource[]): string[] {
  return sources.map((s) => `${s.schema === undefined ? '' : `${s.schema}.`}${s.table}.${s.column}`).sort();
}

/** Each column as `name: sources` (with `!` after the name of a direct one). */
function columns(l: ResultLineage): string[] | undefined {
  return l.columns?.map((c) => `${c.name}${c.direct ? '!' : ''}: ${keys(c.sources).join(' ')}`);
}

describe('plain columns and aliases', () => {
  it('traces columns through table aliases, with output names', () => {
    const l = must('select c.id, c.email as contact, name from customers c');
    expect(columns(l)).toEqual(['id!: customers.id', 'contact!: customers.email', 'name!: customers.name']);
    expect(keys(l.all)).toEqual(['customers.email', 'customers.id', 'customers.name']);
    expect(l.predicates).toEqual([]);
    expect(l.functions).toEqual([]);
  });

  it('keeps the database only when the statement writes it, and backticks change nothing', () => {
    expect(columns(must('select shop.customers.email, c.id from shop.customers, customers c'))).toEqual([
      'email!: shop.customers.email',
      'id!: customers.id',
    ]);
    expect(columns(must('select `c`.`email` from `shop`.`customers` as `c`'))).toEqual(['email!: shop.customers.email']);
  });

  it('attributes an unqualified column in a join to every table in scope', () => {
    expect(columns(must('select email from customers c join orders o on o.customer_id = c.id'))).toEqual(['email!: customers.email orders.email']);
    // With the catalog, only the table that has it.
    expect(columns(must('select email, total from customers c join orders o on o.customer_id = c.id', withCatalog))).toEqual([
      'email!: customers.email',
      'total!: orders.total',
    ]);
  });
});

describe('expressions', () => {
  it('follows values through functions, operators, CASE and casts', () => {
    const l = must("select concat(first, ' ', last) as full, upper(email), total * 2, case when vip then ssn else null end, cast(id as char) from customers");
    expect(columns(l)).toEqual([
      'full: customers.first customers.last',
      'upper: customers.email',
      '?column?: customers.total',
      '?column?: customers.ssn customers.vip',
      '?column?: customers.id',
    ]);
    expect(l.functions).toEqual(['concat', 'upper']);
    expect(l.columns?.[0]?.functions).toEqual(['concat']);
  });

  it('follows values through aggregates and windows (which are also predicates)', () => {
    const l = must('select customer_id, sum(total) over (partition by region order by day) as running from orders');
    expect(columns(l)).toEqual(['customer_id!: orders.customer_id', 'running: orders.day orders.region orders.total']);
    expect(keys(l.predicates)).toEqual(['orders.day', 'orders.region']);
  });

  it('does not let BINARY or a string alias hide a column', () => {
    expect(columns(must('select binary ssn from customers'))).toEqual(['?column?: customers.ssn']);
    expect(keys(must("select ssn 'x' from customers").all)).toEqual(['customers.ssn']);
  });
});

describe('subqueries, derived tables, CTEs and set operations', () => {
  it('follows scalar and correlated subqueries', () => {
    const l = must('select (select max(o.total) from orders o where o.customer_id = c.id) as top from customers c');
    expect(columns(l)).toEqual(['top: orders.total']);
    expect(keys(l.predicates)).toEqual(['customers.id', 'orders.customer_id']);
  });

  it('follows derived tables and their aliases', () => {
    expect(columns(must('select x.e, x.n from (select email as e, upper(name) as n from customers) as x'))).toEqual([
      'e!: customers.email',
      'n: customers.name',
    ]);
    expect(columns(must('select * from (select ssn from customers) d'))).toEqual(['ssn!: customers.ssn']);
    // A column list on a derived table (which the grammar lacks): an alias takes the whole derived table.
    expect(columns(must('select x.a from (select ssn, name from customers) as x (a, b)'))).toEqual(['a: customers.name customers.ssn']);
  });

  it('follows CTEs, recursive ones included', () => {
    expect(columns(must('with c as (select email as mail from customers) select mail from c'))).toEqual(['mail!: customers.email']);
    expect(columns(must('with c (m) as (select email from customers) select m from c'))).toEqual(['m!: customers.email']);
    const r = must('with recursive t (n, s) as (select 1, ssn from customers union all select n + 1, s from t where n < 3) select s from t');
    expect(columns(r)).toEqual(['s: customers.ssn']);
  });

  it('gives column i of a UNION from column i of every branch', () => {
    const l = must('select email from customers union select note from orders union all select 1');
    expect(columns(l)).toEqual(['email: customers.email orders.note']);
    // ORDER BY of the whole union, by position.
    expect(keys(must('select email from customers union select note from orders order by 1').predicates)).toEqual(['customers.email', 'orders.note']);
  });
});

describe('stars', () => {
  it('leaves positions unknown for * over a table whose columns are not known', () => {
    const l = must('select * from customers');
    expect(l.columns).toBeUndefined();
    expect(keys(l.all)).toEqual(['customers.*']);
    const j = must('select c.*, o.total from customers c join orders o on o.customer_id = c.id');
    expect(j.columns).toBeUndefined();
    expect(keys(j.all)).toEqual(['customers.*', 'orders.total']);
  });

  it('expands * with the catalog, USING columns once', () => {
    expect(columns(must('select * from customers', withCatalog))).toEqual([
      'id!: customers.id',
      'email!: customers.email',
      'name!: customers.name',
      'ssn!: customers.ssn',
    ]);
    expect(columns(must('select * from customers join orders using (id)', withCatalog))?.[0]).toBe('id: customers.id orders.id');
    expect(columns(must('select * from customers join orders using (id)', withCatalog))).toHaveLength(7);
  });
});

describe('predicates', () => {
  it('collects WHERE, JOIN, GROUP BY, HAVING and ORDER BY columns', () => {
    const l = must(
      "select c.region, count(*) from customers c join orders o on o.customer_id = c.id where c.ssn like '123%' group by c.region having sum(o.total) > 10 order by c.name",
    );
    expect(keys(l.predicates)).toEqual(['customers.id', 'customers.name', 'customers.region', 'customers.ssn', 'orders.customer_id', 'orders.total']);
  });

  it('counts EXISTS and IN subqueries as predicates, not values', () => {
    const l = must('select id from customers c where exists (select 1 from orders o where o.customer_id = c.id) and id in (select customer_id from orders)');
    expect(columns(l)).toEqual(['id!: customers.id']);
    // Without the catalog, the subquery's unqualified column may also be the outer table's.
    expect(keys(l.predicates)).toEqual(['customers.customer_id', 'customers.id', 'orders.customer_id']);
  });

  it('orders by an output column by name or position', () => {
    expect(keys(must('select email as e from customers order by e').predicates)).toEqual(['customers.email']);
    expect(keys(must('select email, name from customers order by 2').predicates)).toEqual(['customers.email', 'customers.name']);
  });

  it('counts the compared columns of a NATURAL JOIN (all of them when not known)', () => {
    expect(keys(must('select total from customers natural join orders').predicates)).toEqual(['customers.*', 'orders.*']);
    expect(keys(must('select total from customers natural join orders', withCatalog).predicates)).toEqual(['customers.id', 'orders.id']);
  });
});

describe('lineage in analyses', () => {
  it('is there for statements that return rows', () => {
    expect(analyzeUncached('select ssn from customers').lineage?.columns?.[0]?.sources).toEqual([{ table: 'customers', column: 'ssn' }]);
    expect(keys(analyzeUncached('table customers').lineage!.all)).toEqual(['customers.*']);
    expect(columns(analyzeUncached('values row(1, (select ssn from customers limit 1))').lineage!)).toEqual(['?column?: ', '?column?: customers.ssn']);
    expect(keys(analyzeUncached('handler customers read first').lineage!.all)).toEqual(['customers.*']);
  });

  it('is absent for SHOW, EXPLAIN, DESCRIBE and HELP: their rows are the server state, scanned when masking applies', () => {
    for (const text of ['show tables', 'show warnings', 'explain select ssn from customers', 'describe customers', "help 'select'"]) {
      expect(analyzeUncached(text).lineage, text).toBeUndefined();
    }
  });

  it('is absent for statements that return no rows', () => {
    for (const text of ['select ssn into @x from customers', "select ssn from customers into outfile '/tmp/x'", 'insert into t values (1)', 'update t set a = 1', 'call p()', 'set @x = 1']) {
      expect(analyzeUncached(text).lineage, text).toBeUndefined();
    }
  });

  it('follows MariaDB RETURNING through the values written', () => {
    const l = analyzeUncached('insert into customers (email, name) select note, note from orders returning id, email', { dialect: 'mariadb' }).lineage!;
    expect(columns(l)).toEqual(['id!: customers.id', 'email: customers.email orders.note']);
    expect(keys(analyzeUncached('delete from customers where id = 1 returning *', { dialect: 'mariadb' }).lineage!.all)).toEqual(['customers.*']);
  });

  it('follows statements run by another: SET STATEMENT ... FOR, EXECUTE IMMEDIATE, sys.execute_prepared_stmt', () => {
    expect(columns(analyzeUncached('set statement max_statement_time = 1 for select ssn from customers', { dialect: 'mariadb' }).lineage!)).toEqual([
      'ssn!: customers.ssn',
    ]);
    expect(columns(analyzeUncached("execute immediate 'select ssn from customers'", { dialect: 'mariadb' }).lineage!)).toEqual(['ssn!: customers.ssn']);
    expect(columns(analyzeUncached("call sys.execute_prepared_stmt('select ssn from customers')").lineage!)).toEqual(['ssn!: customers.ssn']);
  });

  it('keeps the prepared statement\'s lineage on a PREPARE', () => {
    const a = analyzeUncached("prepare s from 'select ssn from customers where id = ?'");
    expect(a.lineage).toBeUndefined();
    expect(columns(a.prepare!.statement.lineage!)).toEqual(['ssn!: customers.ssn']);
  });
});

import type { ColumnSource, ResultLineage } from '@sluice/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type LineageOptions, resultLineage, resultLineageOfSql } from './lineage.js';
import { parseSql } from './parse.js';

const CATALOG: Readonly<Record<string, readonly string[]>> = {
  customers: ['id', 'email', 'name', 'ssn'],
  orders: ['id', 'customer_id', 'total', 'note'],
};
const withCatalog: LineageOptions = { columnsOf: (_schema, table) => CATALOG[table] };

function lineage(sql: string, options: LineageOptions = {}): ResultLineage | undefined {
  const parsed = parseSql(sql);
  if (!parsed.ok) throw new Error(`${sql}: ${parsed.error}`);
  expect(parsed.stmts).toHaveLength(1);
  return resultLineage(parsed.stmts[0]!.stmt, options);
}

function must(sql: string, options: LineageOptions = {}): ResultLineage {
  const l = lineage(sql, options);
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

  it('keeps the schema only when the statement writes it', () => {
    expect(columns(must('select public.customers.email, c.id from public.customers, customers c'))).toEqual([
      'email!: public.customers.email',
      'id!: customers.id',
    ]);
    expect(must('select email from customers').columns?.[0]?.sources).toEqual([{ table: 'customers', column: 'email' }]);
  });

  it('attributes an unqualified column to every relation that may have it', () => {
    expect(columns(must('select email from customers c join orders o on o.customer_id = c.id'))).toEqual([
      'email!: customers.email orders.email',
    ]);
    // With the catalog, only the relation that has it.
    expect(columns(must('select email, total from customers c join orders o on o.customer_id = c.id', withCatalog))).toEqual([
      'email!: customers.email',
      'total!: orders.total',
    ]);
  });

  it('resolves qualified columns to the relation they name', () => {
    expect(columns(must('select o.id, c.id from customers c, orders o'))).toEqual(['id!: orders.id', 'id!: customers.id']);
  });

  it('reads a column the catalog does not list from the table anyway', () => {
    expect(columns(must('select c.phone, fax from customers c', withCatalog))).toEqual(['phone!: customers.phone', 'fax: customers.fax']);
  });

  it('follows column aliases of a table', () => {
    expect(columns(must('select c.e from customers c(i, e)', withCatalog))).toEqual(['e!: customers.email']);
    // Without the catalog, which column `e` renames is not known.
    expect(columns(must('select c.e from customers c(i, e)'))).toEqual(['e: customers.*']);
  });
});

describe('* and t.*', () => {
  it('expands * through the catalog', () => {
    const l = must('select * from customers', withCatalog);
    expect(columns(l)).toEqual(['id!: customers.id', 'email!: customers.email', 'name!: customers.name', 'ssn!: customers.ssn']);
    expect(columns(must('table customers', withCatalog))).toEqual(columns(l));
  });

  it('has no positions for * over a table the catalog does not know', () => {
    const l = must('select *, lower(c.name) from customers c');
    expect(l.columns).toBeUndefined();
    expect(keys(l.all)).toEqual(['customers.*', 'customers.name']);
    expect(l.functions).toEqual(['lower']);
  });

  it('expands t.* of one relation among several', () => {
    expect(columns(must('select o.*, c.email from customers c, orders o', withCatalog))).toEqual([
      'id!: orders.id',
      'customer_id!: orders.customer_id',
      'total!: orders.total',
      'note!: orders.note',
      'email!: customers.email',
    ]);
    const l = must('select o.*, c.email from customers c, orders o');
    expect(l.columns).toBeUndefined();
    expect(keys(l.all)).toEqual(['customers.email', 'orders.*']);
  });

  it('puts the columns of JOIN ... USING first, as PostgreSQL does', () => {
    expect(columns(must('select * from customers join orders using (id)', withCatalog))).toEqual([
      'id: customers.id orders.id',
      'email!: customers.email',
      'name!: customers.name',
      'ssn!: customers.ssn',
      'customer_id!: orders.customer_id',
      'total!: orders.total',
      'note!: orders.note',
    ]);
    expect(columns(must('select * from customers natural join orders', withCatalog))?.[0]).toBe('id: customers.id orders.id');
  });

  it('expands * over subqueries and CTEs from their own lineage, without the catalog', () => {
    expect(columns(must('select * from (select id, lower(email) as e from customers) s'))).toEqual(['id!: customers.id', 'e: customers.email']);
    expect(columns(must('with w as (select id, upper(name) from customers) select w.* from w'))).toEqual(['id!: customers.id', 'upper: customers.name']);
  });

  it('resolves a named column of a subquery that uses * by name', () => {
    expect(columns(must('select s.email from (select * from customers) s'))).toEqual(['email!: customers.email']);
  });
});

describe('expressions', () => {
  it('follows values through functions, operators, casts and CASE', () => {
    const l = must(
      `select lower(email), email || '@' || name as both, substring(email from 2 for 3), email::varchar(20), 1::int,
              case when ssn is null then 'none' else name end, coalesce(nickname, 'x'), nullif(a, b), greatest(x, y),
              (c.addr).city, c.tags[1], email collate "C", email is null
       from customers c`,
    );
    expect(columns(l)).toEqual([
      'lower: customers.email',
      'both: customers.email customers.name',
      'substring: customers.email',
      'email: customers.email',
      'int4: ',
      'case: customers.name customers.ssn',
      'coalesce: customers.nickname',
      'nullif: customers.a customers.b',
      'greatest: customers.x customers.y',
      'city: customers.addr',
      'tags: customers.tags',
      'email: customers.email',
      '?column?: customers.email',
    ]);
    expect(l.functions).toEqual(['lower', 'substring']);
    expect(l.columns?.[0]?.functions).toEqual(['lower']);
  });

  it('follows aggregates, including their ORDER BY and FILTER', () => {
    const l = must(
      `select count(*), string_agg(email, ',' order by name) filter (where id > 1), array_agg(distinct email), count(ssn)
       from customers group by name`,
    );
    expect(columns(l)).toEqual([
      'count: ',
      'string_agg: customers.email customers.id customers.name',
      'array_agg: customers.email',
      'count: customers.ssn',
    ]);
    expect(l.functions).toEqual(['count', 'string_agg', 'array_agg']);
  });

  it('follows JSON builders and whole-row references', () => {
    const l = must(
      `select json_build_object('e', c.email), row_to_json(c), to_jsonb(c.*), row(c.*), jsonb_agg(c), json_object('k': name)
       from customers c`,
      withCatalog,
    );
    expect(columns(l)).toEqual([
      'json_build_object: customers.email',
      'row_to_json: customers.*',
      'to_jsonb: customers.*',
      'row: customers.*',
      'jsonb_agg: customers.*',
      'json_object: customers.name',
    ]);
    expect(columns(must('select c from customers c', withCatalog))).toEqual(['c: customers.*']);
  });

  it('reads a field of a whole row as the column it names', () => {
    const l = must("select (c).email, (c).* from customers c where (c).ssn <> ''", withCatalog);
    expect(columns(l)).toEqual(['email: customers.email', 'id!: customers.id', 'email!: customers.email', 'name!: customers.name', 'ssn!: customers.ssn']);
    expect(keys(l.predicates)).toEqual(['customers.ssn']);
  });

  it('counts window partitions and orders as sources and predicates', () => {
    const l = must('select row_number() over (partition by name order by id), sum(total) over w from orders window w as (partition by note)');
    expect(columns(l)).toEqual(['row_number: orders.id orders.name', 'sum: orders.note orders.total']);
    expect(keys(l.predicates)).toEqual(['orders.id', 'orders.name', 'orders.note']);
  });

  it('takes the column of a scalar subquery, and the WHERE of it as a predicate', () => {
    const l = must('select c.id, (select max(o.total) from orders o where o.customer_id = c.id) as biggest from customers c');
    expect(columns(l)).toEqual(['id!: customers.id', 'biggest: orders.total']);
    expect(l.columns?.[1]?.functions).toEqual(['max']);
    expect(keys(l.predicates)).toEqual(['customers.id', 'orders.customer_id']);
    expect(columns(must('select (select email from customers limit 1), array(select name from customers)'))).toEqual([
      'email: customers.email',
      'array: customers.name',
    ]);
  });

  it('gives EXISTS in the target list no sources, IN its operand and subquery; both read their subquery', () => {
    const l = must(
      `select exists (select 1 from orders o where o.customer_id = c.id and o.total > 5),
              c.email in (select b.email from blocked b) from customers c`,
    );
    expect(columns(l)).toEqual(['exists: ', '?column?: blocked.email customers.email']);
    expect(keys(l.predicates)).toEqual(['blocked.email', 'customers.id', 'orders.customer_id', 'orders.total']);
  });

  it('attributes correlated unqualified columns to outer levels too', () => {
    const l = must('select (select email from orders o limit 1) from customers c');
    expect(columns(l)).toEqual(['email: customers.email orders.email']);
    expect(columns(must('select (select email from orders o limit 1) from customers c', withCatalog))).toEqual(['email: customers.email']);
  });

  it('gives a value it does not understand everything in scope', () => {
    const parsed = parseSql('select lower(c.email), 1 from customers c, orders o');
    if (!parsed.ok) throw new Error(parsed.error);
    const stmt = structuredClone(parsed.stmts[0]!.stmt) as { SelectStmt: { targetList: { ResTarget: { val: unknown } }[] } };
    stmt.SelectStmt.targetList[1]!.ResTarget.val = { SomeFutureExpr: { arg: { A_Const: { ival: { ival: 1 } } } } };
    const l = resultLineage(stmt)!;
    expect(columns(l)).toEqual(['lower: customers.email', '?column?: customers.* orders.*']);
  });
});

describe('subqueries, CTEs, set operations, LATERAL, VALUES, functions in FROM', () => {
  it('traces expressions over a subquery in FROM, and its WHERE as a predicate', () => {
    const l = must("select upper(s.e) as u, s.id from (select id, lower(email) as e from customers where ssn like '1%') s where s.e <> ''");
    expect(columns(l)).toEqual(['u: customers.email', 'id!: customers.id']);
    expect(l.columns?.[0]?.functions).toEqual(['upper', 'lower']);
    expect(keys(l.predicates)).toEqual(['customers.email', 'customers.ssn']);
  });

  it('traces CTEs that build on each other, and renames their columns', () => {
    const l = must('with a(x) as (select email from customers), b as (select md5(x) as h from a) select b.h, a.x from a, b');
    expect(columns(l)).toEqual(['h: customers.email', 'x!: customers.email']);
    expect(l.functions).toEqual(['md5']);
  });

  it('lets a CTE hide a table of the same name', () => {
    expect(columns(must('with customers as (select 1 as email) select email from customers'))).toEqual(['email: ']);
  });

  it('traces a recursive CTE through its base and recursive parts until nothing changes', () => {
    const tree = must(
      `with recursive t(id, parent, path) as (
         select id, parent_id, name::text from nodes where parent_id is null
         union all
         select n.id, n.parent_id, t.path || '/' || n.name from nodes n join t on n.parent_id = t.id)
       select * from t`,
    );
    expect(columns(tree)).toEqual(['id: nodes.id', 'parent: nodes.parent_id', 'path: nodes.name']);
    expect(keys(tree.predicates)).toEqual(['nodes.id', 'nodes.parent_id']);
    // Columns that rotate reach every base column after a few rounds.
    const rotate = must('with recursive r(a, b, c) as (select id, email, name from customers union all select b, c, a from r) select a from r');
    expect(columns(rotate)).toEqual(['a: customers.email customers.id customers.name']);
  });

  it('traces a data-modifying CTE through its RETURNING', () => {
    const l = must('with d as (delete from customers where id < 0 returning *) select email from d');
    expect(columns(l)).toEqual(['email!: customers.email']);
    expect(keys(l.predicates)).toEqual(['customers.id']);
  });

  it('unions the columns of set operations by position', () => {
    const l = must('select email, id from customers union select note, 1 from orders intersect select name, id from staff order by 2');
    expect(columns(l)).toEqual(['email: customers.email orders.note staff.name', 'id: customers.id staff.id']);
    // A position stands for every output column (see below).
    expect(keys(l.predicates)).toEqual(['customers.email', 'customers.id', 'orders.note', 'staff.id', 'staff.name']);
    // ORDER BY of a set operation computes from its output.
    expect(keys(must('select email from customers union select name from orders order by lower(email)').predicates)).toEqual([
      'customers.email',
      'orders.name',
    ]);
    expect(columns(must('select x from (select email from customers union all select name from orders) as u(x)'))).toEqual([
      'x: customers.email orders.name',
    ]);
  });

  it('keeps positions of a set operation when one branch uses an unknown *', () => {
    expect(columns(must('select email from customers union all select * from archived'))).toEqual(['email: archived.* customers.email']);
  });

  it('sees the relations before a LATERAL subquery', () => {
    const l = must('select c.email, x.n from customers c cross join lateral (select upper(c.name) as n) x');
    expect(columns(l)).toEqual(['email!: customers.email', 'n: customers.name']);
  });

  it('traces VALUES lists', () => {
    expect(columns(must("select v.a, v.b from (values (1, 'x'), (2, 'y')) as v(a, b)"))).toEqual(['a: ', 'b: ']);
    expect(columns(must('select * from customers c, lateral (values (c.email)) v'))).toBeUndefined();
    expect(columns(must('select v.column1 from customers c, lateral (values (c.email)) v'))).toEqual(['column1!: customers.email']);
    expect(columns(must("values (1, 'a')"))).toEqual(['column1: ', 'column2: ']);
  });

  it('traces functions in FROM to their arguments', () => {
    const l = must('select t.a, t.b from customers c, jsonb_to_recordset(c.doc) as t(a int, b text)');
    expect(columns(l)).toEqual(['a: customers.doc', 'b: customers.doc']);
    expect(l.columns?.[0]?.functions).toEqual(['jsonb_to_recordset']);
    expect(l.functions).toEqual(['jsonb_to_recordset']);
    expect(columns(must('select * from customers c, unnest(c.tags) with ordinality as u(tag, n)', withCatalog))?.slice(4)).toEqual([
      'tag: customers.tags',
      'n: customers.tags',
    ]);
    expect(columns(must('select * from generate_series(1, 3) g'))).toEqual(['g: ']);
    expect(columns(must('select f.x from customers c, f(c.email) as f(x)'))).toEqual(['x: customers.email']);
    // A function whose columns are not known: positions unknown.
    const unknown = must('select * from f(1)');
    expect(unknown.columns).toBeUndefined();
    expect(unknown.functions).toEqual(['f']);
  });

  it('traces JSON_TABLE and XMLTABLE columns to their documents', () => {
    expect(columns(must("select j.* from customers c, json_table(c.doc, '$' columns (a int path '$.a', b text path '$.b')) j"))).toEqual([
      'a: customers.doc',
      'b: customers.doc',
    ]);
    expect(columns(must("select * from xmltable('/r' passing (select doc from docs) columns a int, b text) x"))).toEqual([
      'a: docs.doc',
      'b: docs.doc',
    ]);
  });
});

describe('predicates', () => {
  it('gathers WHERE, JOIN, GROUP BY, HAVING, ORDER BY, DISTINCT ON and LIMIT', () => {
    const l = must(
      `select distinct on (c.name) c.name, count(*) from customers c join orders o on o.customer_id = c.id
       where c.ssn like '1%' group by c.name, o.note having sum(o.total) > 10 order by c.name, max(c.email)
       limit (select count(*) from limits l where l.kind = 'x')`,
    );
    expect(columns(l)).toEqual(['name!: customers.name', 'count: ']);
    expect(keys(l.predicates)).toEqual([
      'customers.email',
      'customers.id',
      'customers.name',
      'customers.ssn',
      'limits.kind',
      'orders.customer_id',
      'orders.note',
      'orders.total',
    ]);
  });

  it('resolves ORDER BY and GROUP BY output names to their sources', () => {
    expect(keys(must('select lower(email) as e, name from customers group by e, name order by e', withCatalog).predicates)).toEqual([
      'customers.email',
      'customers.name',
    ]);
    expect(keys(must('select lower(email) as e, name from customers order by e').predicates)).toEqual(['customers.email']);
  });

  it('does not depend on literals: a position stands for every output column', () => {
    // The analysis is shared by statements of the same shape (`ORDER BY ?`).
    for (const sql of ['select email, name from customers order by 1', 'select email, name from customers group by 2, 1', 'select distinct on (1) email, name from customers']) {
      expect(keys(must(sql).predicates), sql).toEqual(['customers.email', 'customers.name']);
    }
  });

  it('reads the whole of EXISTS and IN subqueries in WHERE', () => {
    const l = must(
      `select c.id from customers c
       where c.email in (select email from vips where tier = 1)
         and exists (select b.reason from blocked b where b.customer_id = c.id)`,
      withCatalog,
    );
    expect(columns(l)).toEqual(['id!: customers.id']);
    expect(keys(l.predicates)).toEqual([
      'blocked.customer_id',
      'blocked.reason',
      'customers.email',
      'customers.id',
      'vips.email',
      'vips.tier',
    ]);
  });

  it('reads the columns that USING compares', () => {
    expect(keys(must('select 1 from customers join orders using (id)').predicates)).toEqual(['customers.id', 'orders.id']);
  });
});

describe('property: literals do not change the lineage', () => {
  // Statements that differ only in literals share one analysis (their shape is the same).
  const templates = [
    'select email, lower(name) as n, ? as k from customers c where c.id > ? order by ?, ? limit ? offset ?',
    'select name, count(*) from customers group by ? having count(*) > ? order by ?',
    'select distinct on (?) email, name from customers order by ?, ?',
    'select substring(email from ? for ?), case when ssn = ? then ? else name end from customers',
    'select email from customers union select note from orders order by ? offset ?',
    'select * from generate_series(?, ?) g, customers c where c.id = g',
    'select * from (values (?, ?), (?, ?)) v(a, b) order by ?',
    'update customers set name = ? where id = ? returning name, ?',
    "select email, name from customers order by ? desc, ? nulls first",
  ];
  const literal = fc.oneof(fc.integer({ min: -2, max: 5 }).map(String), fc.constantFrom("'x'", "'1'", "''", '1.5', "e'a'"));
  it('gives the same lineage whatever the literals', () => {
    fc.assert(
      fc.property(fc.constantFrom(...templates), fc.array(literal, { minLength: 6, maxLength: 6 }), fc.array(literal, { minLength: 6, maxLength: 6 }), (template, a, b) => {
        const fill = (values: readonly string[]): string => {
          let i = 0;
          return template.replace(/\?/g, () => values[i++ % values.length]!);
        };
        expect(lineage(fill(a)), fill(a)).toEqual(lineage(fill(b)));
      }),
      { numRuns: 300 },
    );
  });
});

describe('statements', () => {
  it('traces RETURNING of INSERT, UPDATE and DELETE', () => {
    expect(columns(must('delete from customers c where c.ssn is null returning c.id, email'))).toEqual(['id!: customers.id', 'email!: customers.email']);
    expect(keys(must('delete from customers c where c.ssn is null returning c.id').predicates)).toEqual(['customers.ssn']);
    const insert = must("insert into customers (id, email) values (1, 'a@b') returning *", withCatalog);
    expect(columns(insert)).toEqual(['id: customers.id', 'email: customers.email', 'name!: customers.name', 'ssn!: customers.ssn']);
    const update = must('update customers set name = lower(email) where id = 1 returning name, ssn');
    expect(columns(update)).toEqual(['name: customers.email customers.name', 'ssn!: customers.ssn']);
    expect(update.functions).toEqual(['lower']);
    expect(keys(update.predicates)).toEqual(['customers.id']);
  });

  it('gives RETURNING * without the catalog no positions', () => {
    const l = must('update customers c set name = o.note from orders o where o.customer_id = c.id returning *');
    expect(l.columns).toBeUndefined();
    expect(keys(l.all)).toEqual(['customers.*', 'orders.*', 'orders.note']);
  });

  it('follows rows an INSERT copies from a query into what RETURNING gives back', () => {
    const l = must('insert into archive (id, contact) select id, email from customers where ssn is null returning contact');
    expect(columns(l)).toEqual(['contact: archive.contact customers.email']);
    expect(keys(l.predicates)).toEqual(['customers.ssn']);
    const upsert = must("insert into customers as c (id, email) values (1, 'x') on conflict (id) do update set name = excluded.email returning name");
    expect(columns(upsert)).toEqual(['name: customers.email customers.name']);
    // `excluded` is the row the query proposed.
    const fromQuery = must('insert into customers (id, email) select id, ssn from staging on conflict (id) do update set name = excluded.email returning name');
    expect(columns(fromQuery)).toEqual(['name: customers.email customers.name staging.ssn']);
  });

  it('traces MERGE ... RETURNING and its ON and WHEN conditions', () => {
    const l = must(
      `merge into customers t using staging s on t.id = s.id
       when matched and s.flag then update set email = s.email
       when not matched then insert (id, email) values (s.id, s.email)
       returning t.email, merge_action()`,
    );
    expect(columns(l)).toEqual(['email: customers.email staging.email', 'merge_action: ']);
    expect(keys(l.predicates)).toEqual(['customers.id', 'staging.flag', 'staging.id']);
  });

  it('traces RETURNING old and new (PostgreSQL 18)', () => {
    expect(columns(must('update customers set email = lower(email) returning old.email, new.email'))).toEqual([
      'email: customers.email',
      'email: customers.email',
    ]);
  });

  it('traces a cursor to its query', () => {
    expect(columns(must('declare c cursor with hold for select lower(email) from customers'))).toEqual(['lower: customers.email']);
    expect(lineage('fetch 10 from c')).toBeUndefined();
  });

  it('traces COPY ... TO STDOUT', () => {
    expect(columns(must('copy (select email from customers where id > 1) to stdout'))).toEqual(['email!: customers.email']);
    expect(columns(must('copy public.customers (id, email) to stdout with (format csv)'))).toEqual([
      'id!: public.customers.id',
      'email!: public.customers.email',
    ]);
    expect(columns(must('copy customers to stdout', withCatalog))).toEqual([
      'id!: customers.id',
      'email!: customers.email',
      'name!: customers.name',
      'ssn!: customers.ssn',
    ]);
    const unknown = must('copy customers to stdout');
    expect(unknown.columns).toBeUndefined();
    expect(keys(unknown.all)).toEqual(['customers.*']);
    expect(lineage("copy customers to '/tmp/x'")).toBeUndefined();
    expect(lineage('copy customers from stdin')).toBeUndefined();
  });

  it('gives EXPLAIN and SHOW columns without sources', () => {
    expect(must('explain analyze select email from customers')).toEqual({
      columns: [{ name: 'QUERY PLAN', sources: [], direct: false, functions: [] }],
      all: [],
      predicates: [],
      functions: [],
    });
    expect(columns(must('show search_path'))).toEqual(['search_path: ']);
    expect(columns(must('show all'))).toEqual(['name: ', 'setting: ', 'description: ']);
  });

  it('traces CALL to its arguments', () => {
    const l = must('call refresh_contact((select email from customers limit 1), 1)');
    expect(l.columns).toBeUndefined();
    expect(keys(l.all)).toEqual(['customers.email']);
    expect(l.functions).toEqual(['refresh_contact']);
  });

  it('gives statements that return no rows no lineage', () => {
    for (const sql of [
      "insert into customers values (1, 'a')",
      'update customers set name = 1',
      'delete from customers',
      'create table t (a int)',
      'create table t as select email from customers',
      'select email into t from customers',
      'begin',
      "set search_path = 'x'",
      'prepare p as select email from customers',
    ]) {
      expect(lineage(sql), sql).toBeUndefined();
    }
  });
});

describe('robustness', () => {
  it('answers a tree too deep to walk with every table it names', () => {
    let val: unknown = { ColumnRef: { fields: [{ String: { sval: 'email' } }] } };
    for (let i = 0; i < 200_000; i++) val = { FuncCall: { funcname: [{ String: { sval: 'lower' } }], args: [val] } };
    const stmt = {
      SelectStmt: {
        targetList: [{ ResTarget: { val } }],
        fromClause: [{ RangeVar: { relname: 'customers', schemaname: 'crm' } }, { RangeVar: { relname: 'orders' } }],
      },
    };
    const l = resultLineage(stmt)!;
    expect(l.columns).toBeUndefined();
    expect(keys(l.all)).toEqual(['crm.customers.*', 'orders.*']);
    expect(l.functions).toEqual(['lower']);
    expect(resultLineage({ InsertStmt: { relation: { relname: 't' }, selectStmt: stmt } })).toBeUndefined();
  });

  it('never throws on odd shapes', () => {
    for (const stmt of [undefined, null, 1, 'x', [], {}, { SelectStmt: null }, { SelectStmt: { targetList: 'x' } }, { SelectStmt: { fromClause: [{}] } }]) {
      expect(() => resultLineage(stmt)).not.toThrow();
    }
    const throwing: LineageOptions = {
      columnsOf: () => {
        throw new Error('catalog down');
      },
    };
    expect(keys(must('select * from customers', throwing).all)).toEqual(['customers.*']);
  });
});

describe('resultLineageOfSql', () => {
  it('traces a view definition as pg_get_viewdef gives it', () => {
    const l = resultLineageOfSql(' SELECT c.id,\n    lower(c.email) AS email\n   FROM customers c;');
    expect(l && columns(l)).toEqual(['id!: customers.id', 'email: customers.email']);
  });

  it('traces the last statement of a function body', () => {
    const l = resultLineageOfSql("insert into log values (1); select upper(name) from customers where email = $1;");
    expect(l && columns(l)).toEqual(['upper: customers.name']);
    expect(l && keys(l.predicates)).toEqual(['customers.email']);
    expect(resultLineageOfSql('select 1; delete from t')).toBeUndefined();
    expect(resultLineageOfSql('select from where')).toBeUndefined();
    expect(resultLineageOfSql('')).toBeUndefined();
  });
});

// --- property: a column wrapped any way keeps its source --------------------------------------

/** A generated query: its SQL and, per output column, whether it carries customers.email. */
interface Query {
  readonly sql: string;
  /** Output columns are c0, c1 ... */
  readonly carries: readonly boolean[];
}

const literal = fc.constantFrom("'x'", "'@'", "''");

/** Wraps a value (SQL text) in random transformations. */
function wrapped(depth: number): fc.Arbitrary<(v: string) => string> {
  const one: fc.Arbitrary<(v: string) => string> = fc.oneof(
    fc.constantFrom(
      (v: string) => `lower(${v})`,
      (v: string) => `upper(${v})`,
      (v: string) => `reverse(${v})`,
      (v: string) => `md5(${v})`,
      (v: string) => `substring(${v} from 2 for 3)`,
      (v: string) => `substring(${v}, 1, 4)`,
      (v: string) => `${v}::text`,
      (v: string) => `cast(${v} as varchar(40))`,
      (v: string) => `(${v})`,
      (v: string) => `coalesce(${v}, 'none')`,
      (v: string) => `case when ${v} is null then 'n' else 'y' end`,
      (v: string) => `case when true then ${v} end`,
      (v: string) => `(select ${v})`,
      (v: string) => `string_agg(${v}, ',') over ()`,
    ),
    literal.map((l) => (v: string) => `${v} || ${l}`),
    literal.map((l) => (v: string) => `concat(${l}, ${v})`),
  );
  if (depth <= 0) return fc.constant((v: string) => v);
  return fc.array(one, { maxLength: depth }).map((fs) => (v: string) => fs.reduce((acc, f) => f(acc), v));
}

const base: fc.Arbitrary<Query> = fc
  .tuple(
    fc.constantFrom(
      { from: 'customers', ref: 'email' },
      { from: 'customers', ref: 'customers.email' },
      { from: 'customers c', ref: 'c.email' },
      { from: 'public.customers', ref: 'email' },
      { from: 'customers c join orders o on o.customer_id = c.id', ref: 'c.email' },
      { from: 'orders o join customers c on o.customer_id = c.id', ref: 'email' },
      { from: 'customers c', ref: 'c::text' },
      { from: 'customers c', ref: 'row_to_json(c)::text' },
    ),
    wrapped(3),
    fc.boolean(),
    wrapped(2),
  )
  .map(([{ from, ref }, f, second, g]) => ({
    sql: `select ${f(ref)} as c0, ${second ? g(ref) : "'k'"} as c1 from ${from}`,
    carries: [true, second],
  }));

const query: fc.Arbitrary<Query> = fc.letrec<{ q: Query }>((tie) => ({
  q: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    base,
    // A subquery in FROM, transformed again.
    fc.tuple(tie('q'), wrapped(2), fc.boolean()).map(([q, f, swap]) => ({
      sql: swap ? `select s.c1 as c0, ${f('s.c0')} as c1 from (${q.sql}) s` : `select ${f('s.c0')} as c0, c1 from (${q.sql}) as s`,
      carries: swap ? [q.carries[1]!, q.carries[0]!] : [q.carries[0]!, q.carries[1]!],
    })),
    // A CTE, possibly read with *.
    fc.tuple(tie('q'), wrapped(2), fc.boolean()).map(([q, f, star]) => ({
      sql: star ? `with w as (${q.sql}) select * from w` : `with w(a, b) as (${q.sql}) select ${f('a')} as c0, w.b as c1 from w`,
      carries: q.carries,
    })),
    // A scalar subquery.
    fc.tuple(tie('q'), wrapped(2)).map(([q, f]) => ({
      sql: `select (select ${f('s.c0')} from (${q.sql}) s limit 1) as c0, 'z' as c1`,
      carries: [q.carries[0]!, false],
    })),
    // A set operation.
    fc.tuple(tie('q'), tie('q'), fc.constantFrom('union', 'union all', 'intersect', 'except')).map(([a, b, op]) => ({
      sql: `(${a.sql}) ${op} (${b.sql})`,
      carries: a.carries.map((c, i) => c || b.carries[i]!),
    })),
    // LATERAL.
    tie('q').map((q) => ({ sql: `select l.c0, l.c1 from orders o cross join lateral (${q.sql}) l`, carries: q.carries })),
  ),
})).q;

describe('property: wrapped columns keep their source', () => {
  it('every output that contains customers.email has it among its sources', () => {
    const carriesEmail = (sources: readonly ColumnSource[]): boolean =>
      sources.some((s) => s.table === 'customers' && (s.column === 'email' || s.column === '*'));
    fc.assert(
      fc.property(query, fc.boolean(), (q, catalog) => {
        const parsed = parseSql(q.sql);
        expect(parsed.ok, q.sql).toBe(true);
        if (!parsed.ok) return;
        const l = resultLineage(parsed.stmts[0]!.stmt, catalog ? withCatalog : {});
        expect(l, q.sql).toBeDefined();
        expect(l!.columns, q.sql).toHaveLength(2);
        q.carries.forEach((carries, i) => {
          if (carries) expect(carriesEmail(l!.columns![i]!.sources), `${q.sql} column ${i}`).toBe(true);
        });
        if (q.carries.some(Boolean)) expect(carriesEmail(l!.all), q.sql).toBe(true);
      }),
      { numRuns: 400 },
    );
  });
});

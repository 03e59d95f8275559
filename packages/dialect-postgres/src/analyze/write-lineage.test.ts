import type { ColumnFlow, ColumnSource, FlowSubtype, WriteLineage } from '@sluice/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzePostgres, analyzeUncached } from './analyze.js';
import { type LineageOptions, statementLineage, type StatementLineage } from './lineage.js';
import { parseSql } from './parse.js';

const CATALOG: Readonly<Record<string, readonly string[]>> = {
  customers: ['id', 'email', 'name', 'ssn'],
  orders: ['id', 'customer_id', 'total', 'note'],
  archive: ['id', 'email', 'name', 'ssn'],
};
const withCatalog: LineageOptions = { columnsOf: (_schema, table) => CATALOG[table] };

function walk(sql: string, options: LineageOptions = {}): StatementLineage {
  const parsed = parseSql(sql);
  if (!parsed.ok) throw new Error(`${sql}: ${parsed.error}`);
  expect(parsed.stmts).toHaveLength(1);
  return statementLineage(parsed.stmts[0]!.stmt, options);
}

function writes(sql: string, options: LineageOptions = {}): readonly WriteLineage[] | undefined {
  return walk(sql, options).writes;
}

/** `t.c` or `s.t.c` as a source. */
function src(name: string): ColumnSource {
  const parts = name.split('.');
  return parts.length === 3 ? { schema: parts[0]!, table: parts[1]!, column: parts[2]! } : { table: parts[0]!, column: parts[1]! };
}

const DIRECT: ReadonlySet<FlowSubtype> = new Set(['IDENTITY', 'TRANSFORMATION', 'AGGREGATION']);

/** A flow from `t.c`. */
function flow(name: string, subtype: FlowSubtype): ColumnFlow {
  return { source: src(name), type: DIRECT.has(subtype) ? 'DIRECT' : 'INDIRECT', subtype };
}

const id = (name: string): ColumnFlow => flow(name, 'IDENTITY');
const tr = (name: string): ColumnFlow => flow(name, 'TRANSFORMATION');

describe('INSERT', () => {
  it('writes the listed columns; literals, parameters and DEFAULT bring no flows', () => {
    expect(writes('insert into t (a, b, c) values (1, $1, default)')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [] },
          { name: 'b', flows: [] },
          { name: 'c', flows: [] },
        ],
        all: [],
        indirect: [],
      },
    ]);
  });

  it('traces INSERT ... SELECT column by column, with the query clauses as indirect flows', () => {
    expect(writes('insert into app.t (a, b) select x, y + 1 from u where u.z > 0 order by u.w')).toEqual([
      {
        schema: 'app',
        table: 't',
        columns: [
          { name: 'a', flows: [id('u.x')] },
          { name: 'b', flows: [tr('u.y')] },
        ],
        all: [src('u.x'), src('u.y')],
        indirect: [flow('u.z', 'FILTER'), flow('u.w', 'SORT')],
      },
    ]);
  });

  it('names columns by position without a column list, and by the catalog when it knows the table', () => {
    expect(writes('insert into t select x, sum(y) from u group by x')).toEqual([
      {
        table: 't',
        columns: [
          { name: '$1', flows: [id('u.x')] },
          { name: '$2', flows: [flow('u.y', 'AGGREGATION')] },
        ],
        positional: true,
        all: [src('u.x'), src('u.y')],
        indirect: [flow('u.x', 'GROUP_BY')],
      },
    ]);
    expect(writes('insert into orders select id, email from customers', withCatalog)).toEqual([
      {
        table: 'orders',
        columns: [
          { name: 'id', flows: [id('customers.id')] },
          { name: 'customer_id', flows: [id('customers.email')] },
        ],
        all: [src('customers.id'), src('customers.email')],
        indirect: [],
      },
    ]);
  });

  it('leaves the columns out when the positions of the query are not known', () => {
    expect(writes('insert into t select * from u where u.ok')).toEqual([{ table: 't', all: [src('u.*')], indirect: [flow('u.ok', 'FILTER')] }]);
    // A column list names the columns; each may then carry anything the query returns.
    expect(writes('insert into t (a, b) select * from u')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [id('u.*')] },
          { name: 'b', flows: [id('u.*')] },
        ],
        all: [src('u.*')],
        indirect: [],
      },
    ]);
  });

  it('writes DEFAULT VALUES with no flows (the columns are named only through the catalog)', () => {
    expect(writes('insert into t default values')).toEqual([{ table: 't', columns: [], all: [], indirect: [] }]);
    expect(writes('insert into orders default values', withCatalog)?.[0]?.columns).toEqual([
      { name: 'id', flows: [] },
      { name: 'customer_id', flows: [] },
      { name: 'total', flows: [] },
      { name: 'note', flows: [] },
    ]);
  });

  it('merges the rows of a multi-row VALUES and follows scalar subqueries', () => {
    expect(writes('insert into t (a, b) values ((select x from u limit 1), 1), (2, lower($1))')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [id('u.x')] },
          { name: 'b', flows: [] },
        ],
        all: [src('u.x')],
        indirect: [],
      },
    ]);
  });

  it('traces a set operation branch by branch', () => {
    expect(writes('insert into t (a, b) select x, y from u union all select p, upper(q) from v')?.[0]?.columns).toEqual([
      { name: 'a', flows: [id('u.x'), id('v.p')] },
      { name: 'b', flows: [id('u.y'), tr('v.q')] },
    ]);
  });

  it('ON CONFLICT DO UPDATE: SET adds to the columns; EXCLUDED.c is the value proposed for c', () => {
    expect(
      writes('insert into t (a, b) select x, y from u on conflict (id) do update set a = excluded.a, b = t.b + excluded.b, c = excluded.c where t.z > 0'),
    ).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [id('u.x')] },
          // The inserted value, or the old one plus the proposed one.
          { name: 'b', flows: [id('u.y'), tr('u.y'), tr('t.b')] },
          // c is not inserted: what EXCLUDED.c holds is its default.
          { name: 'c', flows: [] },
        ],
        all: [src('u.x'), src('u.y'), src('t.b')],
        indirect: [flow('t.z', 'FILTER')],
      },
    ]);
    // Without a column list and a catalog, the proposed values are not known by name.
    expect(writes('insert into t values (1, 2) on conflict do nothing')?.[0]?.columns).toEqual([
      { name: '$1', flows: [] },
      { name: '$2', flows: [] },
    ]);
  });

  it('RETURNING keeps its result lineage; the write is described apart', () => {
    const l = walk('insert into t (a) select x from u returning a, b');
    expect(l.lineage?.columns?.map((c) => [c.name, c.sources])).toEqual([
      ['a', [src('t.a'), src('u.x')]],
      ['b', [src('t.b')]],
    ]);
    expect(l.lineage?.columns?.[0]?.flows).toEqual([id('t.a'), id('u.x')]);
    expect(l.writes).toEqual([{ table: 't', columns: [{ name: 'a', flows: [id('u.x')] }], all: [src('u.x')], indirect: [] }]);
  });

  it('reads the CTEs of the INSERT and of its query', () => {
    const expected = [{ table: 't', columns: [{ name: '$1', flows: [id('u.a')] }], positional: true, all: [src('u.a')], indirect: [flow('u.c', 'FILTER')] }];
    expect(writes('with s as (select a from u where c) insert into t select a from s')).toEqual(expected);
    expect(writes('insert into t with s as (select a from u where c) select a from s')).toEqual(expected);
  });
});

describe('UPDATE', () => {
  it('writes each SET column from its expression; DEFAULT brings nothing', () => {
    expect(writes('update t set a = b, c = lower(d), e = default where f = 1')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [id('t.b')] },
          { name: 'c', flows: [tr('t.d')] },
          { name: 'e', flows: [] },
        ],
        all: [src('t.b'), src('t.d')],
        indirect: [flow('t.f', 'FILTER')],
      },
    ]);
  });

  it('gives each column of a multi-column SET its own position', () => {
    expect(writes('update t set (a, b) = (select u.p, u.q * 2 from u where u.id = t.id), c = 1')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [id('u.p')] },
          { name: 'b', flows: [tr('u.q')] },
          { name: 'c', flows: [] },
        ],
        all: [src('u.p'), src('u.q')],
        indirect: [flow('u.id', 'JOIN'), flow('t.id', 'JOIN')],
      },
    ]);
    expect(writes('update t set (a, b) = (x, y + 1)')?.[0]?.columns).toEqual([
      { name: 'a', flows: [id('t.x')] },
      { name: 'b', flows: [tr('t.y')] },
    ]);
  });

  it('UPDATE ... FROM: a comparison of two relations in WHERE is a JOIN, the rest FILTER', () => {
    expect(writes('update t set a = u.x, b = t.b + 1 from u where u.id = t.uid and u.flag')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [id('u.x')] },
          { name: 'b', flows: [tr('t.b')] },
        ],
        all: [src('u.x'), src('t.b')],
        indirect: [flow('u.id', 'JOIN'), flow('t.uid', 'JOIN'), flow('u.flag', 'FILTER')],
      },
    ]);
    expect(writes('update t set a = u.x from u join v on v.id = u.vid where u.id = t.id and v.live')?.[0]?.indirect).toEqual([
      flow('v.id', 'JOIN'),
      flow('u.vid', 'JOIN'),
      flow('u.id', 'JOIN'),
      flow('t.id', 'JOIN'),
      flow('v.live', 'FILTER'),
    ]);
  });

  it('a value written into part of a column is a transformation', () => {
    expect(writes('update t set a[1] = x, c.f = y')?.[0]?.columns).toEqual([
      { name: 'a', flows: [tr('t.x')] },
      { name: 'c', flows: [tr('t.y')] },
    ]);
  });
});

describe('DELETE', () => {
  it('writes rows without columns; WHERE and USING decide which', () => {
    expect(writes('delete from t where t.a = 1')).toEqual([{ table: 't', columns: [], all: [], indirect: [flow('t.a', 'FILTER')] }]);
    expect(writes('delete from s.t using u where u.id = t.uid and u.gone')).toEqual([
      { schema: 's', table: 't', columns: [], all: [], indirect: [flow('u.id', 'JOIN'), flow('s.t.uid', 'JOIN'), flow('u.gone', 'FILTER')] },
    ]);
    expect(writes('delete from t')).toEqual([{ table: 't', columns: [], all: [], indirect: [] }]);
  });
});

describe('MERGE', () => {
  it('UPDATE SET and INSERT write columns; ON is a JOIN, WHEN conditions FILTER', () => {
    expect(
      writes(
        'merge into t using s on t.id = s.id when matched and s.z then update set a = s.a ' +
          'when not matched then insert (id, a) values (s.id, s.a + 1) when matched then delete',
      ),
    ).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [id('s.a'), tr('s.a')] },
          { name: 'id', flows: [id('s.id')] },
        ],
        all: [src('s.a'), src('s.id')],
        indirect: [flow('t.id', 'JOIN'), flow('s.id', 'JOIN'), flow('s.z', 'FILTER')],
      },
    ]);
  });

  it('an INSERT without a column list writes by position; mixed with named columns, positions are lost', () => {
    expect(writes('merge into t using s on t.id = s.id when not matched then insert values (s.id, s.a)')).toEqual([
      {
        table: 't',
        columns: [
          { name: '$1', flows: [id('s.id')] },
          { name: '$2', flows: [id('s.a')] },
        ],
        positional: true,
        all: [src('s.id'), src('s.a')],
        indirect: [flow('t.id', 'JOIN'), flow('s.id', 'JOIN')],
      },
    ]);
    expect(writes('merge into t using s on t.id = s.id when matched then update set a = s.a when not matched then insert values (s.id, s.a)')).toEqual([
      { table: 't', all: [src('s.a'), src('s.id')], indirect: [flow('t.id', 'JOIN'), flow('s.id', 'JOIN')] },
    ]);
    // With the catalog the INSERT's columns have names.
    expect(
      writes('merge into archive a using customers c on a.id = c.id when matched then update set email = c.email when not matched then insert values (c.id, c.email)', withCatalog)?.[0]
        ?.columns,
    ).toEqual([
      { name: 'email', flows: [id('customers.email')] },
      { name: 'id', flows: [id('customers.id')] },
    ]);
  });

  it('a subquery source, its filters, and DELETE / DO NOTHING only', () => {
    expect(writes('merge into t using (select id, a from s where s.live) x on t.id = x.id when matched then delete when not matched then do nothing')).toEqual([
      { table: 't', columns: [], all: [], indirect: [flow('s.live', 'FILTER'), flow('t.id', 'JOIN'), flow('s.id', 'JOIN')] },
    ]);
  });
});

describe('CREATE TABLE AS, CREATE MATERIALIZED VIEW, SELECT INTO', () => {
  it('names the new columns after the result columns', () => {
    expect(writes('create table n as select a, b + 1 as c, count(*) from t group by a, b')).toEqual([
      {
        table: 'n',
        columns: [
          { name: 'a', flows: [id('t.a')] },
          { name: 'c', flows: [tr('t.b')] },
          { name: 'count', flows: [] },
        ],
        all: [src('t.a'), src('t.b')],
        indirect: [flow('t.a', 'GROUP_BY'), flow('t.b', 'GROUP_BY')],
      },
    ]);
    expect(writes('create materialized view mv as select a, max(b) from t group by a')).toEqual([
      {
        table: 'mv',
        columns: [
          { name: 'a', flows: [id('t.a')] },
          { name: 'max', flows: [flow('t.b', 'AGGREGATION')] },
        ],
        all: [src('t.a'), src('t.b')],
        indirect: [flow('t.a', 'GROUP_BY')],
      },
    ]);
  });

  it('a column list renames the first columns', () => {
    expect(writes('create table s.n (x) as select a, b from t where c')).toEqual([
      {
        schema: 's',
        table: 'n',
        columns: [
          { name: 'x', flows: [id('t.a')] },
          { name: 'b', flows: [id('t.b')] },
        ],
        all: [src('t.a'), src('t.b')],
        indirect: [flow('t.c', 'FILTER')],
      },
    ]);
  });

  it('SELECT INTO, on a query or on the first branch of a set operation', () => {
    const l = walk('select a, b into n from t where c');
    expect(l.lineage).toBeUndefined();
    expect(l.writes).toEqual([
      {
        table: 'n',
        columns: [
          { name: 'a', flows: [id('t.a')] },
          { name: 'b', flows: [id('t.b')] },
        ],
        all: [src('t.a'), src('t.b')],
        indirect: [flow('t.c', 'FILTER')],
      },
    ]);
    expect(walk('select a into n from t union select b from u')).toEqual({
      writes: [{ table: 'n', columns: [{ name: 'a', flows: [id('t.a'), id('u.b')] }], all: [src('t.a'), src('u.b')], indirect: [] }],
    });
  });

  it('WITH NO DATA writes no rows; EXECUTE writes columns that cannot be told', () => {
    expect(writes('create table n as select a from t with no data')).toBeUndefined();
    expect(writes('create table n as execute p')).toEqual([{ table: 'n', all: [], indirect: [] }]);
  });
});

describe('COPY, TRUNCATE, REFRESH, EXPLAIN ANALYZE', () => {
  it('COPY FROM writes the listed columns with no flows', () => {
    expect(walk('copy t (a, b) from stdin')).toEqual({
      writes: [
        {
          table: 't',
          columns: [
            { name: 'a', flows: [] },
            { name: 'b', flows: [] },
          ],
          all: [],
          indirect: [],
        },
      ],
    });
    expect(writes('copy t from stdin')).toEqual([{ table: 't', all: [], indirect: [] }]);
    expect(writes("copy orders from '/tmp/x.csv'", withCatalog)?.[0]?.columns?.map((c) => c.name)).toEqual(['id', 'customer_id', 'total', 'note']);
    expect(writes('copy t to stdout')).toBeUndefined();
  });

  it('TRUNCATE deletes rows of each table; REFRESH rewrites a view from a definition it does not show', () => {
    expect(writes('truncate a, s.b')).toEqual([
      { table: 'a', columns: [], all: [], indirect: [] },
      { schema: 's', table: 'b', columns: [], all: [], indirect: [] },
    ]);
    expect(writes('refresh materialized view mv')).toEqual([{ table: 'mv', all: [], indirect: [] }]);
    expect(writes('refresh materialized view mv with no data')).toBeUndefined();
  });

  it('EXPLAIN ANALYZE runs its statement; EXPLAIN does not', () => {
    expect(writes('explain analyze delete from t where x')).toEqual([{ table: 't', columns: [], all: [], indirect: [flow('t.x', 'FILTER')] }]);
    expect(writes('explain (analyze false) delete from t where x')).toBeUndefined();
    expect(writes('explain delete from t where x')).toBeUndefined();
  });

  it('a SELECT writes nothing', () => {
    expect(writes('select a from t where b')).toBeUndefined();
  });
});

describe('data-modifying CTEs', () => {
  it('writes both tables; the INSERT carries the deleted rows and what chose them', () => {
    expect(writes('with d as (delete from a where a.x > 0 returning *) insert into b select * from d')).toEqual([
      { table: 'a', columns: [], all: [], indirect: [flow('a.x', 'FILTER')] },
      { table: 'b', all: [src('a.*')], indirect: [flow('a.x', 'FILTER')] },
    ]);
    expect(writes('with d as (delete from customers where ssn is null returning *) insert into archive select * from d', withCatalog)).toEqual([
      { table: 'customers', columns: [], all: [], indirect: [flow('customers.ssn', 'FILTER')] },
      {
        table: 'archive',
        columns: [
          { name: 'id', flows: [id('customers.id')] },
          { name: 'email', flows: [id('customers.email')] },
          { name: 'name', flows: [id('customers.name')] },
          { name: 'ssn', flows: [id('customers.ssn')] },
        ],
        all: [src('customers.id'), src('customers.email'), src('customers.name'), src('customers.ssn')],
        indirect: [flow('customers.ssn', 'FILTER')],
      },
    ]);
  });

  it('an UPDATE in a CTE read by the query: its write, and the result through RETURNING', () => {
    const l = walk('with u as (update a set x = y + 1 where z returning id, x) select id, x from u');
    expect(l.writes).toEqual([{ table: 'a', columns: [{ name: 'x', flows: [tr('a.y')] }], all: [src('a.y')], indirect: [flow('a.z', 'FILTER')] }]);
    expect(l.lineage?.columns?.map((c) => c.flows)).toEqual([[id('a.id')], [id('a.x'), tr('a.y')]]);
    expect(l.lineage?.indirect).toEqual([flow('a.z', 'FILTER')]);
  });

  it('a CTE that returns nothing adds nothing to the statement that follows', () => {
    const l = walk('with d as (delete from a where x) insert into b (c) select 1');
    expect(l.writes).toEqual([
      { table: 'a', columns: [], all: [], indirect: [flow('a.x', 'FILTER')] },
      { table: 'b', columns: [{ name: 'c', flows: [] }], all: [], indirect: [] },
    ]);
    const r = walk('with d as (delete from a where x) select b from c');
    expect(r.lineage?.predicates).toEqual([]);
    expect(r.writes).toHaveLength(1);
  });

  it('two statements into one table give one entry', () => {
    expect(writes('with d as (delete from t where x returning a) insert into t (a) select a from d')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [id('t.a')] }], all: [src('t.a')], indirect: [flow('t.x', 'FILTER')] },
    ]);
    // Rows of unknown positions make the columns of the merged entry unknown.
    expect(writes('with d as (delete from t where x returning *) insert into t select * from d')).toEqual([
      { table: 't', all: [src('t.*')], indirect: [flow('t.x', 'FILTER')] },
    ]);
  });

  it('COPY of a DELETE ... RETURNING writes and returns', () => {
    const l = walk('copy (delete from t where x returning a) to stdout');
    expect(l.lineage?.columns?.[0]?.flows).toEqual([id('t.a')]);
    expect(l.writes).toEqual([{ table: 't', columns: [], all: [], indirect: [flow('t.x', 'FILTER')] }]);
  });
});

describe('flow kinds of result columns', () => {
  const flows = (sql: string, options?: LineageOptions): (readonly ColumnFlow[] | undefined)[] | undefined =>
    walk(sql, options).lineage?.columns?.map((c) => c.flows);

  it('IDENTITY for a column, TRANSFORMATION through an expression, a function or a cast', () => {
    expect(flows('select a, (a), a collate "C", a::text, lower(b), a || b, -a, coalesce(a, b), b[1], (c).f from t')).toEqual([
      [id('t.a')],
      [id('t.a')],
      [id('t.a')],
      [tr('t.a')],
      [tr('t.b')],
      [tr('t.a'), tr('t.b')],
      [tr('t.a')],
      [tr('t.a'), tr('t.b')],
      [tr('t.b')],
      [tr('t.c')],
    ]);
  });

  it('AGGREGATION through aggregates, also as window functions and with aggregate syntax', () => {
    expect(
      flows(
        'select count(a), sum(b + 1), count(distinct c), avg(d) over (), myagg(e) over (), pg_catalog.max(f), ' +
          'my.thing(g) filter (where true), percentile_cont(0.5) within group (order by h), string_agg(i, j), lag(k) over () from t',
      ),
    ).toEqual([
      [flow('t.a', 'AGGREGATION')],
      [flow('t.b', 'AGGREGATION')],
      [flow('t.c', 'AGGREGATION')],
      [flow('t.d', 'AGGREGATION')],
      [flow('t.e', 'AGGREGATION')],
      [flow('t.f', 'AGGREGATION')],
      [flow('t.g', 'AGGREGATION')],
      [flow('t.h', 'AGGREGATION')],
      [flow('t.i', 'AGGREGATION'), flow('t.j', 'AGGREGATION')],
      [tr('t.k')],
    ]);
  });

  it("an aggregate's ORDER BY sorts and its FILTER picks rows", () => {
    expect(flows("select string_agg(x, ',' order by y), count(*) filter (where z > 0) from t")).toEqual([
      [flow('t.x', 'AGGREGATION'), flow('t.y', 'SORT')],
      [flow('t.z', 'FILTER')],
    ]);
    expect(flows('select json_arrayagg(v order by o) filter (where f) over (partition by p) from t')).toEqual([
      [flow('t.f', 'FILTER'), flow('t.o', 'SORT'), flow('t.p', 'WINDOW'), flow('t.v', 'AGGREGATION')],
    ]);
  });

  it('CONDITIONAL for columns only in CASE conditions; a column may flow several ways', () => {
    expect(flows('select case when b > 0 then c else d end, case a when 1 then b end, case when a > 0 then a end from t')).toEqual([
      [flow('t.b', 'CONDITIONAL'), tr('t.c'), tr('t.d')],
      [flow('t.a', 'CONDITIONAL'), tr('t.b')],
      [tr('t.a'), flow('t.a', 'CONDITIONAL')],
    ]);
  });

  it("WINDOW for a window's PARTITION BY and ORDER BY, named windows included", () => {
    expect(flows('select sum(x) over (partition by p order by q), row_number() over w from t window w as (order by r)')).toEqual([
      [flow('t.x', 'AGGREGATION'), flow('t.p', 'WINDOW'), flow('t.q', 'WINDOW')],
      [flow('t.r', 'WINDOW')],
    ]);
  });

  it('composes through subqueries, CTEs and set operations', () => {
    expect(flows('select sum(x), y from (select a + 1 as x, case when b then c end as y from t) s group by y')).toEqual([
      [flow('t.a', 'AGGREGATION')],
      [flow('t.b', 'CONDITIONAL'), tr('t.c')],
    ]);
    expect(flows('with s as (select a from t) select a from s union select b from u')).toEqual([[id('t.a'), id('u.b')]]);
    expect(flows('select (select max(total) from orders o where o.customer_id = c.id) as m from customers c', withCatalog)).toEqual([
      [flow('orders.total', 'AGGREGATION')],
    ]);
    expect(flows('select case when (select count(*) from u where u.k = t.k) > 0 then t.v end from t')).toEqual([[tr('t.v')]]);
  });

  it('a whole-row reference transforms the row', () => {
    expect(flows('select row_to_json(c), c.* is null from customers c', withCatalog)).toEqual([[tr('customers.*')], [tr('customers.*')]]);
    // Without the catalog, `c` may also be a column of that name.
    expect(flows('select row_to_json(c) from customers c')).toEqual([[tr('customers.c'), tr('customers.*')]]);
  });

  it('COPY ... TO and fixed results', () => {
    expect(flows('copy orders (id, total) to stdout')).toEqual([[id('orders.id')], [id('orders.total')]]);
    // No source to classify: flows and indirect are left out.
    expect(walk('explain select a from t').lineage).toEqual({
      columns: [{ name: 'QUERY PLAN', sources: [], direct: false, functions: [] }],
      all: [],
      predicates: [],
      functions: [],
    });
  });
});

describe('statement-level indirect flows', () => {
  const indirect = (sql: string): readonly ColumnFlow[] | undefined => walk(sql).lineage?.indirect;

  it('JOIN for ON, USING, and comparisons of two relations in WHERE; FILTER for the rest of WHERE and HAVING', () => {
    expect(indirect('select a.x from a join b on a.id = b.aid where a.y > 0 and a.id = b.z group by a.x having count(b.w) > 1 order by a.x')).toEqual([
      flow('a.id', 'JOIN'),
      flow('b.aid', 'JOIN'),
      flow('a.y', 'FILTER'),
      flow('b.z', 'JOIN'),
      flow('a.x', 'GROUP_BY'),
      flow('a.x', 'SORT'),
      flow('b.w', 'FILTER'),
    ]);
    expect(indirect('select * from a join b using (id)')).toEqual([flow('a.id', 'JOIN'), flow('b.id', 'JOIN')]);
    expect(indirect('select * from a natural join b')).toEqual([flow('a.*', 'JOIN'), flow('b.*', 'JOIN')]);
    // One relation compared with itself, or a column with a constant: FILTER.
    expect(indirect('select 1 from a, b where a.x = a.y and b.z = 1')).toEqual([flow('a.x', 'FILTER'), flow('a.y', 'FILTER'), flow('b.z', 'FILTER')]);
  });

  it('EXISTS and IN subqueries FILTER, whatever they compare inside', () => {
    expect(indirect('select 1 from a where exists (select 1 from c where c.id = a.id) and a.k in (select k from d where d.j = a.j)')).toEqual([
      flow('c.id', 'FILTER'),
      flow('a.id', 'FILTER'),
      flow('d.j', 'FILTER'),
      flow('a.j', 'FILTER'),
      flow('a.k', 'FILTER'),
      flow('d.k', 'FILTER'),
    ]);
  });

  it('GROUP_BY, DISTINCT ON, SORT, WINDOW, LIMIT and TABLESAMPLE', () => {
    expect(indirect('select distinct on (a) a, b, sum(c) over (partition by d) from t tablesample bernoulli (e) group by a, b, c, d order by a, f limit g')).toEqual([
      flow('t.e', 'FILTER'),
      flow('t.d', 'WINDOW'),
      flow('t.d', 'GROUP_BY'),
      flow('t.a', 'GROUP_BY'),
      flow('t.a', 'SORT'),
      flow('t.b', 'GROUP_BY'),
      flow('t.c', 'GROUP_BY'),
      flow('t.f', 'SORT'),
      flow('t.g', 'FILTER'),
    ]);
  });

  it('subqueries in FROM and in the select list keep their own kinds', () => {
    expect(indirect('select x from (select a as x from t where t.b > 0 order by t.c) s where s.x > 1')).toEqual([
      flow('t.b', 'FILTER'),
      flow('t.c', 'SORT'),
      flow('t.a', 'FILTER'),
    ]);
  });
});

describe('through the analyzer', () => {
  it('an analysis carries its writes, shared by statements of the same shape', () => {
    const a = analyzePostgres('update accounts set balance = balance + 10 where id = 7');
    expect(a.writes).toEqual([{ table: 'accounts', columns: [{ name: 'balance', flows: [tr('accounts.balance')] }], all: [src('accounts.balance')], indirect: [flow('accounts.id', 'FILTER')] }]);
    expect(a.lineage).toBeUndefined();
    expect(analyzePostgres('update accounts set balance = balance + 99 where id = 3')).toBe(a);
    expect(analyzeUncached('select 1').writes).toBeUndefined();
  });

  it('a PREPARE describes the writes of the statement it prepares, not its own', () => {
    const a = analyzeUncached('prepare p (int) as insert into t (a) select x from u where y = $1');
    expect(a.writes).toBeUndefined();
    expect(a.prepare?.statement.writes).toEqual([{ table: 't', columns: [{ name: 'a', flows: [id('u.x')] }], all: [src('u.x')], indirect: [flow('u.y', 'FILTER')] }]);
  });

  it('several statements: each part has its own', () => {
    const a = analyzeUncached('delete from a; insert into b (x) values (1)');
    expect(a.writes).toBeUndefined();
    expect(a.parts?.map((p) => p.writes?.[0]?.table)).toEqual(['a', 'b']);
  });
});

describe('robustness', () => {
  it('answers a tree too deep to walk with every table written, carrying any table named', () => {
    let val: unknown = { ColumnRef: { fields: [{ String: { sval: 'email' } }] } };
    for (let i = 0; i < 200_000; i++) val = { FuncCall: { funcname: [{ String: { sval: 'lower' } }], args: [val] } };
    const select = {
      SelectStmt: {
        targetList: [{ ResTarget: { val } }],
        fromClause: [{ RangeVar: { relname: 'customers', schemaname: 'crm' } }],
      },
    };
    const l = statementLineage({ InsertStmt: { relation: { relname: 't' }, selectStmt: select } });
    expect(l.lineage).toBeUndefined();
    const every = [src('crm.customers.*'), src('t.*')];
    expect(l.writes).toEqual([{ table: 't', all: every, indirect: every.map((s) => ({ source: s, type: 'INDIRECT', subtype: 'FILTER' })) }]);
  });
});

// --- properties ------------------------------------------------------------------------------

const key = (s: ColumnSource): string => `${s.schema ?? ''}.${s.table}.${s.column}`;
const keys = (sources: readonly ColumnSource[]): string[] => [...new Set(sources.map(key))].sort();

describe('property: INSERT ... SELECT writes what the query returns', () => {
  const expressions = [
    'c.email',
    'c.id',
    'o.total',
    'o.total * 2',
    'upper(c.name)',
    "case when c.ssn is null then o.note else 'x' end",
    '1',
    '$1',
    'coalesce(o.note, c.name)',
    '(select max(o2.total) from orders o2 where o2.customer_id = c.id)',
    'c.id::text',
  ];
  const targets = ['id', 'email', 'name', 'ssn'];
  const from = [
    'customers c join orders o on o.customer_id = c.id',
    'customers c, orders o where o.customer_id = c.id and o.total > 10',
    'customers c left join orders o using (id) order by 1',
  ];

  it('gives each written column exactly the flows of the selected column, by position', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray(targets, { minLength: 1 }),
        fc.array(fc.constantFrom(...expressions), { minLength: 4, maxLength: 4 }),
        fc.constantFrom(...from),
        fc.boolean(),
        (cols, exprs, source, listed) => {
          const picked = exprs.slice(0, listed ? cols.length : exprs.length);
          const select = `select ${picked.join(', ')} from ${source}`;
          const insert = `insert into archive ${listed ? `(${cols.join(', ')}) ` : ''}${select}`;
          for (const options of [{}, withCatalog]) {
            const query = walk(select, options).lineage!;
            const [write] = walk(insert, options).writes!;
            expect(write!.table).toBe('archive');
            const names = listed ? cols : options === withCatalog ? CATALOG['archive']!.slice(0, picked.length) : picked.map((_, i) => `$${i + 1}`);
            expect(write!.columns?.map((c) => c.name)).toEqual(names);
            expect(write!.positional === true).toBe(!listed && options !== withCatalog);
            write!.columns!.forEach((c, i) => {
              const selected = query.columns![i]!;
              expect(c.flows).toEqual(selected.flows);
              // Every source of the selected column flows somehow; the DIRECT ones carry values.
              expect(keys(c.flows.map((f) => f.source))).toEqual(keys(selected.sources));
            });
            const direct = write!.columns!.flatMap((c) => c.flows.filter((f) => f.type === 'DIRECT').map((f) => f.source));
            expect(keys(write!.all)).toEqual(keys(direct));
            expect(write!.indirect).toEqual(query.indirect);
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('property: flows classify exactly the sources and the predicates', () => {
  const corpus = [
    'select a, b + c, sum(d) over (partition by e order by f) from t where g > 0 group by a, b, c, d, e, f having count(h) > 1 order by a limit 3',
    'select x.a, y.b from x join y on x.id = y.xid left join z using (k) where x.c in (select c from w where w.d = x.d)',
    'select case when s.a then s.b else (select max(c) from u where u.e = s.e) end from (select * from t) s',
    'with recursive r(n) as (select a from t union all select n + 1 from r where n < 10) select sum(n) from r',
    'select distinct on (a) a, string_agg(b, \',\' order by c) filter (where d) from t group by a order by a, e',
    'select row_to_json(t), (t).a, t.b[1] from t where exists (select 1 from u where u.id = t.id)',
    'insert into t (a, b) select x, y from u on conflict (a) do update set b = excluded.b + t.b where excluded.a > 0 returning a, b',
    'update t set a = u.b from u where u.id = t.id returning t.a, u.c',
    'merge into t using s on t.id = s.id when matched and s.f then update set a = s.a when not matched then insert (id) values (s.id) returning t.a',
    'select * from t, lateral (select a from u where u.t = t.id) l, generate_series(1, t.n) g',
    'select json_object(\'k\': a), xmlelement(name x, b) from t order by c',
  ];

  it('each flow is of the right type; result flows cover the sources; indirect flows cover the predicates', () => {
    for (const sql of corpus) {
      for (const options of [{}, withCatalog]) {
        const { lineage } = walk(sql, options);
        expect(lineage, sql).toBeDefined();
        for (const c of lineage!.columns ?? []) {
          expect(keys(c.flows!.map((f) => f.source)), sql).toEqual(keys(c.sources).filter((k) => c.flows!.some((f) => key(f.source) === k) || !sql.includes('excluded')));
          for (const f of c.flows!) expect(f.type, sql).toBe(DIRECT.has(f.subtype) ? 'DIRECT' : 'INDIRECT');
        }
        const indirect = lineage!.indirect!;
        for (const f of indirect) expect(f.type, sql).toBe('INDIRECT');
        const covered = keys(indirect.map((f) => f.source));
        // `excluded.a` stands for the proposed value: the table's own column is a source but not a flow.
        expect(covered, sql).toEqual(keys(lineage!.predicates).filter((k) => covered.includes(k) || !sql.includes('excluded')));
      }
    }
  });
});

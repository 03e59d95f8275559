import type { ColumnFlow, ColumnSource, FlowSubtype, WriteLineage } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { analyzeUncached, createMySqlAnalyzer } from './analyze.js';
import { lex } from './lexer.js';
import { splitTokens } from './normalize.js';
import { type Dialect, parseTokens } from './parse.js';
import { writeLineage } from './write-lineage.js';

const CATALOG: Readonly<Record<string, readonly string[]>> = {
  t: ['a', 'b', 'c'],
  u: ['x', 'y', 'k'],
};

/** The writes of a statement as the analyzer gives them. */
function writes(sql: string, dialect: Dialect = 'mysql'): readonly WriteLineage[] | undefined {
  return analyzeUncached(sql, { dialect }).writes;
}

/** The writes of a statement, with the catalog's columns for `t` and `u`. */
function withCatalog(sql: string): readonly WriteLineage[] | undefined {
  const scan = splitTokens(lex(sql));
  const s = scan.statements[0]!;
  const parsed = parseTokens(scan.tokens, s.start, s.end, 'mysql');
  if (!parsed.ok) throw new Error(parsed.error);
  return writeLineage(parsed.ast, { columnsOf: (_schema, table) => CATALOG[table], ...(parsed.input.rowAlias ? { rowAlias: parsed.input.rowAlias } : {}) });
}

/** `schema.table.column` or `table.column`. */
function src(ref: string): ColumnSource {
  const p = ref.split('.');
  return p.length === 3 ? { schema: p[0]!, table: p[1]!, column: p[2]! } : { table: p[0]!, column: p[1]! };
}
const srcs = (...refs: string[]): ColumnSource[] => refs.map(src);

const DIRECT = new Set<FlowSubtype>(['IDENTITY', 'TRANSFORMATION', 'AGGREGATION']);
function flow(subtype: FlowSubtype): (ref: string) => ColumnFlow {
  return (ref) => ({ source: src(ref), type: DIRECT.has(subtype) ? 'DIRECT' : 'INDIRECT', subtype });
}
const I = flow('IDENTITY');
const T = flow('TRANSFORMATION');
const A = flow('AGGREGATION');
const C = flow('CONDITIONAL');
const W = flow('WINDOW');
const F = flow('FILTER');
const J = flow('JOIN');
const G = flow('GROUP_BY');
const S = flow('SORT');

describe('INSERT and REPLACE', () => {
  it('VALUES with a column list: columns set from literals and parameters have no flows', () => {
    expect(writes('insert into t (a, b) values (1, ?), (2, default)')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [] }, { name: 'b', flows: [] }], all: [], indirect: [] },
    ]);
  });

  it('VALUES: subqueries flow, and a value naming a column set earlier in the row carries its value', () => {
    expect(writes('insert into s.t (a, b, c) values ((select x from u where k = 1), a, upper(c)), (1, 2, (select max(y) from u))')).toEqual([
      {
        schema: 's',
        table: 't',
        columns: [
          { name: 'a', flows: [T('u.x')] },
          { name: 'b', flows: [T('u.x')] },
          { name: 'c', flows: [A('u.y')] },
        ],
        all: srcs('u.x', 'u.y'),
        indirect: [F('u.k')],
      },
    ]);
  });

  it('VALUES without a column list: columns by position, or by name when the catalog knows the table', () => {
    expect(writes('insert into t values (1, (select x from u))')).toEqual([
      { table: 't', columns: [{ name: '$1', flows: [] }, { name: '$2', flows: [T('u.x')] }], positional: true, all: srcs('u.x'), indirect: [] },
    ]);
    expect(withCatalog('insert into t values (1, (select x from u), 3)')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [] }, { name: 'b', flows: [T('u.x')] }, { name: 'c', flows: [] }], all: srcs('u.x'), indirect: [] },
    ]);
  });

  it('INSERT ... SELECT with a column list: each column from its position, with the query\'s clauses as statement-level flows', () => {
    expect(
      writes(
        'insert into t (a, b, c) select u.x, sum(v.y) + 1, case when u.k > 0 then upper(v.z) end from u join v on v.id = u.id where u.k > 1 group by u.x, v.z having count(*) > 2 order by u.x',
      ),
    ).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [I('u.x')] },
          { name: 'b', flows: [A('v.y')] },
          { name: 'c', flows: [C('u.k'), T('v.z')] },
        ],
        // A column that only decides (the CASE condition) is not DIRECT.
        all: srcs('u.x', 'v.y', 'v.z'),
        indirect: [J('v.id'), J('u.id'), F('u.k'), G('u.x'), G('v.z'), S('u.x')],
      },
    ]);
  });

  it('INSERT ... SELECT without a column list: by position when the query\'s columns are known', () => {
    expect(writes('insert into t select x, avg(y) over (partition by k) from u')).toEqual([
      { table: 't', columns: [{ name: '$1', flows: [I('u.x')] }, { name: '$2', flows: [A('u.y'), W('u.k')] }], positional: true, all: srcs('u.x', 'u.y'), indirect: [W('u.k')] },
    ]);
    expect(withCatalog('insert into t select * from u')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [I('u.x')] }, { name: 'b', flows: [I('u.y')] }, { name: 'c', flows: [I('u.k')] }], all: srcs('u.x', 'u.y', 'u.k'), indirect: [] },
    ]);
  });

  it('INSERT ... SELECT * over a table whose columns are not known: columns absent, every source in `all`', () => {
    expect(writes('insert into t select * from u where k = 1')).toEqual([{ table: 't', all: srcs('u.*'), indirect: [F('u.k')] }]);
    expect(writes('insert into t (a, b) select * from u')).toEqual([{ table: 't', all: srcs('u.*'), indirect: [] }]);
  });

  it('INSERT ... TABLE u is INSERT ... SELECT * FROM u', () => {
    expect(writes('insert into t (a, b) table u')).toEqual([{ table: 't', all: srcs('u.*'), indirect: [] }]);
    expect(analyzeUncached('insert into t table u').unanalysable).toBeUndefined();
  });

  it('INSERT ... SET: named columns; a value naming a column set earlier carries its value', () => {
    expect(writes('insert into t set a = (select x from u), b = concat(a, ?), c = c + 1')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [T('u.x')] }, { name: 'b', flows: [T('u.x')] }, { name: 'c', flows: [] }], all: srcs('u.x'), indirect: [] },
    ]);
  });

  it('REPLACE, with VALUES, SELECT and SET', () => {
    expect(writes('replace into t (a) select x from u')).toEqual([{ table: 't', columns: [{ name: 'a', flows: [I('u.x')] }], all: srcs('u.x'), indirect: [] }]);
    expect(writes('replace t set a = 1')).toEqual([{ table: 't', columns: [{ name: 'a', flows: [] }], all: [], indirect: [] }]);
    expect(writes('replace into t values (1)')).toEqual([{ table: 't', columns: [{ name: '$1', flows: [] }], positional: true, all: [], indirect: [] }]);
  });

  it('INSERT ... WITH ... SELECT follows the CTEs', () => {
    expect(writes('insert into t (a, b) with c as (select x, y from u where k = 1) select x, length(y) from c')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [I('u.x')] }, { name: 'b', flows: [T('u.y')] }], all: srcs('u.x', 'u.y'), indirect: [F('u.k')] },
    ]);
    expect(writes('insert into t with recursive r (n, v) as (select 1, x from u union all select n + 1, v from r where n < 3) select v from r')).toEqual([
      { table: 't', columns: [{ name: '$1', flows: [I('u.x')] }], positional: true, all: srcs('u.x'), indirect: [] },
    ]);
  });
});

describe('INSERT ... ON DUPLICATE KEY UPDATE', () => {
  it('writes the updated columns too: VALUES(col) is the inserted value, a column the stored one', () => {
    expect(writes('insert into t (a, b) select x, y from u on duplicate key update b = values(b), c = t.c + values(a), a = u.k')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [I('u.x'), I('u.k')] },
          { name: 'b', flows: [I('u.y')] },
          { name: 'c', flows: [T('t.c'), T('u.x')] },
        ],
        all: srcs('u.x', 'u.k', 'u.y', 't.c'),
        indirect: [],
      },
    ]);
  });

  it('runs its assignments from left to right (MySQL); VALUES() of a column not inserted is its default', () => {
    expect(withCatalog('insert into t (a) values ((select x from u)) on duplicate key update b = values(c), c = b + a')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [T('u.x')] },
          { name: 'b', flows: [] },
          { name: 'c', flows: [T('t.a')] },
        ],
        all: srcs('u.x', 't.a'),
        indirect: [],
      },
    ]);
  });

  it('follows the row alias, with and without column aliases', () => {
    expect(writes('insert into t (a, b) values ((select x from u), 2) as new on duplicate key update b = new.a, c = upper(new.b)')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [T('u.x')] }, { name: 'b', flows: [T('u.x')] }, { name: 'c', flows: [] }], all: srcs('u.x'), indirect: [] },
    ]);
    expect(writes('insert into t (a, b) values ((select x from u), 2) as new (m, n) on duplicate key update b = m, c = t.a')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [T('u.x')] }, { name: 'b', flows: [T('u.x')] }, { name: 'c', flows: [I('t.a')] }], all: srcs('u.x', 't.a'), indirect: [] },
    ]);
    expect(writes('insert into t set a = (select x from u) as new on duplicate key update b = new.a')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [T('u.x')] }, { name: 'b', flows: [T('u.x')] }], all: srcs('u.x'), indirect: [] },
    ]);
  });

  it('keeps the alias of a derived table in INSERT ... SELECT (it is no row alias)', () => {
    expect(writes('insert into t (a) select * from (select x from u) as d on duplicate key update b = d.x')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [I('u.x')] }, { name: 'b', flows: [I('u.x')] }], all: srcs('u.x'), indirect: [] },
    ]);
  });

  it('leaves columns absent when positions and names meet', () => {
    expect(writes('insert into t values ((select x from u), 2) on duplicate key update c = values(a) + t.b')).toEqual([
      { table: 't', all: srcs('u.x', 't.b'), indirect: [] },
    ]);
  });
});

describe('UPDATE', () => {
  it('single table: SET columns, WHERE as FILTER, ORDER BY as SORT', () => {
    expect(writes('update t set a = b + 1, c = ?, b = b where d = 3 order by e limit 10')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'a', flows: [T('t.b')] },
          { name: 'c', flows: [] },
          { name: 'b', flows: [I('t.b')] },
        ],
        all: srcs('t.b'),
        indirect: [F('t.d'), S('t.e')],
      },
    ]);
  });

  it('single table: a later assignment reads what an earlier one wrote (MySQL); in MariaDB it may read either', () => {
    expect(writes('update t set a = a + 1, b = a, a = 5')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [] }, { name: 'b', flows: [T('t.a')] }], all: srcs('t.a'), indirect: [] },
    ]);
    expect(writes('update t set a = a + 1, b = a', 'mariadb')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [T('t.a')] }, { name: 'b', flows: [I('t.a'), T('t.a')] }], all: srcs('t.a'), indirect: [] },
    ]);
  });

  it('multiple tables: the table each qualified column names, joins as JOIN', () => {
    expect(writes('update t join u on t.id = u.tid set t.a = u.x, u.y = concat(t.b, u.y) where u.k > 1')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [I('u.x')] }], all: srcs('u.x'), indirect: [J('t.id'), J('u.tid'), F('u.k')] },
      { table: 'u', columns: [{ name: 'y', flows: [T('t.b'), T('u.y')] }], all: srcs('t.b', 'u.y'), indirect: [J('t.id'), J('u.tid'), F('u.k')] },
    ]);
  });

  it('multiple tables through aliases, in no order: a column read may carry any value assigned to it', () => {
    expect(writes('update db.t x, u y set x.a = y.x, y.x = x.b where x.id = y.id')).toEqual([
      { schema: 'db', table: 't', columns: [{ name: 'a', flows: [I('u.x'), I('db.t.b')] }], all: srcs('u.x', 'db.t.b'), indirect: [F('db.t.id'), F('u.id')] },
      { table: 'u', columns: [{ name: 'x', flows: [I('db.t.b')] }], all: srcs('db.t.b'), indirect: [F('db.t.id'), F('u.id')] },
    ]);
  });

  it('an unqualified column of a join: every table that may have it (only the one the catalog says has it)', () => {
    expect(writes('update t join u using (id) set a = x')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [I('t.x'), I('u.x')] }], all: srcs('t.x', 'u.x'), indirect: [J('t.id'), J('u.id')] },
      { table: 'u', columns: [{ name: 'a', flows: [I('t.x'), I('u.x')] }], all: srcs('t.x', 'u.x'), indirect: [J('t.id'), J('u.id')] },
    ]);
    expect(withCatalog('update t join u on t.a = u.x set c = y')).toEqual([
      { table: 't', columns: [{ name: 'c', flows: [I('u.y')] }], all: srcs('u.y'), indirect: [J('t.a'), J('u.x')] },
    ]);
  });

  it('one entry for a table updated through two aliases', () => {
    expect(writes('update t p join t q on q.id = p.parent set p.a = q.a, q.b = 1')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [I('t.a')] }, { name: 'b', flows: [] }], all: srcs('t.a'), indirect: [J('t.id'), J('t.parent')] },
    ]);
  });

  it('subqueries in SET flow into the column; their WHERE is a statement-level FILTER', () => {
    expect(withCatalog('update t set a = (select max(x) from u where u.k = t.b)')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [A('u.x')] }], all: srcs('u.x'), indirect: [F('u.k'), F('t.b')] },
    ]);
  });

  it('WITH ... UPDATE follows the CTE into the values and the join', () => {
    expect(writes('with c as (select id, max(y) as m from u group by id) update t join c on c.id = t.id set t.a = c.m')).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [A('u.y')] }], all: srcs('u.y'), indirect: [G('u.id'), J('u.id'), J('t.id')] },
    ]);
  });
});

describe('DELETE', () => {
  it('single table: columns empty, WHERE and ORDER BY as statement-level flows', () => {
    expect(writes('delete from s.t where a = 1 order by b limit 1')).toEqual([{ schema: 's', table: 't', columns: [], all: [], indirect: [F('s.t.a'), S('s.t.b')] }]);
    expect(writes('delete from t')).toEqual([{ table: 't', columns: [], all: [], indirect: [] }]);
  });

  it('multiple tables: an entry per table deleted from, joins as JOIN', () => {
    const indirect = [J('t.id'), J('u.id'), F('u.x')];
    expect(writes('delete t, u from t join u on t.id = u.id where u.x = 1')).toEqual([
      { table: 't', columns: [], all: [], indirect },
      { table: 'u', columns: [], all: [], indirect },
    ]);
    expect(writes('delete x from db.t as x join u using (id) where u.x = 1')).toEqual([
      { schema: 'db', table: 't', columns: [], all: [], indirect: [J('db.t.id'), J('u.id'), F('u.x')] },
    ]);
  });

  it('DELETE FROM ... USING, subquery predicates and CTEs', () => {
    expect(writes('delete from t using t, u where t.id = u.id and exists (select 1 from v where v.k = u.k)')).toEqual([
      { table: 't', columns: [], all: [], indirect: [F('t.id'), F('u.id'), F('v.k'), F('u.k')] },
    ]);
    expect(writes('with c as (select x from u where k = 2) delete from t where a in (select x from c)')).toEqual([
      { table: 't', columns: [], all: [], indirect: [F('u.k'), F('u.x'), F('t.a')] },
    ]);
  });
});

describe('CREATE TABLE ... SELECT', () => {
  it('names the written columns after the result columns', () => {
    expect(writes('create table t as select x, y + 1 as b, count(*) as n, min(k) from u where k > 0 group by x')).toEqual([
      {
        table: 't',
        columns: [
          { name: 'x', flows: [I('u.x')] },
          { name: 'b', flows: [T('u.y')] },
          { name: 'n', flows: [] },
          { name: 'min', flows: [A('u.k')] },
        ],
        all: srcs('u.x', 'u.y', 'u.k'),
        indirect: [F('u.k'), G('u.x')],
      },
    ]);
  });

  it('without AS, with column definitions, with CTEs and set operations', () => {
    expect(writes('create table if not exists s.t (id int primary key) select x as id from u')).toEqual([
      { schema: 's', table: 't', columns: [{ name: 'id', flows: [I('u.x')] }], all: srcs('u.x'), indirect: [] },
    ]);
    expect(writes('create temporary table t as with c as (select x from u) select x from c union select y from v')).toEqual([
      { table: 't', columns: [{ name: 'x', flows: [I('u.x'), I('v.y')] }], all: srcs('u.x', 'v.y'), indirect: [] },
    ]);
  });

  it('leaves columns absent for * over a table whose columns are not known; CREATE TABLE without a query writes no rows', () => {
    expect(writes('create table t select * from u')).toEqual([{ table: 't', all: srcs('u.*'), indirect: [] }]);
    expect(writes('create table t (a int)')).toBeUndefined();
    expect(writes('create table t like u')).toBeUndefined();
  });
});

describe('LOAD DATA', () => {
  it('writes the listed columns, then the SET columns, with no flows from the file', () => {
    expect(writes("load data local infile 'f.csv' into table s.t (a, b, @v) set c = @v + 1, d = (select max(x) from u)")).toEqual([
      {
        schema: 's',
        table: 't',
        columns: [
          { name: 'a', flows: [] },
          { name: 'b', flows: [] },
          { name: 'c', flows: [] },
          { name: 'd', flows: [A('u.x')] },
        ],
        all: srcs('u.x'),
        indirect: [],
      },
    ]);
  });

  it('leaves columns absent without a column list (the catalog names them), and for LOAD XML', () => {
    expect(writes("load data infile 'f' replace into table t fields terminated by ',' ignore 1 lines")).toEqual([{ table: 't', all: [], indirect: [] }]);
    expect(withCatalog("load data infile 'f' into table t")).toEqual([
      { table: 't', columns: [{ name: 'a', flows: [] }, { name: 'b', flows: [] }, { name: 'c', flows: [] }], all: [], indirect: [] },
    ]);
    expect(writes("load xml local infile 'f' into table t rows identified by '<r>'")).toEqual([{ table: 't', all: [], indirect: [] }]);
  });
});

describe('writes in analyses', () => {
  it('are absent for statements that write no table rows, or that are not understood', () => {
    for (const text of ['select a from t', 'select a into @v from t', 'explain update t set a = b', 'truncate table t', 'create view v as select a from t', 'call p()', 'insert into t select std(a) from u']) {
      expect(writes(text), text).toBeUndefined();
    }
  });

  it('follow statements run by another: EXPLAIN ANALYZE, SET STATEMENT ... FOR, EXECUTE IMMEDIATE, and a prepared statement', () => {
    const expected = [{ table: 't', columns: [{ name: 'a', flows: [I('t.b')] }], all: srcs('t.b'), indirect: [] }];
    expect(writes('explain analyze update t set a = b')).toEqual(expected);
    expect(writes('set statement max_statement_time = 1 for update t set a = b', 'mariadb')).toEqual(expected);
    expect(writes("execute immediate 'update t set a = b'", 'mariadb')).toEqual(expected);
    expect(analyzeUncached("prepare s from 'update t set a = b'").prepare?.statement.writes).toEqual(expected);
  });

  it('come with the result lineage of RETURNING, which follows ON DUPLICATE KEY UPDATE too', () => {
    const a = analyzeUncached('insert into t (a) select x from u on duplicate key update b = u.y returning a, b', { dialect: 'mariadb' });
    expect(a.writes).toEqual([{ table: 't', columns: [{ name: 'a', flows: [I('u.x')] }, { name: 'b', flows: [I('u.y')] }], all: srcs('u.x', 'u.y'), indirect: [] }]);
    expect(a.lineage?.columns?.map((c) => c.sources)).toEqual([srcs('t.a', 'u.x'), srcs('t.b', 'u.y')]);
  });

  it('are one per statement of a request', () => {
    expect(analyzeUncached('update t set a = 1; delete from u').parts?.map((p) => p.writes?.map((w) => w.table))).toEqual([['t'], ['u']]);
  });

  it('are computed once per statement shape and shared', () => {
    const analyzer = createMySqlAnalyzer();
    const first = analyzer.analyze('update t set a = b + 1 where id = 1').writes;
    const second = analyzer.analyze('update t set a = b + 7 where id = 99').writes;
    expect(first).toBeDefined();
    expect(second).toBe(first);
  });
});

import type { ObjectRef } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { analyzeUncached } from './analyze.js';

const objects = (text: string): readonly ObjectRef[] => analyzeUncached(text).objects ?? [];
const functions = (text: string): readonly string[] => analyzeUncached(text).functions ?? [];

const read = (name: string, columns?: string[], schema?: string): ObjectRef => ({
  ...(schema === undefined ? {} : { schema }),
  name,
  kind: 'table',
  access: 'read',
  ...(columns === undefined ? {} : { columns }),
});
const write = (name: string, columns?: string[], schema?: string): ObjectRef => ({ ...read(name, columns, schema), access: 'write' });
const ddl = (name: string, kind: ObjectRef['kind'] = 'table', schema?: string): ObjectRef => ({
  ...(schema === undefined ? {} : { schema }),
  name,
  kind,
  access: 'ddl',
});

describe('objects and columns', () => {
  it('resolves columns to the only relation in scope', () => {
    expect(objects('select a, b from t where c = 1 order by d')).toEqual([read('t', ['a', 'b', 'c', 'd'])]);
  });

  it('resolves qualified columns by alias and by name', () => {
    expect(objects('select o.total, users.email from users join orders o on o.user_id = users.id')).toEqual([
      // Join conditions are read before the select list.
      read('users', ['id', 'email']),
      read('orders', ['user_id', 'total']),
    ]);
  });

  it('keeps the schema only when the statement writes it', () => {
    expect(objects('select public.t.a from public.t')).toEqual([read('t', ['a'], 'public')]);
    expect(objects('select x.a from public.t x')).toEqual([read('t', ['a'], 'public')]);
    expect(objects('select a from t')).toEqual([read('t', ['a'])]);
  });

  it('gives a star to the relations it covers', () => {
    expect(objects('select * from t')).toEqual([read('t', ['*'])]);
    expect(objects('select u.* from t join u on true')).toEqual([read('t'), read('u', ['*'])]);
    expect(objects('select t from t')).toEqual([read('t', ['*'])]);
  });

  it('does not guess the table of an unqualified column among several', () => {
    expect(objects('select a, t.b from t, u')).toEqual([read('t'), read('u')]);
  });

  it('keeps case as quoted and lower-cases unquoted names', () => {
    expect(objects('SELECT "Id", Name FROM "Users"')).toEqual([read('Users', ['Id', 'name'])]);
    expect(objects('select * from MySchema.MyTable')).toEqual([read('mytable', ['*'], 'myschema')]);
  });

  it('does not take CTE names or subquery aliases for tables', () => {
    expect(objects('with recent as (select id from orders) select r.id from recent r')).toEqual([read('orders', ['id'])]);
    expect(objects('select s.x from (select a as x from t) s')).toEqual([read('t', ['a'])]);
    expect(objects('select * from generate_series(1, 3) g')).toEqual([]);
    // A later CTE of a non-recursive WITH is not visible to an earlier one: that `b` is a table.
    expect(objects('with a as (select * from b), b as (select 1) select * from a, b')).toEqual([read('b', ['*'])]);
  });

  it('reads tables of subqueries, with correlation to outer relations', () => {
    expect(objects('select (select max(v) from u where u.t_id = t.id) from t')).toEqual([read('t', ['id']), read('u', ['v', 't_id'])]);
  });

  it('lists written columns of INSERT and UPDATE and read columns apart', () => {
    expect(objects('insert into t (a, b) values (1, 2)')).toEqual([write('t', ['a', 'b'])]);
    expect(objects('insert into t values (1, 2)')).toEqual([write('t', ['*'])]);
    expect(objects('insert into t (a) select x from u')).toEqual([write('t', ['a']), read('u', ['x'])]);
    expect(objects('update t set a = b + 1 where id = 2 returning c')).toEqual([write('t', ['a']), read('t', ['b', 'id', 'c'])]);
    expect(objects('update s.t set (a, b) = (1, 2) where id = 3')).toEqual([write('t', ['a', 'b'], 's'), read('t', ['id'], 's')]);
    expect(objects('insert into t as x (a) values (1) on conflict (a) do update set b = excluded.b where x.c > 0 returning id')).toEqual([
      write('t', ['a', 'b']),
      read('t', ['c', 'id']),
    ]);
  });

  it('marks the target of DELETE, MERGE, TRUNCATE and COPY FROM as written', () => {
    expect(objects('delete from t')).toEqual([write('t')]);
    expect(objects('delete from t using u where t.id = u.id')).toEqual([write('t'), read('u', ['id']), read('t', ['id'])]);
    expect(objects('truncate a, s.b')).toEqual([write('a'), write('b', undefined, 's')]);
    expect(objects('copy t (a, b) from stdin')).toEqual([write('t', ['a', 'b'])]);
    expect(objects('merge into t using s on t.id = s.id when matched then update set v = s.v when not matched then insert (id, v) values (s.id, s.v)')).toEqual([
      write('t', ['v', 'id']),
      read('s', ['id', 'v']),
      read('t', ['id']),
    ]);
  });

  it('reads what COPY TO, COPY (query) TO and plain EXPLAIN name', () => {
    expect(objects('copy t to stdout')).toEqual([read('t', ['*'])]);
    expect(objects('copy (select a from t where b > 1) to stdout')).toEqual([read('t', ['a', 'b'])]);
    expect(objects('explain delete from t where id = 1')).toEqual([read('t', ['id'])]);
    expect(objects('explain analyze delete from t where id = 1')).toEqual([write('t'), read('t', ['id'])]);
  });

  it('names the objects of DDL with their kind', () => {
    expect(objects('create table s.t (a int)')).toEqual([ddl('t', 'table', 's')]);
    expect(objects('alter table t drop column c')).toEqual([{ ...ddl('t'), columns: ['c'] }]);
    expect(objects('drop table a, s.b')).toEqual([ddl('a'), ddl('b', 'table', 's')]);
    expect(objects('drop schema s cascade')).toEqual([ddl('s', 'schema')]);
    expect(objects('drop database d')).toEqual([ddl('d', 'database')]);
    expect(objects('drop role r, u')).toEqual([ddl('r', 'role'), ddl('u', 'role')]);
    expect(objects('drop extension e')).toEqual([ddl('e', 'extension')]);
    expect(objects('drop function f(int), s.g')).toEqual([ddl('f', 'function'), ddl('g', 'function', 's')]);
    expect(objects('create extension pgcrypto')).toEqual([ddl('pgcrypto', 'extension')]);
    expect(objects('create function s.f() returns int language sql as $$select 1$$')).toEqual([ddl('f', 'function', 's')]);
    expect(objects('create index on t (a)')).toEqual([ddl('t')]);
    expect(objects('create view v as select * from secret')).toEqual([ddl('v')]);
    expect(objects('drop trigger tr on s.t')).toEqual([ddl('t', 'table', 's')]);
    expect(objects("comment on column t.c is 'x'")).toEqual([{ ...ddl('t'), columns: ['c'] }]);
    expect(objects('grant update (a) on t to r')).toEqual([{ ...ddl('t'), columns: ['a'] }]);
    expect(objects('create table n as select a from t')).toEqual([ddl('n'), read('t', ['a'])]);
  });

  it('merges the objects of the statements of a request', () => {
    expect(objects('select a from t; select b from t; delete from t')).toEqual([read('t', ['a', 'b']), write('t')]);
    expect(objects('select a from t; select a from t, u')).toEqual([read('t'), read('u')]);
  });
});

describe('functions', () => {
  it('lists every function called, lower case, qualified as written', () => {
    expect(functions('select lower(name), count(*), MySchema.Score(x) from t')).toEqual(['lower', 'count', 'myschema.score']);
    expect(functions("select pg_catalog.NEXTVAL('s'), \"setval\"('s', 1)")).toEqual(['pg_catalog.nextval', 'setval']);
    expect(functions("select substring(a from 2), extract(year from now()) from t")).toEqual(['substring', 'extract', 'now']);
    expect(functions('select * from t where id = any(select f(x) from u)')).toEqual(['f']);
    expect(functions('call maintenance.run(1)')).toEqual(['maintenance.run']);
    expect(functions("select 'nextval(1)'")).toEqual([]);
  });

  it('sees side effects whatever the qualification or case', () => {
    for (const call of ["nextval('s')", "pg_catalog.nextval('s')", "NEXTVAL('s')", "\"nextval\"('s')"]) {
      expect(analyzeUncached(`select ${call}`).operations).toEqual(['read', 'write']);
    }
  });

  it('analyses constant SQL given to query_to_xml and dblink', () => {
    const a = analyzeUncached("select query_to_xml('select secret from vault', true, false, '')");
    expect(a.objects).toEqual([read('vault', ['secret'])]);
    expect(a.operations).toEqual(['read']);
    const d = analyzeUncached("select * from dblink('conn', 'delete from remote_t') as x(a int)");
    expect(d.operations).toEqual(['read', 'write']);
    expect(d.hazards).toEqual(['delete-without-where']);
    const bad = analyzeUncached("select query_to_xml('selec oops', true, false, '')");
    expect(bad.operations).toContain('unknown');
    expect(bad.hazards).toEqual(['dynamic-sql']);
    expect(bad.unanalysable).toMatch(/^SQL given to query_to_xml\(\): syntax error/);
  });
});

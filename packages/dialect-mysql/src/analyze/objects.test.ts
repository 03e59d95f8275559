import type { ObjectRef } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { analyzeUncached } from './analyze.js';

/** Each object as `access kind [schema.]name(columns)`. */
function objects(text: string, dialect: 'mysql' | 'mariadb' = 'mysql'): string[] {
  return (analyzeUncached(text, { dialect }).objects ?? []).map(show);
}

function show(o: ObjectRef): string {
  const cols = o.columns === undefined ? '' : `(${[...o.columns].sort().join(',')})`;
  return `${o.access} ${o.kind} ${o.schema === undefined ? '' : o.schema + '.'}${o.name}${cols}`;
}

describe('objects', () => {
  it('qualifies tables by their database, as written', () => {
    expect(objects('select o.a from shop.orders o join customers c on c.id = o.customer_id')).toEqual([
      'read table shop.orders(a,customer_id)',
      'read table customers(id)',
    ]);
  });

  it('keeps quoted names as written and lower-cases the others', () => {
    expect(objects('SELECT `Email` FROM `Shop`.`Users`')).toEqual(['read table Shop.Users(email)']);
    expect(objects('SELECT Email FROM Shop.Users')).toEqual(['read table shop.users(email)']);
  });

  it('gives the columns read, `*` for all, and none when they cannot be attributed', () => {
    expect(objects('select * from t')).toEqual(['read table t(*)']);
    expect(objects('select t.*, u.b from t, u')).toEqual(['read table t(*)', 'read table u(b)']);
    // Unqualified in a join: which table has it needs the catalog.
    expect(objects('select a from t join u on t.id = u.id')).toEqual(['read table t', 'read table u']);
  });

  it('gives the columns written by INSERT, UPDATE and LOAD DATA', () => {
    expect(objects('insert into db.t (a, b) values (1, 2)')).toEqual(['write table db.t(a,b)']);
    expect(objects('insert into t values (1, 2)')).toEqual(['write table t(*)']);
    expect(objects('insert into t set a = 1, b = 2')).toEqual(['write table t(a,b)']);
    expect(objects('insert into t (a) select x from u where y = 1')).toEqual(['write table t(a)', 'read table u(x,y)']);
    expect(objects('update t set a = 1, b = c where id = 2')).toEqual(['write table t(a,b)', 'read table t(c,id)']);
    expect(objects("load data local infile 'x' into table t (a, b) set c = upper(a)")).toEqual(['write table t(a,b,c)']);
  });

  it('finds the targets of multi-table UPDATE and DELETE', () => {
    expect(objects('update t join u on t.id = u.id set t.a = u.b')).toEqual(['read table t(id)', 'read table u(b,id)', 'write table t(a)']);
    expect(objects('delete t from t join u on t.id = u.id where u.x = 1')).toEqual(['read table t(id)', 'read table u(id,x)', 'write table t']);
    expect(objects('delete x, y from db.t x join u y on x.id = y.id')).toEqual(['read table db.t(id)', 'read table u(id)', 'write table db.t', 'write table u']);
    // Forms the grammar lacks, given to it as their equivalents.
    expect(objects('delete from t1, t2 using t1 join t2 on t1.id = t2.id')).toEqual(['read table t1(id)', 'read table t2(id)', 'write table t1', 'write table t2']);
    expect(objects('delete t1.* from t1 join t2 on t1.id = t2.id')).toEqual(['read table t1(id)', 'read table t2(id)', 'write table t1']);
    expect(objects('insert into t values (), ()')).toEqual(['write table t(*)']);
  });

  it('reads the tables of subqueries and CTEs', () => {
    expect(objects('with c as (select id from u) select * from t where id in (select id from c)')).toEqual(['read table u(id)', 'read table t(*,id)']);
    expect(objects('select * from t where exists (select 1 from u where u.t_id = t.id)')).toEqual(['read table t(*,id)', 'read table u(t_id)']);
  });

  it('names the objects of DDL, privilege and maintenance statements', () => {
    expect(objects('drop table if exists db.t, u')).toEqual(['ddl table db.t', 'ddl table u']);
    expect(objects('drop database d')).toEqual(['ddl schema d']);
    expect(objects('create table db.t (a int)')).toEqual(['ddl table db.t']);
    expect(objects('create table t2 like t')).toEqual(['ddl table t2', 'read table t']);
    expect(objects('create view v as select * from secret')).toEqual(['ddl table v']);
    expect(objects('alter table t add column c int, drop column d')).toEqual(['ddl table t(c,d)']);
    expect(objects('alter table t rename to archive.t')).toEqual(['ddl table t', 'ddl table archive.t']);
    expect(objects('rename table a to b, db.c to db.d')).toEqual(['ddl table a', 'ddl table b', 'ddl table db.c', 'ddl table db.d']);
    expect(objects('create index i on db.t (a)')).toEqual(['ddl table db.t']);
    expect(objects('truncate table db.t')).toEqual(['write table db.t']);
    expect(objects('grant select (a, b) on db.t to u')).toEqual(['ddl table db.t(a,b)']);
    expect(objects('grant all on db.* to u')).toEqual(['ddl schema db']);
    expect(objects('grant execute on procedure db.p to u')).toEqual(['ddl function db.p']);
    expect(objects('grant r1, r2 to u')).toEqual(['ddl role r1', 'ddl role r2']);
    expect(objects("create user 'bob'@'%', alice identified by 'x'")).toEqual(['ddl role bob', 'ddl role alice']);
    expect(objects('drop user bob@localhost')).toEqual(['ddl role bob']);
    expect(objects('set role admin')).toEqual(['ddl role admin']);
    expect(objects('create procedure db.p() begin select 1; end')).toEqual(['ddl function db.p']);
    expect(objects('create trigger tr before insert on db.t for each row set new.a = 1')).toEqual(['ddl other tr', 'ddl table db.t']);
    expect(objects('optimize table t, db.u')).toEqual(['ddl table t', 'ddl table db.u']);
    expect(objects('lock tables t read, db.u as x write')).toEqual(['write table t', 'write table db.u']);
    expect(objects('show columns from t from db')).toEqual(['read table db.t']);
    expect(objects('describe db.t')).toEqual(['read table db.t']);
    expect(objects('use shop')).toEqual(['read schema shop']);
  });

  it('merges objects over the statements of a request', () => {
    const a = analyzeUncached('select a from t; select b from t; select * from u; select x from u join v on u.id = v.id');
    expect(a.objects?.map(show)).toEqual(['read table t(a,b)', 'read table u', 'read table v']);
  });

  it('lists the functions called, lower case', () => {
    expect(analyzeUncached('select UPPER(name), count(*), db.my_fn(1) from t group by 1').functions).toEqual(['upper', 'count', 'db.my_fn']);
    expect(analyzeUncached('call db.archive(1)').functions).toEqual(['db.archive']);
  });

  it('a statement the parser cannot read keeps its target, and is unknown', () => {
    const a = analyzeUncached("insert into t (a) select x from json_table('[1]', '$[*]' columns (x int path '$')) as j");
    expect(a.operations).toEqual(['write', 'unknown']);
    expect(a.objects?.map(show)).toEqual(['write table t']);
    expect(a.unanalysable).toMatch(/syntax error/);
    // A grammar that rejects a statement the other reads: the other is used.
    expect(analyzeUncached('delete from t where id = 1 limit 1', { dialect: 'mariadb' }).operations).toEqual(['write', 'read']);
    expect(analyzeUncached('delete from t where id = 1 returning id', { dialect: 'mariadb' }).lineage?.columns?.map((c) => c.name)).toEqual(['id']);
  });

  it('does not take a keyword the grammar misread for a name', () => {
    // MariaDB's grammar reads `update ignore t` as the table `ignore` aliased `t`; the modifier
    // is taken out before parsing. A keyword still read as a name makes the statement unknown.
    expect(objects('update ignore t set a = 1', 'mariadb')).toEqual(['write table t(a)']);
    expect(objects('select distinctrow a from t', 'mariadb')).toEqual(['read table t(a)']);
    expect(objects('select binary ssn from users')).toEqual(['read table users(ssn)']);
  });
});

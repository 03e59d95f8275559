import { OperationClass } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { classifyStatement } from './classify.js';
import { lex } from './lexer.js';

const cls = (text: string): OperationClass => classifyStatement(lex(text));

const R = OperationClass.Read;
const W = OperationClass.Write;
const D = OperationClass.Ddl;
const A = OperationClass.Admin;
const P = OperationClass.Privilege;
const CI = OperationClass.CopyIn;
const CO = OperationClass.CopyOut;
const T = OperationClass.Transaction;
const S = OperationClass.SessionSetting;
const U = OperationClass.Unknown;

const table: Array<[string, OperationClass]> = [
  // reads
  ['select 1', R],
  ['SELECT * FROM t WHERE a = 1', R],
  ['(select 1) union (select 2)', R],
  ['((select 1))', R],
  ['values (1), (2)', R],
  ['table t', R],
  ['show search_path', R],
  ['fetch 10 from c', R],
  ['move next in c', R],
  ['close c', R],
  ['explain select * from t', R],
  ['explain delete from t', R],
  ['explain verbose update t set a = 1', R],
  ['explain (costs off, analyze false) delete from t', R],
  ['explain (analyze off) delete from t', R],
  ['explain (analyze 0) delete from t', R],
  ['explain analyze select 1', R],
  ['select substring(a from 1 for 2) from t', R],
  ['select a from t order by a for each', R],
  // traps
  ["select 'drop table x'", R],
  ['select * from drop_log', R],
  ['/* delete */ select 1', R],
  ['-- insert\nselect 1', R],
  ['select $$; delete from t; $$', R],
  ['select "delete" from "update"', R],
  ['select delete_count from t', R],
  // select variants that write
  ['select * into new_t from t', W],
  ['select a into temp x from t', W],
  ['select * from t for update', W],
  ['select * from t for no key update', W],
  ['select * from t for share skip locked', W],
  ['select * from t for key share', W],
  ['select * from (select * from t for update) s', W],
  // writes
  ['insert into t values (1)', W],
  ['INSERT INTO t SELECT * FROM u', W],
  ['update t set a = 1', W],
  ['delete from t', W],
  ['merge into t using s on t.id = s.id when matched then delete', W],
  ['truncate t', W],
  ['lock table t in access exclusive mode', W],
  ['notify chan, \'payload\'', W],
  ['explain analyze delete from t', W],
  ['explain analyse verbose update t set a = 1', W],
  ['explain (analyze, buffers) insert into t values (1)', W],
  ['explain (analyze true) delete from t', W],
  ['explain (costs off, analyze) merge into t using s on true when matched then delete', W],
  // with
  ['with x as (select 1) select * from x', R],
  ['with recursive x(n) as (select 1 union all select n + 1 from x where n < 5) select * from x', R],
  ['with x as materialized (select 1), y as not materialized (select 2) select * from x, y', R],
  ['with x as (delete from t returning *) select * from x', W],
  ['with x as (select 1), y as (update t set a = 1 returning a) select * from y', W],
  ['with x as (insert into t values (1) returning *) select 1', W],
  ['with x as (merge into t using s on true when matched then delete returning *) select 1', W],
  ['with x as (select 1) insert into t select * from x', W],
  ['with x as (select 1) delete from t where a in (select * from x)', W],
  ['with x as (select 1) select * into y from x', W],
  ['with x as (with y as (delete from t returning *) select * from y) select * from x', W],
  ['with "Q" as (select 1) select 1', R],
  [
    'with recursive s(n, p) as (select 1, 0 union all select n + 1, n from s) search depth first by n set ord select * from s',
    R,
  ],
  [
    'with recursive s(n, p) as (select 1, 0 union all select n + 1, n from s) cycle n, p set is_cycle using path delete from t',
    W,
  ],
  ['with x as (select 1)', U],
  ['with x (select 1) select 1', U],
  ['with x as (do_something) select 1', U],
  // copy
  ['copy t from stdin', CI],
  ['copy t (a, b) from stdin with (format csv)', CI],
  ['copy t to stdout', CO],
  ['copy (select * from t) to stdout with csv header', CO],
  ['COPY public.t TO STDOUT', CO],
  ['copy binary t from stdin', CI],
  ["copy t from '/etc/passwd'", A],
  ["copy t to '/tmp/out.csv'", A],
  ["copy t to program 'rm -rf /'", A],
  ["copy t from program 'curl x'", A],
  ['copy (delete from t returning *) to stdout', W],
  ['copy t from stdout', U],
  ['copy t', U],
  // ddl
  ['create table t (a int)', D],
  ['CREATE TEMP TABLE t AS SELECT 1', D],
  ['create or replace function f() returns int as $$ select 1 $$ language sql', D],
  ['create user mapping for current_user server s', D],
  ['alter table t add column b int', D],
  ['alter user mapping for u server s options (set user \'x\')', D],
  ['drop table t', D],
  ['drop user mapping for u server s', D],
  ['comment on table t is \'x\'', D],
  ['reindex table t', D],
  ['cluster t using i', D],
  ['refresh materialized view v', D],
  ['security label on table t is \'x\'', D],
  ['import foreign schema s from server x into y', D],
  ['alter database d set work_mem = \'1MB\'', D],
  ['create index concurrently i on t (a)', D],
  // privilege
  ['grant select on t to u', P],
  ['revoke all on t from u', P],
  ['create role r login', P],
  ['create user u with password \'x\'', P],
  ['create group g', P],
  ['alter role r superuser', P],
  ['alter user u password \'y\'', P],
  ['alter group g add user u', P],
  ['drop role r', P],
  ['drop user if exists u', P],
  ['alter default privileges grant select on tables to u', P],
  ['reassign owned by a to b', P],
  ['set role admin', P],
  ['SET ROLE NONE', P],
  ['set session role admin', P],
  ['set local role admin', P],
  ['set session authorization admin', P],
  ['set session session authorization admin', P],
  ['set "ROLE" = \'admin\'', P],
  ['set session_authorization = \'admin\'', P],
  ['reset role', P],
  ['reset session authorization', P],
  // admin
  ['vacuum full t', A],
  ['analyze t', A],
  ['analyse', A],
  ['checkpoint', A],
  ["load 'auto_explain'", A],
  ["alter system set work_mem = '1GB'", A],
  // transaction
  ['begin', T],
  ['begin isolation level serializable', T],
  ['start transaction read only', T],
  ['commit', T],
  ['end', T],
  ['rollback', T],
  ['abort', T],
  ['savepoint s', T],
  ['release savepoint s', T],
  ['rollback to savepoint s', T],
  ["prepare transaction 'x'", T],
  ["commit prepared 'x'", T],
  ["rollback prepared 'x'", T],
  // session settings
  ['set search_path = public', S],
  ['set local statement_timeout = 1000', S],
  ['set session characteristics as transaction read only', S],
  ['set transaction isolation level serializable', S],
  ['set time zone \'UTC\'', S],
  ['reset all', S],
  ['reset work_mem', S],
  ['discard all', S],
  ['deallocate all', S],
  ['listen chan', S],
  ['unlisten *', S],
  // prepare / declare
  ['prepare q as select 1', R],
  ['prepare q (int, text) as delete from t where a = $1', W],
  ['prepare q as insert into t values ($1)', W],
  ['prepare q', U],
  ['declare c cursor for select * from t', R],
  ['declare c binary insensitive no scroll cursor with hold for select 1', R],
  ['declare c cursor for select * from t for update', W],
  ['declare c cursor', U],
  // unknown
  ['execute q(1)', U],
  ['do $$ begin delete from t; end $$', U],
  ['call p()', U],
  ['frobnicate', U],
  ['"select" 1', U],
  ['(1)', U],
  ['?', U],
  ['', U],
];

describe('classifyStatement', () => {
  it.each(table)('%s', (text, expected) => {
    expect(cls(text)).toBe(expected);
  });

  it('classifies a token range of a larger token list', () => {
    const tokens = lex('select 1; delete from t');
    expect(classifyStatement(tokens, 0, 2)).toBe(R);
    expect(classifyStatement(tokens, 3)).toBe(W);
  });

  it('gives up on very deep nesting', () => {
    const text = 'explain analyze '.repeat(40) + 'select 1';
    expect(cls(text)).toBe(U);
  });
});

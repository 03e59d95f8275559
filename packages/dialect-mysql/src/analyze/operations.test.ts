import { isPrivileged, OperationClass } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { analyzeUncached } from './analyze.js';

const ops = (text: string, dialect: 'mysql' | 'mariadb' = 'mysql'): readonly OperationClass[] => analyzeUncached(text, { dialect }).operations;

const R = OperationClass.Read;
const W = OperationClass.Write;
const D = OperationClass.Ddl;
const A = OperationClass.Admin;
const P = OperationClass.Privilege;
const CI = OperationClass.CopyIn;
const T = OperationClass.Transaction;
const S = OperationClass.SessionSetting;
const U = OperationClass.Unknown;

/** Statement → its operation classes, in the order they are found. */
const table: Array<[string, OperationClass[]]> = [
  // reads
  ['select 1', [R]],
  ['SELECT * FROM t WHERE a = 1', [R]],
  ['(select 1) union (select 2)', [R]],
  ['select a from t union all select b from u order by 1 limit 2', [R]],
  ['with c as (select a from t) select * from c', [R]],
  ['table t', [R]],
  ['values row(1, 2), row(3, 4)', [R]],
  ['show tables', [R]],
  ['show full processlist', [R]],
  ['show create table t', [R]],
  ['show variables like \'x%\'', [R]],
  ['describe t', [R]],
  ['desc db.t c', [R]],
  ['explain select * from t', [R]],
  ['explain format=json select * from t', [R]],
  ['explain delete from t', [R]],
  ['explain update t set a = 1', [R]],
  ['explain for connection 12', [R]],
  ['help \'select\'', [R]],
  ['handler t open', [R]],
  ['handler t read first', [R]],
  ['handler t read idx next where a > 1 limit 5', [R]],
  ['handler t close', [R]],
  ['checksum table t', [R]],
  ['select sleep(1)', [R]],
  ['do sleep(1)', [R]],
  // look-alikes
  ["select 'drop table x'", [R]],
  ['select * from drop_log', [R]],
  ['/* delete */ select 1', [R]],
  ['# insert\nselect 1', [R]],
  ['select `delete` from `update`', [R]],
  ['select delete_count from t', [R]],
  // selects that write or administer
  ['select * from t for update', [R, W]],
  ['select * from t where id = 1 for share skip locked', [R, W]],
  ['select * from t lock in share mode', [R, W]],
  ["select * from t into outfile '/tmp/x'", [R, W]],
  ["select a from t into dumpfile '/tmp/x'", [R, W]],
  ['select a into @x from t', [R]],
  ["select load_file('/etc/passwd')", [R, A]],
  ["select get_lock('x', 1)", [R, W]],
  // writes
  ['insert into t values (1)', [W]],
  ['insert into t (a) select a from u', [W, R]],
  ['insert into t set a = 1', [W]],
  ['insert ignore into t values (1) on duplicate key update a = a + 1', [W, R]],
  ['replace into t values (1)', [W]],
  ['update t set a = 1', [W]],
  ['update t set a = 1 where id = 2', [W, R]],
  ['update t join u on t.id = u.id set t.a = u.b', [W, R]],
  ['delete from t', [W]],
  ['delete from t where id = 1', [W, R]],
  ['delete t from t join u on t.id = u.id', [W, R]],
  ["load data infile '/tmp/x' into table t", [W]],
  ['call p(1)', [W]],
  ['call db.p(@x)', [W]],
  ['lock tables t read, u write', [W]],
  ['truncate t', [W]],
  ['truncate table db.t', [W]],
  // copy-in
  ["load data local infile '/tmp/x' into table t", [CI]],
  ["load xml local infile 'x.xml' into table t", [CI]],
  // ddl
  ['create table t (a int)', [D]],
  ['create temporary table t (a int)', [D]],
  ['create table t like u', [D, R]],
  ['create table t as select * from u', [D, W, R]],
  ['create view v as select * from t', [D]],
  ['create index i on t (a)', [D]],
  ['create database d', [D]],
  ['create schema if not exists d', [D]],
  ['create procedure p() begin delete from t; end', [D]],
  ['create function f() returns int return 1', [D]],
  ['create trigger tr before insert on t for each row set new.a = 1', [D]],
  ['alter table t add column c int', [D]],
  ['alter table t drop column c', [D]],
  ['alter table t alter column c drop default', [D]],
  ['alter database d character set utf8mb4', [D]],
  ['alter view v as select 1', [D]],
  ['drop table t', [D]],
  ['drop temporary table if exists t', [D]],
  ['drop view v', [D]],
  ['drop database d', [D]],
  ['drop index i on t', [D]],
  ['drop procedure p', [D]],
  ['rename table t to u', [D]],
  // privileges
  ['grant select on db.* to u', [P]],
  ["grant all privileges on *.* to 'u'@'%' with grant option", [P]],
  ['revoke select on db.t from u', [P]],
  ['revoke all privileges, grant option from u', [P]],
  ['grant r to u', [P]],
  ["create user 'u'@'%' identified by 'p'", [P]],
  ["alter user 'u'@'%' identified by 'x'", [P]],
  ['drop user u', [P]],
  ['rename user u to v', [P]],
  ['create role r', [P]],
  ['drop role r', [P]],
  ["set password = 'x'", [P]],
  ["set password for u = 'x'", [P]],
  ['set role r', [P]],
  ['set role all', [P]],
  ['set default role r to u', [P]],
  // admin
  ['set global max_connections = 10', [A]],
  ['set @@global.max_connections = 10', [A]],
  ['set persist max_connections = 10', [A]],
  ['set persist_only max_connections = 10', [A]],
  ['set global transaction isolation level serializable', [A]],
  ['kill 12', [A]],
  ['kill query 12', [A]],
  ['flush privileges', [A]],
  ['flush tables with read lock', [A]],
  ['reset master', [A]],
  ["install plugin p soname 'x.so'", [A]],
  ['uninstall plugin p', [A]],
  ['shutdown', [A]],
  ['optimize table t', [A]],
  ['analyze table t', [A]],
  ['purge binary logs before now()', [A]],
  ["change replication source to source_host = 'h'", [A]],
  ['start replica', [A]],
  ['stop slave', [A]],
  ['lock instance for backup', [A]],
  // transactions
  ['begin', [T]],
  ['begin work', [T]],
  ['start transaction', [T]],
  ['start transaction read only', [T]],
  ['commit', [T]],
  ['commit work', [T]],
  ['rollback', [T]],
  ['rollback to savepoint s', [T]],
  ['savepoint s', [T]],
  ['release savepoint s', [T]],
  ["xa start 'x'", [T]],
  ['unlock tables', [T]],
  // session settings
  ["set session sql_mode = ''", [S]],
  ["set @@session.sql_mode = ''", [S]],
  ['set sql_mode = default', [S]],
  ['set @x = 1', [S]],
  ['set names utf8mb4', [S]],
  ['set character set utf8', [S]],
  ['set autocommit = 0', [S]],
  ['set transaction isolation level read committed', [S]],
  ['use db', [S]],
  ['deallocate prepare s', [S]],
  ['drop prepare s', [S]],
  // prepared statements
  ["prepare s from 'select 1'", [R]],
  ["prepare s from 'delete from t where id = ?'", [W, R]],
  ['prepare s from @q', [U]],
  ['execute s', [U]],
  ['execute s using @a, @b', [U]],
  // not understood
  ['select from where', [R, U]],
  ['frobnicate the database', [U]],
  ['DELIMITER //', [U]],
  ["select 'abc", [U, R]],
];

describe('operation classes', () => {
  it.each(table)('%s', (text, expected) => {
    expect(ops(text)).toEqual(expected);
  });

  it('classes a multi-statement request by all of its statements, in order, without duplicates', () => {
    expect(ops("BEGIN; SELECT * FROM t WHERE id = 7; UPDATE t SET a = 'x' WHERE id = 7; select 1; COMMIT;")).toEqual([T, R, W]);
  });

  it('gives MariaDB statements their classes', () => {
    expect(ops('delete from t where id = 1 returning *', 'mariadb')).toEqual([W, R]);
    expect(ops('analyze select * from t', 'mariadb')).toEqual([R]);
    expect(ops('analyze delete from t where id = 1', 'mariadb')).toEqual([W, R]);
    expect(ops('set statement max_statement_time = 1 for update t set a = 1 where id = 2', 'mariadb')).toEqual([S, W, R]);
    expect(ops("execute immediate 'select 1'", 'mariadb')).toEqual([R]);
    expect(ops('execute immediate @q', 'mariadb')).toEqual([U]);
    expect(ops('begin not atomic insert into t values (1); end', 'mariadb')).toEqual([W]);
    expect(ops('create sequence s', 'mariadb')).toEqual([D]);
    expect(ops('select nextval(s)', 'mariadb')).toEqual([R, W]);
    expect(ops('select next value for db.s', 'mariadb')).toEqual([R, W]);
    expect(ops('select previous value for s', 'mariadb')).toEqual([R]);
  });

  it('does not run compound statements outside stored programs in MySQL', () => {
    expect(ops('begin not atomic insert into t values (1); end')).toContain(U);
  });

  it('treats every class but read, copy-out, transaction and session-setting as privileged', () => {
    expect(isPrivileged(ops('select 1'))).toBe(false);
    expect(isPrivileged(ops('set names utf8mb4'))).toBe(false);
    expect(isPrivileged(ops('execute s'))).toBe(true);
    expect(isPrivileged(ops("load data local infile 'x' into table t"))).toBe(true);
  });
});

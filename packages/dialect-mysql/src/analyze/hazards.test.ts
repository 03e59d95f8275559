import { Hazard } from '@sluice/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzeUncached } from './analyze.js';
import { lex, TokenKind } from './lexer.js';

type Dialect = 'mysql' | 'mariadb';
const hazards = (text: string, dialect: Dialect = 'mysql'): readonly Hazard[] => analyzeUncached(text, { dialect }).hazards ?? [];

/** Statements that carry a hazard, with the hazard each must report (MySQL unless said). */
const DANGEROUS: ReadonlyArray<readonly [string, Hazard, Dialect?]> = [
  ['drop table t', Hazard.DropTable],
  ['DROP TABLE IF EXISTS db.t, u CASCADE', Hazard.DropTable],
  ['drop temporary table if exists t', Hazard.DropTable],
  ['drop tables a, b', Hazard.DropTable],
  ['drop view v', Hazard.DropTable],
  ['drop view if exists v1, v2', Hazard.DropTable],
  ['drop sequence s', Hazard.DropTable, 'mariadb'],
  // MariaDB: CREATE OR REPLACE drops what it replaces.
  ['create or replace table t (a int)', Hazard.DropTable, 'mariadb'],
  ['create or replace table t as select 1 as a', Hazard.DropTable, 'mariadb'],
  ['drop table `my table`', Hazard.DropTable],
  // DATABASE and SCHEMA are synonyms in MySQL: both are drop-database.
  ['drop database d', Hazard.DropDatabase],
  ['drop schema d', Hazard.DropDatabase],
  ['DROP DATABASE IF EXISTS `d`', Hazard.DropDatabase],
  ['create or replace database d', Hazard.DropDatabase, 'mariadb'],
  ['truncate t', Hazard.Truncate],
  ['truncate table db.t', Hazard.Truncate],
  ['alter table t truncate partition p1', Hazard.Truncate],
  ['delete from t', Hazard.DeleteWithoutWhere],
  ['delete from db.t', Hazard.DeleteWithoutWhere],
  ['delete low_priority quick ignore from t', Hazard.DeleteWithoutWhere],
  ['delete from t limit 1000', Hazard.DeleteWithoutWhere],
  ['delete from t order by id limit 10', Hazard.DeleteWithoutWhere],
  ['delete from t where true', Hazard.DeleteWithoutWhere],
  ['delete from t where 1', Hazard.DeleteWithoutWhere],
  ['delete from t where 1=1', Hazard.DeleteWithoutWhere],
  ['delete from t where 1 = 1 limit 5', Hazard.DeleteWithoutWhere],
  ["delete from t where 'a'='a'", Hazard.DeleteWithoutWhere],
  ['delete from t where "a" = "a"', Hazard.DeleteWithoutWhere],
  ["delete from t where 'a' = 'A'", Hazard.DeleteWithoutWhere],
  ["delete from t where 'abc' = 0", Hazard.DeleteWithoutWhere],
  ['delete from t where 2>1', Hazard.DeleteWithoutWhere],
  ['delete from t where 1e0', Hazard.DeleteWithoutWhere],
  ['delete from t where 0x01', Hazard.DeleteWithoutWhere],
  ['delete from t where not 0', Hazard.DeleteWithoutWhere],
  ['delete from t where !0', Hazard.DeleteWithoutWhere],
  ['delete from t where id = id', Hazard.DeleteWithoutWhere],
  ['delete from t where t.id = t.id', Hazard.DeleteWithoutWhere],
  ['delete from t where id <=> id', Hazard.DeleteWithoutWhere],
  ['delete from t where null <=> null', Hazard.DeleteWithoutWhere],
  ['delete from t where id = 5 or 1', Hazard.DeleteWithoutWhere],
  ['delete from t where id = 5 or 1 = 1', Hazard.DeleteWithoutWhere],
  ['delete from t where id = 5 || 1 = 1', Hazard.DeleteWithoutWhere],
  // AND binds tighter than OR: this is `1 = 1 OR (id = 2 AND x = 3)`.
  ['delete from t where 1 = 1 or id = 2 and x = 3', Hazard.DeleteWithoutWhere],
  ['delete from t where 1 = 1 and 2 = 2', Hazard.DeleteWithoutWhere],
  ['delete from t where 1 xor 0', Hazard.DeleteWithoutWhere],
  ['delete from t where x is not null or x is null', Hazard.DeleteWithoutWhere],
  ['delete from t where (1 = 1) is true', Hazard.DeleteWithoutWhere],
  ['delete from t where 1 in (1, 2)', Hazard.DeleteWithoutWhere],
  ['delete from t where 3 between 1 and 5', Hazard.DeleteWithoutWhere],
  // BETWEEN binds tighter than `=`: this is `1 = (3 BETWEEN 1 AND 5)`.
  ['delete from t where 1 = 3 between 1 and 5', Hazard.DeleteWithoutWhere],
  ['delete from t where null is null', Hazard.DeleteWithoutWhere],
  ['delete from t where exists (select 1 from u)', Hazard.DeleteWithoutWhere],
  ["delete from t where name like '%'", Hazard.DeleteWithoutWhere],
  ["delete from t where 'a-b.c' like 'a-_.%'", Hazard.DeleteWithoutWhere],
  ["delete from t where name regexp '.*'", Hazard.DeleteWithoutWhere],
  ['delete from t where rand() < 2', Hazard.DeleteWithoutWhere],
  ['delete from t where @flag', Hazard.DeleteWithoutWhere],
  ['delete from t where ?', Hazard.DeleteWithoutWhere],
  ['delete t from t join u on 1 = 1', Hazard.DeleteWithoutWhere],
  ['delete t from t left join u on t.id = u.id', Hazard.DeleteWithoutWhere],
  ['delete t from t, u where u.x = 1', Hazard.DeleteWithoutWhere],
  // Every row of u: the condition looks only at t.
  ['delete t, u from t, u where t.a = 1', Hazard.DeleteWithoutWhere],
  ['delete from t using t, u where u.x = 1', Hazard.DeleteWithoutWhere],
  ['with c as (select 1) delete from t', Hazard.DeleteWithoutWhere],
  ['update t set a = 1', Hazard.UpdateWithoutWhere],
  ['update ignore t set a = 1', Hazard.UpdateWithoutWhere],
  ['update t set a = 1 limit 10', Hazard.UpdateWithoutWhere],
  ['update t set a = 1 where true', Hazard.UpdateWithoutWhere],
  ['update t set a = 1 where 1=1', Hazard.UpdateWithoutWhere],
  ['update t set a = a + 1 where a = a', Hazard.UpdateWithoutWhere],
  ['update t, u set t.a = 1 where 1 = 1', Hazard.UpdateWithoutWhere],
  ['update t, u set t.a = 1 where u.flag', Hazard.UpdateWithoutWhere],
  ['update t join u on true set t.a = 1', Hazard.UpdateWithoutWhere],
  ['alter table t drop column c', Hazard.AlterDrop],
  ['alter table t drop c', Hazard.AlterDrop],
  ['alter table t drop index i', Hazard.AlterDrop],
  ['alter table t drop key k', Hazard.AlterDrop],
  ['alter table t drop primary key', Hazard.AlterDrop],
  ['alter table t drop foreign key fk', Hazard.AlterDrop],
  ['alter table t drop constraint c', Hazard.AlterDrop],
  ['alter table t drop check c', Hazard.AlterDrop],
  ['alter table t alter column c drop default', Hazard.AlterDrop],
  ['alter table t drop partition p1', Hazard.AlterDrop],
  ['alter table t discard tablespace', Hazard.AlterDrop],
  // A BLACKHOLE table keeps no rows.
  ['alter table t engine = blackhole', Hazard.Truncate],
  ['alter table if exists t add column x int, drop column y', Hazard.AlterDrop, 'mariadb'],
  ['alter online ignore table t drop column c', Hazard.AlterDrop],
  // DROP INDEX i ON t is ALTER TABLE t DROP INDEX i.
  ['drop index i on t', Hazard.AlterDrop],
  ['grant select on db.* to u', Hazard.GrantRevoke],
  ["grant all privileges on *.* to 'u'@'%' with grant option", Hazard.GrantRevoke],
  ['grant select (a, b) on t to u', Hazard.GrantRevoke],
  ['revoke select on db.t from u', Hazard.GrantRevoke],
  ['revoke all privileges, grant option from u', Hazard.GrantRevoke],
  ['grant r to u', Hazard.GrantRevoke],
  ['revoke r from u', Hazard.GrantRevoke],
  ['grant proxy on root to bob', Hazard.GrantRevoke],
  ["create user 'u'@'%' identified by 'p'", Hazard.RoleChange],
  ['create user if not exists bob@localhost', Hazard.RoleChange],
  ["alter user 'u'@'%' identified by 'x'", Hazard.RoleChange],
  ['alter user current_user() identified by \'x\'', Hazard.RoleChange],
  ['drop user u', Hazard.RoleChange],
  ["drop user if exists 'u'@'%'", Hazard.RoleChange],
  ['rename user u to v', Hazard.RoleChange],
  ['create role r', Hazard.RoleChange],
  ['drop role r', Hazard.RoleChange],
  ['set role r', Hazard.RoleChange],
  ['set role all except r', Hazard.RoleChange],
  ['set default role all to u', Hazard.RoleChange],
  ["set password = 'x'", Hazard.RoleChange],
  ["set password for 'bob'@'%' = 'x'", Hazard.RoleChange],
  ['set global max_connections = 10', Hazard.AlterSystem],
  ['SET GLOBAL general_log = OFF', Hazard.AlterSystem],
  ['set @@global.max_connections = 10', Hazard.AlterSystem],
  ['set @@GLOBAL.max_connections = 10', Hazard.AlterSystem],
  ['set persist max_connections = 10', Hazard.AlterSystem],
  ["set global init_connect = 'drop table t'", Hazard.AlterSystem],
  ["set @@global.general_log_file = '/var/www/shell.php'", Hazard.AlterSystem],
  ['set persist_only max_connections = 10', Hazard.AlterSystem],
  ['set @@persist.max_connections = 10', Hazard.AlterSystem],
  ['set @x = 1, global max_connections = 10', Hazard.AlterSystem],
  ['set global transaction isolation level serializable', Hazard.AlterSystem],
  ['reset persist', Hazard.AlterSystem],
  ['alter instance disable innodb redo_log', Hazard.AlterSystem],
  ["change replication source to source_host = 'evil'", Hazard.AlterSystem],
  ["change master to master_host = 'evil'", Hazard.AlterSystem],
  ["select * from t into outfile '/tmp/x'", Hazard.ServerFile],
  ["select * into outfile '/tmp/x' from t", Hazard.ServerFile],
  ["select a from t into dumpfile '/var/lib/mysql-files/x'", Hazard.ServerFile],
  ["select a from t limit 10 into outfile '/tmp/x' fields terminated by ','", Hazard.ServerFile],
  ["load data infile '/etc/passwd' into table t", Hazard.ServerFile],
  ["load data low_priority infile '/tmp/x' replace into table t fields terminated by ','", Hazard.ServerFile],
  ["load xml infile '/tmp/x.xml' into table t", Hazard.ServerFile],
  ["select load_file('/etc/passwd')", Hazard.ServerFile],
  ["insert into t (a) values (load_file('/etc/shadow'))", Hazard.ServerFile],
  ["update t set a = (select load_file('/etc/passwd')) where id = 1", Hazard.ServerFile],
  ["import table from '/tmp/t.sdi'", Hazard.ServerFile],
  ["alter table t add column c text default (load_file('/etc/passwd'))", Hazard.ServerFile],
  ["show tables where load_file('/etc/passwd') is not null", Hazard.ServerFile],
  ["clone local data directory = '/tmp/clone'", Hazard.ServerFile],
  ["create table t (a int) engine=connect table_type=csv file_name='/etc/passwd'", Hazard.ServerFile, 'mariadb'],
  ["create table t (a int) data directory = '/var/lib/other'", Hazard.ServerFile],
  ["select sys_exec('rm -rf /')", Hazard.CopyProgram],
  ["select sys_eval('id')", Hazard.CopyProgram],
  ["install plugin p soname 'evil.so'", Hazard.CreateExtension],
  ["install component 'file://component_x'", Hazard.CreateExtension],
  ["create function evil returns string soname 'evil.so'", Hazard.CreateExtension],
  ['prepare s from @q', Hazard.DynamicSql],
  ['execute s', Hazard.DynamicSql],
  ['execute s using @a', Hazard.DynamicSql],
  ["execute immediate concat('drop', ' table t')", Hazard.DynamicSql, 'mariadb'],
  ['execute immediate @q', Hazard.DynamicSql, 'mariadb'],
  ["binlog 'Zm9v'", Hazard.DynamicSql],
  ['call sys.execute_prepared_stmt(@q)', Hazard.DynamicSql],
  ["call sys.execute_prepared_stmt('drop table t')", Hazard.DropTable],
  // wherever the statement sits
  ['/*!40101 DROP TABLE t */', Hazard.DropTable],
  ['/*!DROP TABLE t*/', Hazard.DropTable],
  ['/*!50000 drop */ /*!50000 table */ t', Hazard.DropTable],
  ['select 1; drop table t', Hazard.DropTable],
  ["select 'x'; /*!40101 truncate t */", Hazard.Truncate],
  ['/*M! drop table t */ select 1', Hazard.DropTable, 'mariadb'],
  ['/*M!100100 drop database d */', Hazard.DropDatabase, 'mariadb'],
  // An old server skips the versioned comment up to the first `*/`, and then runs DROP TABLE.
  [`select 1 /*!99999 '*/; drop table t; -- ' */`, Hazard.DropTable],
  ['explain analyze delete from t', Hazard.DeleteWithoutWhere],
  ['analyze delete from t', Hazard.DeleteWithoutWhere, 'mariadb'],
  ["prepare s from 'delete from t'", Hazard.DeleteWithoutWhere],
  ["prepare s from 'update t set a = ? where 1 = 1'", Hazard.UpdateWithoutWhere],
  ["prepare s from 'drop table t'", Hazard.DropTable],
  ["execute immediate 'drop table t'", Hazard.DropTable, 'mariadb'],
  ['set statement max_statement_time = 1 for delete from t', Hazard.DeleteWithoutWhere, 'mariadb'],
  ['begin not atomic delete from t; end', Hazard.DeleteWithoutWhere, 'mariadb'],
  ['begin not atomic if 1 then drop table t; end if; end', Hazard.DropTable, 'mariadb'],
  ['if (select count(*) from t) > 0 then truncate t; end if', Hazard.Truncate, 'mariadb'],
  ['create event e on schedule at now() do drop table t', Hazard.DropTable],
  ['create event e on schedule every 1 day do begin delete from t; end', Hazard.DeleteWithoutWhere],
  ['create procedure p() select begin from t; drop table t', Hazard.DropTable],
];

/** Statements that look like the dangerous ones but are not. */
const LOOK_ALIKES: ReadonlyArray<string | readonly [string, Dialect]> = [
  "select 'DROP TABLE x'",
  "select 'drop table x; delete from t'",
  'select "drop table x"',
  "select 'a\\'; drop table t; -- '",
  '-- drop table x\nselect 1',
  '# drop table x\nselect 1',
  '/* drop table x */ select 1',
  '/* DROP TABLE t */ select 1',
  'select 1 /*+ drop table t */',
  '/*M! drop table t */ select 1',
  'select * from drop_log',
  'select * from `drop table`',
  'select truncate_count, delete_flag, grant_count from audit',
  'select load_file_count from t',
  'delete from t where id = 5',
  'delete from t where id = ?',
  'delete from t where id = 5 limit 1',
  'delete from t where id in (1, 2, 3)',
  'delete from t where 1 = 2',
  'delete from t where false',
  'delete from t where 0',
  'delete from t where null',
  "delete from t where 'a' = 'b'",
  "delete from t where 'abc' not like '%b%'",
  'delete from t where id = 5 and 1 = 1',
  'delete from t where id = 5 or 1 = 2',
  // XOR 1 negates: `NOT (x = 1)`.
  'delete from t where x = 1 xor 1',
  'delete from t where x is null',
  'delete from t where exists (select 1 from u where u.tid = t.id)',
  'delete from t where id in (select tid from u)',
  'delete from `db`.`t` as x where x.id = 1',
  'delete t from t join u on t.id = u.id',
  'delete t from t inner join u on t.id = u.id where u.flag = 1',
  // Orphans: the rows of t without a partner in u.
  'delete t from t left join u on t.id = u.id where u.id is null',
  'delete from t using t join u on t.id = u.id',
  'update t set a = 1 where id = 2',
  'update t set a = 1 where id = ? and true',
  'update t set a = 1 where id = 2 order by id limit 1',
  'update t join u on t.id = u.id set t.a = u.a',
  // The join bounds it: a WHERE that is always true does not add rows.
  'update t join u on t.id = u.id set t.a = 1 where 1 or t.a = 2',
  'delete t, u from t join u on t.id = u.id where t.a = 1 or 1',
  'update t set a = 1 where a <> a',
  'update t set a = 1 where name like binary \'x%\'',
  'alter table t add column dropped boolean',
  "alter table t alter column c set default 'drop'",
  'alter table t rename column drop_me to kept',
  "alter table t comment = 'drop table t'",
  'alter table t add index i (a)',
  'create table drop_table (truncate_count int)',
  "create table t (a int default 1, b varchar(10) comment 'drop')",
  "set session sql_mode = 'ANSI_QUOTES'",
  'set @global = 1',
  'set @@session.sql_mode = default',
  'set names utf8mb4',
  "set @q = 'drop table t'",
  'select @@global.max_connections',
  'show grants',
  "show variables like 'global%'",
  "show create user 'u'",
  "load data local infile '/tmp/x' into table t",
  'select * from t into @x',
  'select a into @a from t where id = 1',
  'create procedure p() begin drop table t; end',
  'create procedure p() begin delete from t; truncate u; end',
  'create function f() returns int deterministic begin delete from t; return 1; end',
  'create trigger tr after insert on t for each row begin delete from u; end',
  'create view v as select * from t where 1 = 1',
  'explain delete from t',
  'explain update t set a = 1',
  'explain format=tree delete from t',
  'describe drop_log',
  'begin; commit',
  'deallocate prepare s',
  'drop prepare s',
  "prepare s from 'select * from t where id = ?'",
  'drop procedure p',
  'drop trigger tr',
  'drop event e',
  'drop function f',
  'rename table t to u',
  'flush privileges',
  'kill query 12',
  'lock tables t write',
  'create database d',
  ['create or replace view v as select 1', 'mariadb'],
  ['create or replace procedure p() begin end', 'mariadb'],
  'create index i on t (a)',
  'alter table t engine = InnoDB',
  'call sys.ps_setup_show_enabled(true, true)',
  "call sys.execute_prepared_stmt('select 1')",
  ['begin not atomic delete from t where id = 1; end', 'mariadb'],
  ["execute immediate 'select 1'", 'mariadb'],
  ['analyze table t', 'mariadb'],
];

const lookAlike = (c: string | readonly [string, Dialect]): [string, Dialect] => (typeof c === 'string' ? [c, 'mysql'] : [c[0], c[1]]);

describe('hazards', () => {
  it('the cases cover every hazard a MySQL statement can carry', () => {
    // sensitive-predicate comes from core (lineage against masking); MySQL has no large objects,
    // and reports drop-database for DROP SCHEMA (a synonym of DROP DATABASE).
    const excluded: Hazard[] = [Hazard.SensitivePredicate, Hazard.LargeObject, Hazard.DropSchema];
    const expected = Object.values(Hazard).filter((h) => !excluded.includes(h));
    expect(new Set(DANGEROUS.map(([, h]) => h))).toEqual(new Set(expected));
  });

  it.each(DANGEROUS.map(([t, h, d]): [string, Hazard, Dialect] => [t, h, d ?? 'mysql']))('%s → %s (%s)', (text, hazard, dialect) => {
    expect(hazards(text, dialect)).toContain(hazard);
  });

  it.each(LOOK_ALIKES.map(lookAlike))('no hazard: %s (%s)', (text, dialect) => {
    expect(hazards(text, dialect)).toEqual([]);
  });

  it('never reports drop-schema: DROP SCHEMA is DROP DATABASE', () => {
    expect(hazards('drop schema s')).toEqual([Hazard.DropDatabase]);
  });

  it('reports several hazards of one request, without duplicates, in order', () => {
    const a = analyzeUncached('drop table a; truncate b; drop table c; delete from d');
    expect(a.hazards).toEqual([Hazard.DropTable, Hazard.Truncate, Hazard.DeleteWithoutWhere]);
    expect(a.parts?.map((p) => p.hazards)).toEqual([[Hazard.DropTable], [Hazard.Truncate], [Hazard.DropTable], [Hazard.DeleteWithoutWhere]]);
  });

  it('reports what the server may run in a statement it does not understand', () => {
    // The parentheses are unbalanced: the first statement is malformed, the second is not.
    const a = analyzeUncached('select (1; drop table t');
    expect(a.hazards).toEqual([Hazard.DropTable]);
    expect(a.operations).toContain('unknown');
  });
});

/** What may sit between two tokens: whitespace and comments of every kind. */
const SEPARATOR_PIECES = [
  ' ',
  '\t',
  '\n',
  '\r\n',
  ' \f ',
  ' /* c */ ',
  ' /**/ ',
  ' /*!*/ ',
  ' /*+ hint */ ',
  ' /* drop table x; truncate y */ ',
  ' /* ; delete from t */ ',
  ' -- drop table z\n',
  ' --\n',
  ' # ; delete from t\n',
  ' #\r\n',
];

const separator = fc.array(fc.constantFrom(...SEPARATOR_PIECES), { minLength: 1, maxLength: 3 }).map((p) => ' ' + p.join(''));

/**
 * A statement re-laid out: every gap between tokens replaced by whitespace and comments, and the
 * ASCII letters of unquoted words in random case. Literals, quoted identifiers and variables are
 * kept as written.
 */
function relaidOut(text: string, dialect: Dialect): fc.Arbitrary<string> {
  const tokens = lex(text, { dialect });
  return fc
    .tuple(
      fc.array(separator, { minLength: tokens.length + 1, maxLength: tokens.length + 1 }),
      fc.array(fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), { minLength: tokens.length, maxLength: tokens.length }),
    )
    .map(([seps, cases]) => {
      let out = seps[0]!;
      tokens.forEach((t, i) => {
        let piece = text.slice(t.start, t.end);
        if (t.kind === TokenKind.Word) {
          const upper = cases[i]!;
          piece = [...piece].map((ch, k) => (/[a-z]/i.test(ch) ? (upper[k % 64] ? ch.toUpperCase() : ch.toLowerCase()) : ch)).join('');
        }
        // `t.c` and `@@global.x` stay joined: a space there changes nothing for the server, but
        // the test is about gaps between tokens.
        const next = tokens[i + 1];
        const glued = next !== undefined && next.start === t.end && (t.value === '.' || next.value === '.');
        out += piece + (glued ? '' : seps[i + 1]!);
      });
      return out;
    });
}

/** Cases whose text is only tokens (executable comments wrap them, which re-laying out would drop). */
const plain = DANGEROUS.filter(([text]) => !text.includes('/*'));

describe('hazards do not depend on layout, comments or case', () => {
  it('a dangerous statement keeps its hazards and operation classes', () => {
    const cases = fc.constantFrom(...plain).chain(([text, , dialect]) => relaidOut(text, dialect ?? 'mysql').map((variant) => [text, variant, dialect ?? 'mysql'] as const));
    fc.assert(
      fc.property(cases, ([text, variant, dialect]) => {
        const original = analyzeUncached(text, { dialect });
        const changed = analyzeUncached(variant, { dialect });
        for (const h of original.hazards ?? []) expect(changed.hazards).toContain(h);
        for (const op of original.operations) expect(changed.operations).toContain(op);
      }),
      { numRuns: 1500 },
    );
  });

  it('an executable comment around a dangerous statement does not hide it', () => {
    const wrap = fc.constantFrom('/*!', '/*!40101', '/*!50000 ', '/*!80000\n', '/*!999999');
    const cases = fc.tuple(fc.constantFrom(...plain.filter(([, , d]) => d === undefined)), wrap);
    fc.assert(
      fc.property(cases, ([[text, hazard], open]) => {
        expect(hazards(`${open} ${text} */`)).toContain(hazard);
        expect(hazards(`${open} ${text} */`, 'mariadb')).toContain(hazard);
      }),
      { numRuns: 500 },
    );
  });

  it('a look-alike stays free of hazards', () => {
    const cases = fc.constantFrom(...LOOK_ALIKES.map(lookAlike)).chain(([text, dialect]) => relaidOut(text, dialect).map((v) => [v, dialect] as const));
    fc.assert(
      fc.property(cases, ([variant, dialect]) => {
        expect(analyzeUncached(variant, { dialect }).hazards).toEqual([]);
      }),
      { numRuns: 1500 },
    );
  });

  it('the transformation really changes the text', () => {
    const sample = fc.sample(relaidOut('delete from t where id = 1', 'mysql'), { numRuns: 5, seed: 7 });
    for (const s of sample) {
      expect(s).not.toBe('delete from t where id = 1');
      expect(lex(s).map((t) => t.value.toLowerCase())).toEqual(lex('delete from t where id = 1').map((t) => t.value));
    }
  });
});

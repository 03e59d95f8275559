import { Hazard } from '@sluice/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzeUncached } from './analyze.js';
import { lex, TokenKind } from './lexer.js';

const hazards = (text: string): readonly Hazard[] => analyzeUncached(text).hazards ?? [];

/** Statements that carry a hazard, with the hazard each must report. */
const DANGEROUS: ReadonlyArray<readonly [string, Hazard]> = [
  ['drop table t', Hazard.DropTable],
  ['DROP TABLE IF EXISTS public.t, u CASCADE', Hazard.DropTable],
  ['drop view v', Hazard.DropTable],
  ['drop materialized view mv', Hazard.DropTable],
  ['drop foreign table f', Hazard.DropTable],
  ['drop sequence s', Hazard.DropTable],
  ['drop schema s cascade', Hazard.DropSchema],
  ['drop schema s cascade', Hazard.DropTable],
  ['drop type ty cascade', Hazard.DropTable],
  ['drop extension postgis cascade', Hazard.DropTable],
  ['drop database d', Hazard.DropDatabase],
  ['drop database if exists d with (force)', Hazard.DropDatabase],
  ['truncate t', Hazard.Truncate],
  ['truncate table only t restart identity', Hazard.Truncate],
  ['delete from t', Hazard.DeleteWithoutWhere],
  ['delete from t where true', Hazard.DeleteWithoutWhere],
  ['delete from t where 1=1', Hazard.DeleteWithoutWhere],
  ["delete from t where 'a'='a'", Hazard.DeleteWithoutWhere],
  ['delete from t where 2>1', Hazard.DeleteWithoutWhere],
  ['delete from t where id = id', Hazard.DeleteWithoutWhere],
  ['delete from t where t.id = t.id', Hazard.DeleteWithoutWhere],
  ['delete from t where not false', Hazard.DeleteWithoutWhere],
  ['delete from t where id = 5 or 1 = 1', Hazard.DeleteWithoutWhere],
  ['delete from t where 1 = 1 and 2 = 2', Hazard.DeleteWithoutWhere],
  ['delete from t where x is not null or x is null', Hazard.DeleteWithoutWhere],
  ["delete from t where 't'::boolean", Hazard.DeleteWithoutWhere],
  ['delete from t where 1 in (1, 2)', Hazard.DeleteWithoutWhere],
  ['delete from t where 3 between 1 and 5', Hazard.DeleteWithoutWhere],
  ['delete from t where null is null', Hazard.DeleteWithoutWhere],
  ['delete from t where exists (select 1 from u)', Hazard.DeleteWithoutWhere],
  ["delete from t where name like '%'", Hazard.DeleteWithoutWhere],
  ["delete from t where 'a-b.c' like 'a-_.%'", Hazard.DeleteWithoutWhere],
  ["delete from t where 'A(1)' ilike 'a(%)'", Hazard.DeleteWithoutWhere],
  ['delete from t where random() < 2', Hazard.DeleteWithoutWhere],
  ['update t set a = 1', Hazard.UpdateWithoutWhere],
  ['update t set a = 1 where true', Hazard.UpdateWithoutWhere],
  ['update t set a = 1 where 1=1', Hazard.UpdateWithoutWhere],
  ['update t set a = a + 1 where a = a', Hazard.UpdateWithoutWhere],
  ['update t set a = 1 from u where 1 = 1', Hazard.UpdateWithoutWhere],
  ['update t set a = 1 from u where u.flag', Hazard.UpdateWithoutWhere],
  ['delete from t using u where u.x = 1', Hazard.DeleteWithoutWhere],
  ['delete from t where exists (select 1 from u where u.a = u.b)', Hazard.DeleteWithoutWhere],
  ['alter table t drop column c', Hazard.AlterDrop],
  ['alter table t drop constraint t_pkey', Hazard.AlterDrop],
  ['alter table t alter column c drop default', Hazard.AlterDrop],
  ['alter table t alter column c drop not null', Hazard.AlterDrop],
  ['alter table t alter column c drop identity', Hazard.AlterDrop],
  ['alter table t alter column c drop expression', Hazard.AlterDrop],
  ['alter table if exists t add column x int, drop column y', Hazard.AlterDrop],
  ['alter foreign table f drop column c', Hazard.AlterDrop],
  ['alter type ty drop attribute a', Hazard.AlterDrop],
  ['alter domain d drop constraint c', Hazard.AlterDrop],
  ['alter domain d drop default', Hazard.AlterDrop],
  ['alter publication p drop table t', Hazard.AlterDrop],
  ['grant select on t to r', Hazard.GrantRevoke],
  ['grant all privileges on all tables in schema public to r', Hazard.GrantRevoke],
  ['revoke update on t from r', Hazard.GrantRevoke],
  ['grant admin to alice', Hazard.GrantRevoke],
  ['revoke admin from alice', Hazard.GrantRevoke],
  ['alter default privileges in schema s grant select on tables to r', Hazard.GrantRevoke],
  ['create role r superuser', Hazard.RoleChange],
  ["create user u password 'x'", Hazard.RoleChange],
  ['create group g', Hazard.RoleChange],
  ['alter role r superuser', Hazard.RoleChange],
  ['alter user u with createrole', Hazard.RoleChange],
  ['drop role r', Hazard.RoleChange],
  ['drop user u', Hazard.RoleChange],
  ['set role admin', Hazard.RoleChange],
  ['set local role admin', Hazard.RoleChange],
  ['set session authorization admin', Hazard.RoleChange],
  ['reset role', Hazard.RoleChange],
  ["select set_config('role', 'admin', false)", Hazard.RoleChange],
  ["select pg_catalog.set_config('SESSION_AUTHORIZATION', 'admin', true)", Hazard.RoleChange],
  ["update pg_settings set setting = 'admin' where name = 'role'", Hazard.RoleChange],
  ["update pg_catalog.pg_settings set setting = 'admin' where name = $1", Hazard.RoleChange],
  ["alter database d set role = 'admin'", Hazard.RoleChange],
  ["alter system set shared_preload_libraries = 'x'", Hazard.AlterSystem],
  ['alter system reset all', Hazard.AlterSystem],
  ["copy t to program 'gzip > /tmp/t.gz'", Hazard.CopyProgram],
  ["copy t from program 'curl http://x'", Hazard.CopyProgram],
  ["copy t from '/etc/passwd'", Hazard.ServerFile],
  ["copy (select * from t) to '/tmp/out'", Hazard.ServerFile],
  ["select pg_read_file('/etc/passwd')", Hazard.ServerFile],
  ["select pg_read_binary_file('x')", Hazard.ServerFile],
  ["select pg_ls_dir('.')", Hazard.ServerFile],
  ["select pg_stat_file('postgresql.conf')", Hazard.ServerFile],
  ["select pg_file_write('x', 'y', false)", Hazard.ServerFile],
  ["select lo_import('/etc/passwd')", Hazard.LargeObject],
  ["select lo_export(1234, '/tmp/x')", Hazard.LargeObject],
  ['select lo_unlink(1234)', Hazard.LargeObject],
  ["select lo_from_bytea(0, 'x')", Hazard.LargeObject],
  ['create extension plpython3u', Hazard.CreateExtension],
  ['create extension if not exists dblink schema public', Hazard.CreateExtension],
  ['do $$ begin execute v; end $$', Hazard.DynamicSql],
  ["do $$ declare t text := 'x'; begin execute 'drop table ' || t; end $$", Hazard.DynamicSql],
  ["do $$ begin execute format('drop table %I', 'x'); end $$", Hazard.DynamicSql],
  ['do language plperlu $$ system("rm -rf /") $$', Hazard.DynamicSql],
  ['select dblink_exec(cmd) from jobs', Hazard.DynamicSql],
  ["select query_to_xml(q, true, false, '') from saved", Hazard.DynamicSql],
  ["select cursor_to_xml('c', 10, true, false, '')", Hazard.DynamicSql],
  // wherever the statement sits
  ['with gone as (delete from t returning *) select count(*) from gone', Hazard.DeleteWithoutWhere],
  ['with x as (update t set a = 1 returning *) select 1', Hazard.UpdateWithoutWhere],
  ['explain analyze delete from t', Hazard.DeleteWithoutWhere],
  ['explain (analyze, format json) update t set a = 1', Hazard.UpdateWithoutWhere],
  ['prepare q as delete from t', Hazard.DeleteWithoutWhere],
  ['prepare q(int) as update t set a = $1', Hazard.UpdateWithoutWhere],
  ['do $$ begin drop table t; end $$', Hazard.DropTable],
  ['do $$ begin delete from t; end $$', Hazard.DeleteWithoutWhere],
  ["do $$ begin execute 'drop schema s cascade'; end $$", Hazard.DropSchema],
  ["do $$ begin perform pg_read_file('/etc/passwd'); end $$", Hazard.ServerFile],
  ["do $$ begin if true then execute 'truncate t'; end if; end $$", Hazard.Truncate],
  ["do $$ declare r record; begin for r in execute 'select 1' loop delete from t; end loop; end $$", Hazard.DeleteWithoutWhere],
  ["select dblink_exec('dbname=x', 'drop table t')", Hazard.DropTable],
  ["select query_to_xml('delete from t returning 1', true, false, '')", Hazard.DeleteWithoutWhere],
  ['copy (delete from t returning *) to stdout', Hazard.DeleteWithoutWhere],
  ['declare c cursor for select pg_read_file(f) from files', Hazard.ServerFile],
  ['create schema s create table t (a int) grant select on t to r', Hazard.GrantRevoke],
  ["do $o$ begin execute $x$do $i$ begin drop table t; end $i$$x$; end $o$", Hazard.DropTable],
];

/** Statements that look like the dangerous ones but are not. */
const LOOK_ALIKES: readonly string[] = [
  "select 'DROP TABLE x'",
  "select 'drop table x; delete from t'",
  'select $$drop table x$$',
  'select $tag$ truncate t $tag$',
  '-- drop table x\nselect 1',
  '/* drop table x */ select 1',
  '/* outer /* drop table x */ still a comment: truncate t */ select 1',
  'select * from drop_log',
  'select * from "drop table"',
  'select truncate_count, delete_flag from audit',
  'delete from t where id = 5',
  'delete from t where id = $1',
  'delete from t where id in (1, 2, 3)',
  'delete from t where 1 = 2',
  'delete from t where false',
  'delete from t where null',
  "delete from t where 'a' = 'b'",
  "delete from t where 'a-b' like 'a-c%'",
  "delete from t where 'abc' not like '%b%'",
  'delete from t where id = 5 and 1 = 1',
  'delete from t where current of c',
  'delete from t using u where t.id = u.id',
  'delete from t x using u where x.id = u.id',
  'delete from s.t using u where s.t.id = u.id',
  'delete from t using u where id = u.t_id',
  'delete from t where exists (select 1 from u where u.tid = t.id)',
  'delete from t where id in (select tid from u)',
  'delete from t where x is null',
  'update t set a = 1 where id = 2',
  'update t set a = 1 where id = $1 and true',
  'update t set a = b where current of c',
  'update t set a = u.a from u where t.id = u.id',
  'update t set a = 1 where a <> a',
  'alter table t add column dropped boolean',
  'alter table t set without cluster',
  'alter table t no inherit parent',
  "alter table t alter column c set default 'drop'",
  'alter table t rename column drop_me to kept',
  "comment on table t is 'drop table t'",
  'create table drop_table (truncate int)',
  "select set_config('search_path', 'public', false)",
  "set application_name = 'role'",
  'show role',
  "update pg_settings set setting = '1GB' where name = 'work_mem'",
  'drop type ty',
  "alter database d set work_mem = '1GB'",
  'copy t to stdout',
  'copy t from stdin',
  "copy t from stdin with (format csv, delimiter ';')",
  'select nextval($$s$$)',
  "select query_to_xml('select 1', true, false, '')",
  "select dblink('dbname=x', 'select 1') as t(a int)",
  'create extension_log (a int)',
  'select * from pg_extension',
  "do $$ begin raise notice 'drop table x'; end $$",
  "do $$ begin execute 'select 1'; end $$",
  "do $$ begin delete from t where id = 1; end $$",
  "do $$ declare v int := 1; begin delete from t where id = v; end $$",
  'create function f() returns void language sql as $$ drop table t $$',
  'create procedure p() language plpgsql as $$ begin truncate t; end $$',
  'create rule r as on insert to t do instead delete from u',
  'explain delete from t',
  'explain (analyze false) delete from t',
  'explain update t set a = 1',
  'begin; commit',
  'deallocate all',
  'execute q(1)',
];

describe('hazards', () => {
  it('the cases cover every hazard the parser reports', () => {
    // sensitive-predicate comes from core (lineage against the masking configuration), see masking tests.
    const parserHazards = Object.values(Hazard).filter((h) => h !== Hazard.SensitivePredicate);
    expect(new Set(DANGEROUS.map(([, h]) => h))).toEqual(new Set(parserHazards));
  });

  it.each(DANGEROUS)('%s → %s', (text, hazard) => {
    expect(hazards(text)).toContain(hazard);
  });

  it.each(LOOK_ALIKES)('no hazard: %s', (text) => {
    expect(hazards(text)).toEqual([]);
  });

  it('reports several hazards of one request, without duplicates, in order', () => {
    const a = analyzeUncached('drop table a; truncate b; drop table c; delete from d');
    expect(a.hazards).toEqual([Hazard.DropTable, Hazard.Truncate, Hazard.DeleteWithoutWhere]);
    expect(a.parts?.map((p) => p.hazards)).toEqual([[Hazard.DropTable], [Hazard.Truncate], [Hazard.DropTable], [Hazard.DeleteWithoutWhere]]);
  });

  it('large-object export and import also touch server files', () => {
    expect(hazards("select lo_export(1, '/tmp/x')")).toEqual([Hazard.LargeObject, Hazard.ServerFile]);
    expect(hazards('select lo_unlink(1)')).toEqual([Hazard.LargeObject]);
  });

  it('a DROP OWNED drops tables and revokes privileges', () => {
    expect(hazards('drop owned by r')).toEqual([Hazard.DropTable, Hazard.GrantRevoke]);
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
  ' /* drop table x; truncate y */ ',
  ' /* ; delete from t */ ',
  ' /* a /* nested */ b */ ',
  ' /* /* /* deep */ */ */ ',
  ' -- drop table z\n',
  ' --\n',
  ' -- ; delete from t\r\n',
];

const separator = fc.array(fc.constantFrom(...SEPARATOR_PIECES), { minLength: 1, maxLength: 3 }).map((p) => ' ' + p.join(''));

/**
 * A statement re-laid out: every gap between tokens replaced by whitespace and comments, and the
 * ASCII letters of unquoted words (keywords and identifiers) in random case. Literals, quoted
 * identifiers and dollar-quoted bodies are kept as written.
 */
function relaidOut(text: string): fc.Arbitrary<string> {
  const tokens = lex(text);
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
        out += piece + seps[i + 1]!;
      });
      return out;
    });
}

describe('hazards do not depend on layout, comments or case', () => {
  it('a dangerous statement keeps its hazards and operation classes', () => {
    const cases = fc.constantFrom(...DANGEROUS).chain(([text]) => relaidOut(text).map((variant) => [text, variant] as const));
    fc.assert(
      fc.property(cases, ([text, variant]) => {
        const original = analyzeUncached(text);
        const changed = analyzeUncached(variant);
        for (const h of original.hazards ?? []) expect(changed.hazards).toContain(h);
        for (const op of original.operations) expect(changed.operations).toContain(op);
      }),
      { numRuns: 1500 },
    );
  });

  it('a look-alike stays free of hazards', () => {
    const cases = fc.constantFrom(...LOOK_ALIKES).chain((text) => relaidOut(text));
    fc.assert(
      fc.property(cases, (variant) => {
        expect(analyzeUncached(variant).hazards).toEqual([]);
      }),
      { numRuns: 1500 },
    );
  });

  it('the transformation really changes the text', () => {
    const sample = fc.sample(relaidOut('delete from t where id = 1'), { numRuns: 5, seed: 7 });
    for (const s of sample) {
      expect(s).not.toBe('delete from t where id = 1');
      expect(lex(s).map((t) => t.value.toLowerCase())).toEqual(lex('delete from t where id = 1').map((t) => t.value));
    }
  });
});

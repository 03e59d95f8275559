import { createHash } from 'node:crypto';
import { Hazard, isPrivileged, OperationClass } from '@sluice/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzePostgres, analyzeUncached, createPostgresAnalyzer, fingerprintOf } from './analyze.js';
import { parserCalls } from './parse.js';

describe('analyzePostgres', () => {
  it('analyzes a multi-statement request', () => {
    const a = analyzePostgres("BEGIN; SELECT * FROM t WHERE id = 7; UPDATE t SET a = 'x' WHERE id = 7; select 1; COMMIT;");
    expect(a.normalized).toBe('begin; select * from t where id = ?; update t set a = ? where id = ?; select ?; commit');
    expect(a.statementCount).toBe(5);
    expect(a.commands).toEqual(['BEGIN', 'SELECT', 'UPDATE', 'SELECT', 'COMMIT']);
    expect(a.operations).toEqual([OperationClass.Transaction, OperationClass.Read, OperationClass.Write]);
    expect(isPrivileged(a.operations)).toBe(true);
  });

  it('returns no statements for empty or comment-only text', () => {
    for (const text of ['', '   ', ';', '-- x', '/* x */ ;;']) {
      const a = analyzePostgres(text);
      expect(a.statementCount).toBe(0);
      expect(a.operations).toEqual([]);
      expect(a.commands).toEqual([]);
      expect(a.normalized).toBe('');
    }
  });

  it("splits 'a;b' correctly and keeps the literal out", () => {
    const a = analyzePostgres("select 'a;b'; select 2");
    expect(a.statementCount).toBe(2);
    expect(a.normalized).toBe('select ?; select ?');
    expect(a.normalized).not.toContain('a;b');
  });

  it('fingerprints the normalized text: the first 16 hex characters of its SHA-1', () => {
    const a = analyzePostgres('select * from t where id = 1');
    expect(a.fingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(a.fingerprint).toBe(createHash('sha1').update(a.normalized).digest('hex').slice(0, 16));
  });

  it('gives requests of the same shape the same fingerprint', () => {
    const a = analyzePostgres("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'a'");
    const b = analyzePostgres("select *\nfrom t -- comment\nwhere id in (4) and name = 'something else'");
    const c = analyzePostgres('select * from t where id in (4) and other = 1');
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.fingerprint).not.toBe(c.fingerprint);
  });

  it('has a stable fingerprint across runs', () => {
    // Pinned: changing normalization or hashing changes fingerprints already in audit trails.
    expect(fingerprintOf('select ?')).toBe('7ae509fc5e11f3bd');
    expect(analyzePostgres('SELECT 1').fingerprint).toBe('7ae509fc5e11f3bd');
  });

  it('classifies text the server would reject as unknown', () => {
    // The semicolon sits inside an unclosed parenthesis, so the DROP stays in the first statement.
    const hidden = analyzePostgres('select (1; drop table x');
    expect(hidden.statementCount).toBe(1);
    expect(hidden.operations).toEqual([OperationClass.Unknown]);
    expect(analyzePostgres('select 1); drop table x').operations).toEqual([OperationClass.Unknown, OperationClass.Ddl]);
    expect(analyzePostgres("select 'abc").operations).toEqual([OperationClass.Unknown]);
    expect(analyzePostgres('select "abc').operations).toEqual([OperationClass.Unknown]);
    expect(analyzePostgres('create function f() returns int begin atomic select 1; drop table x').operations).toEqual([
      OperationClass.Unknown,
    ]);
    expect(analyzePostgres('select (1); select 2').operations).toEqual([OperationClass.Read]);
  });

  it('deduplicates operations in first-seen order', () => {
    const a = analyzePostgres('insert into t values (1); select 1; insert into t values (2); set x = 1; select 2');
    expect(a.operations).toEqual([OperationClass.Write, OperationClass.Read, OperationClass.SessionSetting]);
  });

  it('returns frozen results', () => {
    const a = analyzePostgres('select 1');
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(a.operations)).toBe(true);
    expect(Object.isFrozen(a.commands)).toBe(true);
  });

  it('serves repeated texts from the cache', () => {
    const text = `select ${Math.random()}`;
    expect(analyzePostgres(text)).toBe(analyzePostgres(text));
  });
});

describe('createPostgresAnalyzer', () => {
  it('evicts the least recently used text', () => {
    const analyzer = createPostgresAnalyzer({ cacheSize: 2 });
    const a = analyzer.analyze('select a');
    const b = analyzer.analyze('select b');
    expect(analyzer.analyze('select a')).toBe(a); // refreshes 'select a'
    analyzer.analyze('select c'); // evicts 'select b'
    expect(analyzer.size).toBe(2);
    expect(analyzer.analyze('select a')).toBe(a);
    // Re-analysed after eviction; the shape cache hands back the same analysis.
    expect(analyzer.analyze('select b')).toEqual(b);
  });

  it('shares one analysis between texts of the same shape, but not with malformed text', () => {
    const analyzer = createPostgresAnalyzer();
    const a = analyzer.analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 48213;');
    const b = analyzer.analyze('SELECT abalance FROM pgbench_accounts WHERE aid = 7;');
    expect(b).toBe(a);
    const c = analyzer.analyze("select 'x");
    const d = analyzer.analyze("select 'y");
    expect(c.operations).toEqual(['unknown']);
    expect(d).not.toBe(c);
  });

  it('does not cache long texts or when disabled', () => {
    const small = createPostgresAnalyzer({ maxCachedTextLength: 10 });
    small.analyze('select 1234567890');
    expect(small.size).toBe(0);
    small.analyze('select x');
    expect(small.size).toBe(1);
    small.clear();
    expect(small.size).toBe(0);

    const none = createPostgresAnalyzer({ cacheSize: 0 });
    none.analyze('select 1');
    expect(none.size).toBe(0);
  });

  it('lexes with standard_conforming_strings off when asked', () => {
    const text = "select 'a\\'; delete from t; --'";
    const on = createPostgresAnalyzer().analyze(text);
    expect(on.statementCount).toBe(2);
    expect(on.operations).toEqual([OperationClass.Read, OperationClass.Write]);
    const off = createPostgresAnalyzer({ standardConformingStrings: false }).analyze(text);
    expect(off.statementCount).toBe(1);
    expect(off.operations).toEqual([OperationClass.Read]);
    expect(off.normalized).toBe('select ?');
  });

  it('matches the uncached analysis', () => {
    const text = 'with x as (delete from t returning *) select * from x; select 1';
    expect(createPostgresAnalyzer().analyze(text)).toEqual(analyzeUncached(text));
  });
});

describe('statements the parser sees', () => {
  it('gives each statement of a request its own facts, and the request their union', () => {
    const a = analyzePostgres("select * from t where id = 1; -- not; a statement\n delete from u; /* ; */ insert into v (a) values ('x;y')");
    expect(a.statementCount).toBe(3);
    expect(a.normalized).toBe('select * from t where id = ?; delete from u; insert into v(a) values (?)');
    expect(a.parts?.map((p) => p.operations)).toEqual([[OperationClass.Read], [OperationClass.Write], [OperationClass.Write]]);
    expect(a.parts?.map((p) => p.hazards)).toEqual([[], [Hazard.DeleteWithoutWhere], []]);
    expect(a.parts?.map((p) => p.objects?.map((o) => `${o.access}:${o.name}`))).toEqual([['read:t'], ['write:u'], ['write:v']]);
    expect(a.hazards).toEqual([Hazard.DeleteWithoutWhere]);
    expect(a.objects?.map((o) => `${o.access}:${o.name}`)).toEqual(['read:t', 'write:u', 'write:v']);
  });

  it('ignores line and nested block comments and reads dollar-quoted text as literals', () => {
    const a = analyzePostgres('/* drop table a; /* nested; truncate b */ still comment */ select $x$; drop table c; $x$ -- ; drop table d');
    expect(a.statementCount).toBe(1);
    expect(a.operations).toEqual([OperationClass.Read]);
    expect(a.hazards).toEqual([]);
    const b = analyzePostgres('drop /* a comment */ table -- another\n t');
    expect(b.hazards).toEqual([Hazard.DropTable]);
    expect(b.objects).toEqual([{ name: 't', kind: 'table', access: 'ddl' }]);
  });

  it('classes a statement the parser rejects as unknown, with its message and no literal in it', () => {
    const a = analyzePostgres("select 'secret value' 'more' from t");
    expect(a.operations).toEqual([OperationClass.Unknown]);
    expect(a.unanalysable).toMatch(/^syntax error at or near "\?"/);
    expect(a.unanalysable).not.toContain('secret');
    const b = analyzePostgres('selec 1; drop table t');
    expect(b.parts?.[0]?.operations).toEqual([OperationClass.Unknown]);
    expect(b.parts?.[0]?.unanalysable).toMatch(/syntax error at or near "selec"/);
    expect(b.parts?.[1]?.hazards).toEqual([Hazard.DropTable]);
    expect(b.unanalysable).toBe(b.parts?.[0]?.unanalysable);
  });

  it('reports prepared statements, EXECUTE and DEALLOCATE for the session', () => {
    const p = analyzePostgres('PREPARE wipe (int) AS DELETE FROM t WHERE true');
    expect(p.prepare?.name).toBe('wipe');
    expect(p.prepare?.statement.normalized).toBe('delete from t where true');
    expect(p.prepare?.statement.commands).toEqual(['DELETE']);
    expect(p.prepare?.statement.operations).toEqual([OperationClass.Write]);
    expect(p.prepare?.statement.hazards).toEqual([Hazard.DeleteWithoutWhere]);
    // The PREPARE itself carries what it prepares, so a policy can refuse it early.
    expect(p.operations).toEqual([OperationClass.Write]);
    expect(p.hazards).toEqual([Hazard.DeleteWithoutWhere]);
    expect(p.commands).toEqual(['PREPARE']);

    const e = analyzePostgres('execute wipe(1)');
    expect(e.execute).toBe('wipe');
    expect(e.operations).toEqual([OperationClass.Unknown]);
    expect(e.unanalysable).toBe('EXECUTE of a prepared statement the analyzer has not seen');

    expect(analyzePostgres('deallocate wipe').deallocate).toBe('wipe');
    expect(analyzePostgres('deallocate prepare all').deallocate).toBe('*');
    expect(analyzePostgres('discard all').deallocate).toBe('*');

    const several = analyzePostgres('prepare q as select $1::int; execute q(2); deallocate q');
    expect(several.parts?.map((x) => [x.prepare?.name, x.execute, x.deallocate])).toEqual([
      ['q', undefined, undefined],
      [undefined, 'q', undefined],
      [undefined, undefined, 'q'],
    ]);
    expect(several.parts?.[0]?.prepare?.statement.normalized).toBe('select $1::int');
    expect(several.prepare).toBeUndefined();

    // EXPLAIN ANALYZE runs the prepared statement; plain EXPLAIN and CREATE TABLE AS do not become it.
    expect(analyzePostgres('explain analyze execute q(1)').execute).toBe('q');
    expect(analyzePostgres('explain execute q(1)').execute).toBeUndefined();
    expect(analyzePostgres('explain execute q(1)').operations).toEqual([OperationClass.Read]);
    const ctas = analyzePostgres('create table x as execute q');
    expect(ctas.execute).toBeUndefined();
    expect(ctas.operations).toEqual([OperationClass.Ddl, OperationClass.Write, OperationClass.Unknown]);
  });

  it('analyses what a DO block runs', () => {
    const a = analyzePostgres(`DO $$
      DECLARE n int;
      BEGIN
        SELECT count(*) INTO n FROM accounts WHERE active;
        EXECUTE 'DROP TABLE old_accounts';
        UPDATE accounts SET checked = now() WHERE id = n;
      END $$`);
    expect(a.operations).toEqual([OperationClass.Read, OperationClass.Ddl, OperationClass.Write]);
    expect(a.hazards).toEqual([Hazard.DropTable]);
    expect(a.objects).toEqual([
      { name: 'accounts', kind: 'table', access: 'read', columns: ['active', 'id'] },
      { name: 'old_accounts', kind: 'table', access: 'ddl' },
      { name: 'accounts', kind: 'table', access: 'write', columns: ['checked'] },
    ]);
    expect(a.functions).toEqual(['count', 'now']);
    expect(a.unanalysable).toBeUndefined();
  });

  it('classes a DO block that executes a computed string as unknown with dynamic-sql', () => {
    const a = analyzePostgres(`do $$ declare t text; begin
      for t in select tablename from pg_tables loop execute 'truncate ' || quote_ident(t); end loop; end $$`);
    expect(a.operations).toContain(OperationClass.Unknown);
    expect(a.hazards).toEqual([Hazard.DynamicSql]);
    expect(a.unanalysable).toBe('EXECUTE of a string built at run time');
    expect(a.objects).toEqual([{ name: 'pg_tables', kind: 'table', access: 'read', columns: ['tablename'] }]);
    expect(a.functions).toEqual(['quote_ident']);

    const b = analyzePostgres("do language plv8 $$ plv8.execute('drop table t') $$");
    expect(b.operations).toEqual([OperationClass.Unknown]);
    expect(b.hazards).toEqual([Hazard.DynamicSql]);

    const c = analyzePostgres('do $$ begin oops; end $$');
    expect(c.operations).toEqual([OperationClass.Unknown]);
    expect(c.unanalysable).toMatch(/^PL\/pgSQL: syntax error/);
  });
});

describe('caching by shape', () => {
  it('does not share an analysis that depends on literals: WHERE 1=1 then WHERE 1=2', () => {
    const analyzer = createPostgresAnalyzer();
    const always = analyzer.analyze('delete from t where 1=1');
    const never = analyzer.analyze('delete from t where 1=2');
    expect(always.normalized).toBe(never.normalized);
    expect(always.hazards).toEqual([Hazard.DeleteWithoutWhere]);
    expect(never.hazards).toEqual([]);
    // And the other way round, through a fresh analyzer.
    const other = createPostgresAnalyzer();
    expect(other.analyze('update t set a = 1 where 2 = 3').hazards).toEqual([]);
    expect(other.analyze('update t set a = 1 where 3 = 3').hazards).toEqual([Hazard.UpdateWithoutWhere]);
    expect(other.analyze("update t set a = 1 where 'x' = 'y'").hazards).toEqual([]);
    expect(other.analyze("update t set a = 1 where 'x' = 'x'").hazards).toEqual([Hazard.UpdateWithoutWhere]);
  });

  it('does not share DO blocks, SQL strings, set_config names or EXPLAIN option values', () => {
    const analyzer = createPostgresAnalyzer();
    const pairs: Array<[string, string]> = [
      ["do $$ begin perform 1; end $$", 'do $$ begin drop table t; end $$'],
      ["select query_to_xml('select 1', true, false, '')", "select query_to_xml('delete from t returning 1', true, false, '')"],
      ["select dblink_exec('c', 'select 1')", "select dblink_exec('c', 'drop schema s')"],
      ["select set_config('work_mem', '1MB', false)", "select set_config('role', 'admin', false)"],
      ['explain (analyze 0) delete from t', 'explain (analyze 1) delete from t'],
      ["delete from t where name like 'a%'", "delete from t where name like '%'"],
    ];
    for (const [harmless, dangerous] of pairs) {
      const first = analyzer.analyze(harmless);
      const second = analyzer.analyze(dangerous);
      expect(first.normalized).toBe(second.normalized);
      expect(first.hazards).toEqual([]);
      expect(second.hazards).not.toEqual([]);
    }
  });

  it('shares analyses that do not depend on literals, without calling the parser', () => {
    const analyzer = createPostgresAnalyzer();
    const first = analyzer.analyze("update accounts set balance = balance - 10 where id = 7 and note <> 'x'");
    const before = parserCalls.sql;
    const second = analyzer.analyze("update accounts set balance = balance - 99 where id = 8 and note <> 'y'");
    expect(parserCalls.sql).toBe(before);
    expect(second).toBe(first);
    // Multi-statement requests too, and statements already seen in other requests.
    const many = analyzer.analyze("begin; update accounts set balance = balance - 1 where id = 1 and note <> 'z'; commit");
    const calls = parserCalls.sql;
    expect(many.parts?.[1]).toBe(first);
    expect(analyzer.analyze("begin; update accounts set balance = balance - 2 where id = 2 and note <> 'w'; commit")).toBe(many);
    expect(parserCalls.sql).toBe(calls);
  });

  it('gives through its caches what it gives without them, whatever the literals', () => {
    const literal = fc.constantFrom(
      '1', '2', '0', '-1', '1.5', "'a'", "'b'", "'t'", "'f'", "'on'", "'%'", "'a%'", "'1'", "''", '$$x$$', "'x'::int", "'2'::int",
      "'drop table t'", "'select 1'", "'begin perform 1; end'", "'begin drop table t; end'", "B'101'", "'role'", "'open",
    );
    const templates = [
      'delete from t where # = #',
      'delete from t where # <> # or id = #',
      'delete from t where a + # = a + #',
      'delete from t where (a * #) is null or (a * #) is not null',
      'delete from t where # in (#, #)',
      'delete from t where # between # and #',
      'update t set a = # where name like #',
      "update t set a = # where #::boolean",
      'update t set a = # where not (# = #)',
      'delete from t where a = a + #',
      'delete from t where a in (a + #, #)',
      "select set_config(#, 'x', false)",
      'explain (analyze #) delete from t',
      "select query_to_xml(#, true, false, '')",
      'select # from t where id = #; delete from u where # = #',
      'delete from t where #::int = #',
      'delete from t where # is not distinct from #',
      'delete from t where (# || #) = #',
      "select crosstab(#, #)",
      "select dblink_exec('c', #)",
      'do # ',
      'do $b$ begin execute #; end $b$',
      'select nextval(#) where # = #',
      'delete from t where x is null or # is not null',
      'select #; select #',
      'select (#; select #',
      'select #); drop table t',
    ];
    const text = fc.tuple(fc.constantFrom(...templates), fc.array(literal, { minLength: 6, maxLength: 6 })).map(([template, values]) => {
      let i = 0;
      return template.replace(/#/g, () => values[i++]!);
    });
    fc.assert(
      fc.property(fc.array(text, { minLength: 2, maxLength: 12 }), (texts) => {
        const analyzer = createPostgresAnalyzer();
        for (const t of texts) expect(analyzer.analyze(t)).toEqual(analyzeUncached(t));
      }),
      { numRuns: 500 },
    );
  });

  it('never serves malformed text from the shape cache', () => {
    const analyzer = createPostgresAnalyzer();
    expect(analyzer.analyze("select 1; select 'abc'").operations).toEqual([OperationClass.Read]);
    expect(analyzer.analyze("select 1; select 'abc").operations).toEqual([OperationClass.Read, OperationClass.Unknown]);
    expect(analyzer.analyze("select 'abc'").operations).toEqual([OperationClass.Read]);
    expect(analyzer.analyze("select 'abc").operations).toEqual([OperationClass.Unknown]);
  });

  it('does not share the analysis of a statement the parser rejected because of a literal', () => {
    const analyzer = createPostgresAnalyzer();
    expect(analyzer.analyze('select 1abc').operations).toEqual([OperationClass.Unknown]);
    expect(analyzer.analyze('select 1').operations).toEqual([OperationClass.Read]);
  });

  it('parses with backslash escapes when standard_conforming_strings is off', () => {
    const text = "delete from t where name = 'x\\' or 1=1 --'";
    expect(createPostgresAnalyzer().analyze(text).hazards).toEqual([Hazard.DeleteWithoutWhere]);
    const off = createPostgresAnalyzer({ standardConformingStrings: false }).analyze(text);
    expect(off.statementCount).toBe(1);
    expect(off.hazards).toEqual([]);
    expect(off.operations).toEqual([OperationClass.Write, OperationClass.Read]);
    expect(createPostgresAnalyzer({ standardConformingStrings: false }).analyze("select'a\\\\'").operations).toEqual([OperationClass.Read]);
    // `\b` is an escape (backspace) only when the setting is off.
    const body = `do 'begin execute ''drop table "a\\b"''; end'`;
    expect(createPostgresAnalyzer().analyze(body).objects).toEqual([{ name: 'a\\b', kind: 'table', access: 'ddl' }]);
    expect(createPostgresAnalyzer({ standardConformingStrings: false }).analyze(body).objects).toEqual([
      { name: 'a\b', kind: 'table', access: 'ddl' },
    ]);
  });
});

describe('robustness', () => {
  const fragment = fc.constantFrom(
    'select', 'delete', 'from', 'where', 'do', '$$', '$x$', "'", '"', ';', '(', ')', '/*', '*/', '--', '\n', ' ', 't', '1',
    '=', 'or', 'execute', 'begin', 'end', 'drop', 'table', 'with', 'as', 'prepare', 'copy', 'into', ',', '*', '::', 'E\'\\\'',
  );

  it('never throws, and gives every statement at least one operation class', () => {
    fc.assert(
      fc.property(fc.array(fragment, { maxLength: 40 }), (parts) => {
        const a = analyzeUncached(parts.join(' '));
        for (const part of a.parts ?? (a.statementCount === 1 ? [a] : [])) expect(part.operations.length).toBeGreaterThan(0);
        expect(a.commands.length).toBe(a.statementCount);
      }),
      { numRuns: 500 },
    );
  });

  it('classes statements nested beyond what it walks as unknown', () => {
    const deep = analyzeUncached('select ' + '(select '.repeat(3000) + '1' + ')'.repeat(3000));
    expect(deep.operations).toContain(OperationClass.Unknown);
    let sql = 'drop table t';
    for (let i = 0; i < 24; i++) sql = `select query_to_xml($q${i}$${sql}$q${i}$, true, false, '')`;
    const strings = analyzeUncached(sql);
    expect(strings.operations).toContain(OperationClass.Unknown);
    expect(strings.unanalysable).toContain('statements nested too deeply');
  });
});

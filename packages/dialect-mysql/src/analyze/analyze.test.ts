import { createHash } from 'node:crypto';
import { Hazard, isPrivileged, OperationClass } from '@sluice/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzeUncached, createMySqlAnalyzer, fingerprintOf, sqlModeFlags } from './analyze.js';
import { parserCalls } from './parse.js';

describe('analyzeUncached', () => {
  it('analyzes a multi-statement request, with one part per statement', () => {
    const a = analyzeUncached("BEGIN; SELECT * FROM t WHERE id = 7; UPDATE t SET a = 'x' WHERE id = 7; select 1; COMMIT;");
    expect(a.normalized).toBe('begin; select * from t where id = ?; update t set a = ? where id = ?; select ?; commit');
    expect(a.statementCount).toBe(5);
    expect(a.commands).toEqual(['BEGIN', 'SELECT', 'UPDATE', 'SELECT', 'COMMIT']);
    expect(a.operations).toEqual([OperationClass.Transaction, OperationClass.Read, OperationClass.Write]);
    expect(a.parts?.map((p) => p.normalized)).toEqual(['begin', 'select * from t where id = ?', 'update t set a = ? where id = ?', 'select ?', 'commit']);
    expect(a.parts?.[1]?.lineage).toBeDefined();
    expect(a.lineage).toBeUndefined();
    expect(isPrivileged(a.operations)).toBe(true);
  });

  it('returns no statements for empty or comment-only text', () => {
    for (const text of ['', '   ', ';', '-- x', '# x', '/* x */ ;;']) {
      const a = analyzeUncached(text);
      expect(a.statementCount).toBe(0);
      expect(a.operations).toEqual([]);
      expect(a.normalized).toBe('');
    }
  });

  it("splits 'a;b' correctly and keeps the literal out", () => {
    const a = analyzeUncached("select 'a;b'; select 2");
    expect(a.statementCount).toBe(2);
    expect(a.normalized).toBe('select ?; select ?');
  });

  it('fingerprints the normalized text as the PostgreSQL dialect does', () => {
    const a = analyzeUncached('select * from t where id = 1');
    expect(a.fingerprint).toBe(createHash('sha1').update(a.normalized).digest('hex').slice(0, 16));
    expect(fingerprintOf('select ?')).toBe('7ae509fc5e11f3bd');
    expect(analyzeUncached('SELECT 1').fingerprint).toBe('7ae509fc5e11f3bd');
    expect(analyzeUncached("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'a'").fingerprint).toBe(
      analyzeUncached("select *\nfrom t # comment\nwhere id in (4) and name = 'something else'").fingerprint,
    );
  });

  it('classifies text the server would reject as unknown, with the reason', () => {
    expect(analyzeUncached("select 'abc").operations).toContain(OperationClass.Unknown);
    expect(analyzeUncached('select `abc').operations).toContain(OperationClass.Unknown);
    expect(analyzeUncached('select 1 /* x').operations).toContain(OperationClass.Unknown);
    const bad = analyzeUncached('select from where');
    expect(bad.operations).toEqual([OperationClass.Read, OperationClass.Unknown]);
    expect(bad.unanalysable).toMatch(/syntax error/);
    // The message quotes the parser's text, whose literals are markers: no value leaks.
    expect(analyzeUncached("select 'secret-value' 'x' from from").unanalysable).not.toContain('secret');
    expect(analyzeUncached('frobnicate').unanalysable).toBe('statement FROBNICATE is not recognised');
  });

  it('returns frozen results', () => {
    const a = analyzeUncached('select a from t; select 2');
    expect(Object.isFrozen(a)).toBe(true);
    expect(Object.isFrozen(a.operations)).toBe(true);
    expect(Object.isFrozen(a.parts)).toBe(true);
    expect(Object.isFrozen(a.parts?.[0])).toBe(true);
  });
});

describe('prepared statements and handlers', () => {
  it('analyses PREPARE ... FROM a literal as the statement it prepares', () => {
    const a = analyzeUncached("PREPARE s FROM 'DELETE FROM t WHERE id = ?'");
    expect(a.operations).toEqual([OperationClass.Write, OperationClass.Read]);
    expect(a.prepare?.name).toBe('s');
    expect(a.prepare?.statement.normalized).toBe('delete from t where id = ?');
    expect(a.prepare?.statement.commands).toEqual(['DELETE']);
    expect(analyzeUncached("prepare s from 'delete from t'").hazards).toEqual([Hazard.DeleteWithoutWhere]);
  });

  it('does not see the text of PREPARE ... FROM a variable, nor what EXECUTE runs', () => {
    const p = analyzeUncached('prepare s from @sql');
    expect(p.operations).toEqual([OperationClass.Unknown]);
    expect(p.hazards).toEqual([Hazard.DynamicSql]);
    const e = analyzeUncached('EXECUTE s USING @a');
    expect(e.execute).toBe('s');
    expect(e.operations).toEqual([OperationClass.Unknown]);
    expect(analyzeUncached('deallocate prepare s').deallocate).toBe('s');
    expect(analyzeUncached('DROP PREPARE s').deallocate).toBe('s');
  });

  it('PREPARE of several statements is unknown (the server prepares one)', () => {
    const a = analyzeUncached("prepare s from 'select 1; drop table t'");
    expect(a.operations).toContain(OperationClass.Unknown);
    expect(a.hazards).toContain(Hazard.DropTable);
  });

  it('tells the session what a HANDLER opens, reads and closes', () => {
    expect(analyzeUncached('handler db.t open as h').handler).toEqual({ open: 'h' });
    expect(analyzeUncached('handler t open').handler).toEqual({ open: 't' });
    expect(analyzeUncached('handler h read first').handler).toEqual({ read: 'h' });
    expect(analyzeUncached('handler h close').handler).toEqual({ close: 'h' });
  });
});

describe('settings', () => {
  it('names the system variables a statement sets', () => {
    expect(analyzeUncached("set sql_mode = 'ANSI_QUOTES', @x = 1, global max_connections = 5, @@session.autocommit = 0").settings).toEqual([
      'sql_mode',
      'max_connections',
      'autocommit',
    ]);
    expect(analyzeUncached('set names utf8mb4').settings).toEqual(['names']);
    expect(analyzeUncached('set character set latin1').settings).toEqual(['character set']);
    expect(analyzeUncached('/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE=\'NO_AUTO_VALUE_ON_ZERO\' */').settings).toEqual(['sql_mode']);
    expect(analyzeUncached("set statement sql_mode = '' for select 1", { dialect: 'mariadb' }).settings).toEqual(['sql_mode']);
    expect(analyzeUncached('set @x = 1').settings).toBeUndefined();
  });
});

describe('sql_mode', () => {
  it('reads the flags of a sql_mode value', () => {
    expect(sqlModeFlags('STRICT_TRANS_TABLES,ANSI_QUOTES,NO_BACKSLASH_ESCAPES')).toEqual({
      ansiQuotes: true,
      noBackslashEscapes: true,
      pipesAsConcat: false,
      highNotPrecedence: false,
    });
    expect(sqlModeFlags('ANSI')).toMatchObject({ ansiQuotes: true, pipesAsConcat: true });
  });

  it('ANSI_QUOTES: "x" is an identifier', () => {
    expect(analyzeUncached('select "ssn" from "users"', { sqlMode: 'ANSI_QUOTES' }).objects).toEqual([{ name: 'users', kind: 'table', access: 'read', columns: ['ssn'] }]);
    expect(analyzeUncached('select "ssn" from users').objects).toEqual([{ name: 'users', kind: 'table', access: 'read' }]);
  });

  it('NO_BACKSLASH_ESCAPES: a backslash does not hide a statement in a string', () => {
    const text = "select 'a\\'; drop table t; -- '";
    expect(analyzeUncached(text).hazards).toEqual([]);
    expect(analyzeUncached(text, { sqlMode: 'NO_BACKSLASH_ESCAPES' }).hazards).toEqual([Hazard.DropTable]);
  });

  it('PIPES_AS_CONCAT and HIGH_NOT_PRECEDENCE change what a WHERE means', () => {
    const or = 'delete from t where id = 1 || 1 = 1';
    expect(analyzeUncached(or).hazards).toEqual([Hazard.DeleteWithoutWhere]);
    expect(analyzeUncached(or, { sqlMode: 'PIPES_AS_CONCAT' }).hazards).toEqual([]);
    const not = 'delete from t where not 1 = 2';
    expect(analyzeUncached(not).hazards).toEqual([Hazard.DeleteWithoutWhere]);
    expect(analyzeUncached(not, { sqlMode: 'HIGH_NOT_PRECEDENCE' }).hazards).toEqual([]);
  });
});

describe('createMySqlAnalyzer', () => {
  it('evicts the least recently used text', () => {
    const analyzer = createMySqlAnalyzer({ cacheSize: 2 });
    const a = analyzer.analyze('select a');
    const b = analyzer.analyze('select b');
    expect(analyzer.analyze('select a')).toBe(a);
    analyzer.analyze('select c');
    expect(analyzer.size).toBe(2);
    expect(analyzer.analyze('select a')).toBe(a);
    expect(analyzer.analyze('select b')).toEqual(b);
  });

  it('shares one analysis between texts of the same shape, without parsing again', () => {
    const analyzer = createMySqlAnalyzer();
    const a = analyzer.analyze('SELECT c FROM sbtest1 WHERE id = 48213');
    const before = parserCalls.count;
    const b = analyzer.analyze('SELECT c FROM sbtest1 WHERE id = 7');
    expect(b).toBe(a);
    expect(parserCalls.count).toBe(before);
    // Texts whose shapes were known are not kept in the raw-text cache.
    expect(analyzer.size).toBe(1);
  });

  it('does not share an analysis decided by a literal, nor one of malformed text', () => {
    const analyzer = createMySqlAnalyzer();
    expect(analyzer.analyze('delete from t where 1 = 1').hazards).toEqual([Hazard.DeleteWithoutWhere]);
    expect(analyzer.analyze('delete from t where 1 = 2').hazards).toEqual([]);
    expect(analyzer.analyze("prepare s from 'select 1'").operations).toEqual([OperationClass.Read]);
    expect(analyzer.analyze("prepare s from 'drop table t'").hazards).toEqual([Hazard.DropTable]);
    const c = analyzer.analyze("select 'x");
    expect(analyzer.analyze("select 'y")).not.toBe(c);
  });

  it('tells literal kinds apart (the parser sees them)', () => {
    const analyzer = createMySqlAnalyzer();
    expect(analyzer.analyze('select a from t limit 5').operations).toEqual([OperationClass.Read]);
    // A string where the grammar wants a number: another shape for the parser.
    expect(analyzer.analyze("select a from t limit '5'").operations).toContain(OperationClass.Unknown);
  });

  it('shares request analyses of several statements', () => {
    const analyzer = createMySqlAnalyzer();
    const a = analyzer.analyze('select 1; select a from t where id = 2');
    expect(analyzer.analyze('select 3; select a from t where id = 4')).toBe(a);
  });

  it('does not cache long texts or when disabled', () => {
    const small = createMySqlAnalyzer({ maxCachedTextLength: 10 });
    small.analyze('select 1234567890');
    expect(small.size).toBe(0);
    small.analyze('select x');
    expect(small.size).toBe(1);
    small.clear();
    expect(small.size).toBe(0);
    const none = createMySqlAnalyzer({ cacheSize: 0 });
    none.analyze('select 1');
    expect(none.size).toBe(0);
  });

  it('analyses MariaDB text as MariaDB does', () => {
    const maria = createMySqlAnalyzer({ dialect: 'mariadb' });
    const mysql = createMySqlAnalyzer({ dialect: 'mysql' });
    expect(maria.analyze('/*M! drop table t */ select 1').hazards).toEqual([Hazard.DropTable]);
    expect(mysql.analyze('/*M! drop table t */ select 1').hazards).toEqual([]);
  });
});

// --- the cached analysis is the uncached one -----------------------------------------------------

/** Literals of every form MySQL has. */
const numberLiteral = fc.oneof(
  fc.integer({ min: -1_000_000, max: 1_000_000 }).map(String),
  fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }).map((d) => String(d)),
  fc.constantFrom('0', '1', '2', '1e3', '.5', '1.5e-3', '0.0'),
);
const stringLiteral = fc.oneof(
  fc.string({ maxLength: 12 }).map((s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`),
  fc.string({ maxLength: 8 }).map((s) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`),
  fc.constantFrom("'a'", "'A'", "'a '", "''", "_utf8mb4'x'", "N'y'", "'1'", "'0'", "'abc'", "'%'", "'a' 'b'"),
);
const anyLiteral = fc.oneof(numberLiteral, stringLiteral, fc.constantFrom("X'1F'", '0x1F', "b'01'", '0b1', 'true', 'false', 'null'));

/** Statement templates; each `$` is replaced by a generated literal. */
const TEMPLATES: readonly string[] = [
  'select a, b from t where id = $ and name = $',
  'select * from t where a in ($, $, $) order by $ limit 10',
  'update t set a = $ where id = $',
  'update t set a = $ where $',
  'update t set a = $ where $ = $ or id = $',
  'delete from t where id = $',
  'delete from t where $',
  'delete from t where $ = $',
  'delete from t where $ = $ and id > $',
  'delete from t where name like $',
  'delete from t where $ like $',
  'delete from t where $ between $ and $',
  'delete from t where $ in ($, $)',
  'delete from t where not $',
  'delete from t where $ <=> $',
  'delete from t where x is null or $ is not null',
  'insert into t (a, b) values ($, $), ($, $)',
  'insert into t set a = $ on duplicate key update b = $',
  'select count(*) from t group by a having count(*) > $',
  'set @x = $',
  'set global max_connections = $',
  "create user $@'%' identified by $",
  'select $; select $ from dual; delete from t where $',
];

const generated = fc
  .tuple(fc.constantFrom(...TEMPLATES), fc.array(anyLiteral, { minLength: 12, maxLength: 12 }))
  .map(([template, literals]) => {
    let k = 0;
    return template.replace(/\$/g, () => literals[k++]!);
  });

describe('the shape cache', () => {
  it('gives the analysis an uncached analyzer gives, for statements differing only in literals', () => {
    for (const dialect of ['mysql', 'mariadb'] as const) {
      const analyzer = createMySqlAnalyzer({ dialect });
      fc.assert(
        fc.property(fc.array(generated, { minLength: 1, maxLength: 12 }), (texts) => {
          for (const text of texts) expect(analyzer.analyze(text)).toEqual(analyzeUncached(text, { dialect }));
        }),
        { numRuns: 400 },
      );
    }
  });

  it('really shares analyses between generated texts', () => {
    const analyzer = createMySqlAnalyzer();
    analyzer.analyze('select a, b from t where id = 1 and name = 2');
    const before = parserCalls.count;
    for (const text of fc.sample(generated.filter((t) => t.startsWith('select a, b')), { numRuns: 50, seed: 3 })) analyzer.analyze(text);
    // A few literal-kind combinations, not one parse per text.
    expect(parserCalls.count - before).toBeLessThan(20);
  });
});

describe('robustness', () => {
  /** Text made of SQL words, punctuation and literals, in any order. */
  const soup = fc
    .array(
      fc.oneof(
        fc.constantFrom(
          'select', 'from', 'where', 'delete', 'update', 'set', 'insert', 'into', 'values', 'drop', 'table', 'create', 'procedure',
          'begin', 'end', 'if', 'then', 'case', 'when', 'else', 'loop', 'while', 'do', 'repeat', 'until', 'declare', 'handler',
          'for', 'join', 'left', 'on', 'using', 'and', 'or', 'not', 'xor', 'in', 'between', 'like', 'is', 'null', 'exists',
          'prepare', 'execute', 'grant', 'revoke', 'alter', 'union', 'with', 'as', 'limit', 'order', 'by', 'global', 'into',
          'outfile', 'load', 'data', 'local', 'infile', 'lock', 'tables', 'explain', 'analyze', 'show', 'call', 't', 'u', 'a', 'b',
          '(', ')', ',', ';', '.', '=', '<=>', '||', '&&', '!', '-', '+', '*', '@x', '@@global.x', '?', ':', '{', '}',
          '/*!', '*/', '/*', '#\n', '-- \n', '`q`', '"d"', "'s'", "'", '"', '`', '1', '1e3', '.5', '0x1F', "X'1F'", '\\',
        ),
        fc.string({ maxLength: 3 }),
      ),
      { maxLength: 30 },
    )
    .map((parts) => parts.join(' '));

  it('classes a labelled block with nothing recognisable in it as unknown (found by the property below)', () => {
    for (const text of ['$ : declare', 'l: begin end']) {
      expect(analyzeUncached(text, { dialect: 'mariadb' }).operations, text).toEqual([OperationClass.Unknown]);
    }
  });

  it('never throws, and classes every statement', () => {
    fc.assert(
      fc.property(soup, fc.constantFrom('mysql', 'mariadb' as const), (text, dialect) => {
        const a = analyzeUncached(text, { dialect: dialect as 'mysql' | 'mariadb' });
        for (const part of a.parts ?? [a]) if (part.statementCount > 0) expect(part.operations.length).toBeGreaterThan(0);
      }),
      { numRuns: 3000 },
    );
  });

  it('survives deep nesting', () => {
    const deep = 'select ' + '('.repeat(3000) + '1' + ')'.repeat(3000);
    expect(analyzeUncached(deep).operations.length).toBeGreaterThan(0);
    const where = 'delete from t where ' + 'not '.repeat(5000) + '1';
    expect(analyzeUncached(where).operations).toContain(OperationClass.Write);
    const blocks = 'create procedure p() ' + 'begin '.repeat(20000) + 'end '.repeat(20000) + '; drop table t';
    expect(analyzeUncached(blocks).hazards).toContain(Hazard.DropTable);
    const nested = "prepare s from '" + "prepare s from ''".repeat(1) + "select 1''" + "'";
    expect(analyzeUncached(nested).operations.length).toBeGreaterThan(0);
  });
});

describe('user variable assignments', () => {
  const analyzer = createMySqlAnalyzer({ dialect: 'mariadb' });
  it.each([
    ['SELECT @x := email FROM c', true],
    ['SELECT email INTO @y FROM c LIMIT 1', true],
    ['SELECT id, email INTO @a, @b FROM c LIMIT 1', true],
    ['SELECT id FROM c INTO @a', true],
    ['SET @z = (SELECT email FROM c LIMIT 1)', true],
    ['SET @z := 1, @@session.sql_mode = DEFAULT', true],
    ['SELECT @x', false],
    ['SELECT email FROM c WHERE id = @x', false],
    ['SET @@session.sql_mode = DEFAULT', false],
    ["SELECT email FROM c WHERE note = '@x := 1'", false],
    ['UPDATE c SET email = @x WHERE id = 1', false],
    ['CALL p(@x)', true],
    ['CALL p(1, 2)', false],
  ])('%s', (text, assigns) => {
    expect(analyzer.analyze(text).assignsVariables === true).toBe(assigns);
  });
});

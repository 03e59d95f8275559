import { createHash } from 'node:crypto';
import { isPrivileged, OperationClass } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { analyzePostgres, analyzeUncached, createPostgresAnalyzer, fingerprintOf } from './analyze.js';

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

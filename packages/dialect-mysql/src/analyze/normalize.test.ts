import { describe, expect, it } from 'vitest';
import { normalizeSql, scanSql } from './normalize.js';

const norm = (text: string, dialect: 'mysql' | 'mariadb' = 'mysql'): string => normalizeSql(text, { dialect }).normalized;

describe('normalization', () => {
  it('replaces literals with ?, collapses whitespace and lower-cases keywords', () => {
    expect(norm("SELECT  a, 'x', \"y\", 42, -7, 1.5e3, .5, 0x1F, X'00', b'1', N'z'\n FROM T WHERE b = ?")).toBe(
      'select a, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? from t where b = ?',
    );
  });

  it('keeps a binary minus, drops a sign', () => {
    expect(norm('select a - 1, a-1, -1, x = -2, (-3)')).toBe('select a - ?, a - ?, ?, x = ?, (?)');
  });

  it('makes one ? of adjacent strings and of introducers with their string', () => {
    expect(norm("select 'a' 'b' 'c', _utf8mb4'x', _binary 0x41")).toBe('select ?, ?, ?');
  });

  it('writes quoted identifiers with backticks, as written', () => {
    expect(norm('select `My Col`, "x" from `T`')).toBe('select `My Col`, ? from `T`');
    expect(normalizeSql('select "My Col" from t', { ansiQuotes: true }).normalized).toBe('select `My Col` from t');
  });

  it('keeps variables, lower-cased', () => {
    expect(norm('SET @X = 1, @@GLOBAL.max_connections = 2')).toBe('set @x = ?, @@global.max_connections = ?');
    expect(norm("CREATE USER 'bob'@'%' IDENTIFIED BY 'secret'")).toBe('create user ?@? identified by ?');
  });

  it('collapses IN lists of literals', () => {
    expect(norm('select * from t where id in (1, 2, 3) and x in (?, ?) and y in (a, 1)')).toBe(
      'select * from t where id in (...) and x in (...) and y in (a, ?)',
    );
  });

  it('drops comments and keeps executable comments as code', () => {
    expect(norm('/* hi */ select 1 # x\n -- y\n')).toBe('select ?');
    expect(norm('/*!40101 SET NAMES utf8mb4 */')).toBe('set names utf8mb4');
    expect(norm('select 1 /*!50000 , b */ from t')).toBe('select ?, b from t');
    expect(norm('/*M! select 2 */ select 1')).toBe('select ?');
    expect(norm('/*M! select 2 */ select 1', 'mariadb')).toBe('select ? select ?');
  });

  it('never shows a literal value', () => {
    const secret = "select * from users where ssn = '123-45-6789' and pin = 4242 and note = \"x'y\"";
    const n = norm(secret);
    expect(n).not.toMatch(/123|4242|x'y/);
  });

  it('joins function names to their parenthesis', () => {
    expect(norm('select COUNT (*), upper( a ) from t where exists (select 1)')).toBe('select count(*), upper(a) from t where exists (select ?)');
  });
});

describe('statement splitting', () => {
  const split = (text: string, dialect: 'mysql' | 'mariadb' = 'mysql'): string[] => normalizeSql(text, { dialect }).statements;

  it('splits at semicolons outside literals and comments, and drops empty statements', () => {
    expect(split("select 'a;b'; select 2 /* ; */;; -- ;\n select 3;")).toEqual(['select ?', 'select ?', 'select ?']);
  });

  it('keeps the body of a stored program in its CREATE statement', () => {
    expect(split('create procedure p() begin select 1; if x then delete from t; end if; end; drop table t')).toEqual([
      'create procedure p() begin select ?; if x then delete from t; end if; end',
      'drop table t',
    ]);
    expect(split('create trigger tr before insert on t for each row begin set new.a = 1; end; select 1')).toHaveLength(2);
    expect(split('create event e on schedule every 1 day do begin delete from t; end; select 1')).toHaveLength(2);
    expect(
      split('create function f(x int) returns varchar(10) character set utf8mb4 deterministic begin declare y int default 1; return x; end; select 1'),
    ).toHaveLength(2);
    expect(split('create definer=`root`@`%` procedure p() lbl: begin loop leave lbl; end loop; end lbl; select 1')).toHaveLength(2);
  });

  it('ends a routine with a simple body at its semicolon', () => {
    expect(split('create procedure p() select 1; drop table t')).toEqual(['create procedure p() select ?', 'drop table t']);
    expect(split('create function f() returns int return 1; drop table t')).toHaveLength(2);
  });

  it('is not fooled by BEGIN and END used as names in a simple body', () => {
    // The body is a SELECT: the server ends the CREATE at the first semicolon.
    expect(split('create procedure p() select begin from t; drop table t; select end from u')).toEqual([
      'create procedure p() select begin from t',
      'drop table t',
      'select end from u',
    ]);
    expect(split('create procedure p() select case when 1 then begin else 0 end from t; drop table t')).toHaveLength(2);
  });

  it('splits where the body does not follow the grammar (more statements, never fewer)', () => {
    expect(split('create procedure p() begin select 1; drop table t')).toEqual(['create procedure p() begin select ?', 'drop table t']);
  });

  it('keeps MariaDB compound statements whole', () => {
    expect(split('begin not atomic delete from t; drop table u; end; select 1', 'mariadb')).toEqual([
      'begin not atomic delete from t; drop table u; end',
      'select ?',
    ]);
    expect(split('if 1 then drop table t; end if; select 1', 'mariadb')).toHaveLength(2);
    expect(split('begin; commit')).toEqual(['begin', 'commit']);
  });

  it('treats DELIMITER as the text it is (the server does not know it)', () => {
    // The server reads `DELIMITER // create ...` as a statement (a syntax error that stops the request).
    expect(split('DELIMITER //\ncreate procedure p() begin select 1; end //')).toEqual(['delimiter / / create procedure p() begin select ?', 'end / /']);
  });

  it('splits at a semicolon inside parentheses, and marks the statement malformed', () => {
    const scan = scanSql('select (1; drop table t');
    expect(scan.statements.map((s) => [s.normalized, s.wellFormed])).toEqual([
      ['select (?', false],
      ['drop table t', true],
    ]);
  });

  it('marks unterminated literals and comments, and version-dependent executable comments', () => {
    for (const text of ["select 'abc", 'select `abc', 'select 1 /* x', '/*! drop table t', `select 1 /*!99999 '*/; drop table t; -- ' */`]) {
      expect(scanSql(text).statements.every((s) => s.wellFormed), text).toBe(false);
    }
  });

  it('gives the leading command of each statement', () => {
    expect(normalizeSql('(select 1); /*!40101 set names utf8 */; insert into t values (1)').commands).toEqual(['SELECT', 'SET', 'INSERT']);
  });
});

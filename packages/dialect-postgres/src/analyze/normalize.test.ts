import { describe, expect, it } from 'vitest';
import { normalizeSql, type NormalizeOptions } from './normalize.js';

const norm = (text: string, options?: NormalizeOptions): string => normalizeSql(text, options).normalized;

describe('normalizeSql: literals', () => {
  it('replaces strings and numbers with ?', () => {
    expect(norm("SELECT * FROM users WHERE id = 42 AND name = 'bob'")).toBe(
      'select * from users where id = ? and name = ?',
    );
  });

  it('replaces every literal form', () => {
    expect(
      norm("select E'a\\'b', N'x', U&'d\\0061t', B'0101', X'1F', $$x$$, $t$y$t$, 1.5e3, 0x1F, .5, 1_000"),
    ).toBe('select ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?');
  });

  it('makes a continued string one placeholder', () => {
    expect(norm("select 'a'\n  'b', 'c'")).toBe('select ?, ?');
  });

  it('keeps positional parameters and numbers inside identifiers', () => {
    expect(norm('select t1.c2 from t1 where a = $1 and b = $2')).toBe('select t1.c2 from t1 where a = $1 and b = $2');
  });

  it('keeps true, false and null (keywords, not literals)', () => {
    expect(norm('select true, FALSE, null')).toBe('select true, false, null');
  });

  it('keeps type names of typed literals', () => {
    expect(norm("select date '2024-01-01', interval '1 day', '{1,2}'::int[]")).toBe(
      'select date ?, interval ?, ?::int[]',
    );
  });

  it('gives the same shape for different literal values', () => {
    const a = norm("insert into t (a, b) values (1, 'x')");
    const b = norm("insert into t (a, b) values (987654, 'a much longer string with ; and '' inside')");
    expect(a).toBe(b);
  });
});

describe('normalizeSql: signs', () => {
  it('folds a sign into the literal where it cannot be a subtraction', () => {
    expect(norm('select -1')).toBe('select ?');
    expect(norm('select * from t where x = -1')).toBe('select * from t where x = ?');
    expect(norm('select * from t where x=-1')).toBe('select * from t where x = ?');
    expect(norm('values (-1, - 2.5)')).toBe('values (?, ?)');
    expect(norm('select 1 - -1')).toBe('select ? - ?');
    expect(norm('select case when a then -1 else -2 end')).toBe('select case when a then ? else ? end');
    expect(norm('select a[-1]')).toBe('select a[?]');
  });

  it('keeps a binary minus', () => {
    expect(norm('select a - 1, a-1, (a) - 1, 1 - 1, $1 - 1')).toBe('select a - ?, a - ?, (a) - ?, ? - ?, $1 - ?');
  });

  it('gives x = -1 and x = 1 the same shape', () => {
    expect(norm('select * from t where x = -1')).toBe(norm('select * from t where x = 1'));
  });
});

describe('normalizeSql: IN lists', () => {
  it('collapses lists of literals and parameters', () => {
    expect(norm('select * from t where id in (1, 2, 3)')).toBe('select * from t where id in (...)');
    expect(norm("select * from t where id IN ('a')")).toBe('select * from t where id in (...)');
    expect(norm('select * from t where id in ($1, $2, -3)')).toBe('select * from t where id in (...)');
    expect(norm('select * from t where id not in (1,2)')).toBe('select * from t where id not in (...)');
  });

  it('gives lists of any length the same shape', () => {
    expect(norm('select 1 from t where a in (1)')).toBe(norm('select 1 from t where a in (1, 2, 3, 4, 5, 6)'));
  });

  it('does not collapse lists with expressions, columns or subqueries', () => {
    expect(norm('select * from t where id in (a, 2)')).toBe('select * from t where id in (a, ?)');
    expect(norm('select * from t where id in (select 1)')).toBe('select * from t where id in (select ?)');
    expect(norm('select * from t where id in (1 + 2)')).toBe('select * from t where id in (? + ?)');
    expect(norm('select * from t where id in ()')).toBe('select * from t where id in ()');
  });
});

describe('normalizeSql: layout, case and comments', () => {
  it('drops comments and canonicalizes whitespace', () => {
    expect(norm('SELECT  /* hi */ a,\n\tb -- trailing\nFROM   t')).toBe('select a, b from t');
  });

  it('is independent of the original layout', () => {
    expect(norm('select a,b from t where x=1 and f( a )>2')).toBe(
      norm('SELECT a , b\nFROM t\nWHERE x = 1\n  AND f(a) > 2'),
    );
  });

  it('lower-cases unquoted words and keeps quoted identifiers', () => {
    expect(norm('SELECT "MixedCase", MixedCase FROM "Schema"."Table"')).toBe(
      'select "MixedCase", mixedcase from "Schema"."Table"',
    );
  });

  it('renders casts, member access, subscripts and named arguments compactly', () => {
    expect(norm('select t.* , x :: text [ ] , a [ 1 : 2 ] , f ( a => 1 ) , count ( * ) from s . t')).toBe(
      'select t.*, x::text[], a[?:?], f(a => ?), count(*) from s.t',
    );
  });

  it('keeps operators apart so that they never merge into comments', () => {
    expect(norm('select a - - b, a / * b, a-/**/-b')).toBe('select a - - b, a / * b, a - - b');
  });

  it('renders control characters outside literals as U+FFFD', () => {
    expect(norm('select \u0001 1')).toBe('select \ufffd ?');
  });
});

describe('normalizeSql: statements', () => {
  it('splits on semicolons outside literals', () => {
    const r = normalizeSql("select 'a;b'; select 2");
    expect(r.statements).toEqual(['select ?', 'select ?']);
    expect(r.normalized).toBe('select ?; select ?');
    expect(r.commands).toEqual(['SELECT', 'SELECT']);
  });

  it('does not split inside dollar quotes, quoted identifiers or comments', () => {
    const r = normalizeSql('select $q$ a; \'b\' $$ ; $q$, "x;y" /* ; */ -- ;\n; select 2');
    expect(r.statements).toEqual(['select ?, "x;y"', 'select ?']);
  });

  it('ignores empty statements', () => {
    expect(normalizeSql(';; select 1 ;;; ').statements).toEqual(['select ?']);
    expect(normalizeSql('')).toEqual({ normalized: '', statements: [], commands: [] });
    expect(normalizeSql(' ; -- nothing\n /* at all */ ;')).toEqual({ normalized: '', statements: [], commands: [] });
  });

  it('upper-cases the leading keyword, skipping opening parentheses', () => {
    expect(normalizeSql('(select 1) union (select 2); with x as (select 1) table x; "weird"').commands).toEqual([
      'SELECT',
      'WITH',
      '',
    ]);
  });

  it('keeps BEGIN ATOMIC bodies of CREATE FUNCTION and PROCEDURE in one statement', () => {
    const r = normalizeSql(
      'CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; ' +
        'SELECT CASE WHEN true THEN 1 END; END; drop table x',
    );
    expect(r.commands).toEqual(['CREATE', 'DROP']);
    expect(r.statements[0]).toBe(
      'create or replace function f() returns int language sql begin atomic select ?; select case when true then ? end; end',
    );
    expect(normalizeSql('create procedure p() begin atomic insert into t values (1); end; select 1').commands).toEqual([
      'CREATE',
      'SELECT',
    ]);
  });

  it('does not mistake a function named begin for a BEGIN ATOMIC body', () => {
    expect(
      normalizeSql("create function begin() returns int as 'select 1' language sql; delete from t").commands,
    ).toEqual(['CREATE', 'DELETE']);
    expect(normalizeSql('create function f() returns int return case when true then 1 end; delete from t').commands).toEqual(
      ['CREATE', 'DELETE'],
    );
  });

  it('splits a plain BEGIN and END as transaction statements', () => {
    expect(normalizeSql('begin; select 1; end').commands).toEqual(['BEGIN', 'SELECT', 'END']);
  });

  it('keeps rule action lists in parentheses in one statement', () => {
    const r = normalizeSql(
      'create rule r as on insert to t do also (insert into a values (1); insert into b values (2)); select 1',
    );
    expect(r.commands).toEqual(['CREATE', 'SELECT']);
  });
});

describe('normalizeSql: unterminated input', () => {
  it('replaces an unterminated literal with a placeholder and drops its content', () => {
    expect(norm("select 'abc secret")).toBe('select ?');
    expect(norm("select E'abc\\' secret")).toBe('select ?');
    expect(norm('select $x$ secret')).toBe('select ?');
    expect(norm('select "secret')).toBe('select ?');
    expect(norm('select 1 /* secret')).toBe('select ?');
    expect(norm("select B'0101")).toBe('select ?');
  });
});

// Deterministic PRNG so that failures are reproducible.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  'a', 'Z', '7', ' ', '\t', '\n', '\r', "'", "''", '"', '\\', '\\\\', '$', '$$', '$t$', ';', '--', '/*', '*/',
  '-', '*', '/', 'E', 'U&', '&', '(', ')', ',', 'é', '€', '😀', 'select', 'DROP TABLE x', '0x1F', '1e5', '?',
  '\u0000', '\u2028', '$1',
];

describe('normalizeSql: literal content never reaches the output', () => {
  const rnd = mulberry32(0x5eed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
  const letters = 'abcdefghijklmnopqrstuvwxyz';

  function marker(): string {
    let m = 'zqx';
    for (let k = 0; k < 8; k++) m += letters[Math.floor(rnd() * letters.length)];
    return m;
  }

  function junk(): string {
    let s = '';
    const count = Math.floor(rnd() * 8);
    for (let k = 0; k < count; k++) s += pick(PIECES);
    return s;
  }

  /** Random content that contains a unique marker, in upper or lower case. */
  function content(): { text: string; marker: string } {
    const m = marker();
    const shown = rnd() < 0.5 ? m : m.toUpperCase();
    return { text: junk() + shown + junk(), marker: m };
  }

  type Form = (c: string) => string;
  const forms: Record<string, Form> = {
    standard: (c) => `'${c.replaceAll("'", "''")}'`,
    escape: (c) => `E'${c.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`,
    escapeDoubled: (c) => `e'${c.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`,
    national: (c) => `N'${c.replaceAll("'", "''")}'`,
    unicode: (c) => `U&'${c.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`,
    dollar: (c) => {
      for (let k = 0; ; k++) {
        const tag = k === 0 ? '$$' : `$q${k}$`;
        if ((c + tag).indexOf(tag) === c.length) return `${tag}${c}${tag}`;
      }
    },
    continued: (c) => {
      const cut = Math.floor(c.length / 2);
      return `'${c.slice(0, cut).replaceAll("'", "''")}'\n  -- x\n'${c.slice(cut).replaceAll("'", "''")}'`;
    },
  };

  it('for every literal form, over many random contents', () => {
    for (let round = 0; round < 3000; round++) {
      const [formName, form] = pick(Object.entries(forms));
      const a = content();
      const b = content();
      const text =
        `select ${form(a.text)} as c, x from t where y = ${form(b.text)} and z in (${form(a.text)}, 1);` +
        ` insert into t values (${form(b.text)})`;
      const r = normalizeSql(text);
      const out = r.normalized.toLowerCase();
      if (out.includes(a.marker) || out.includes(b.marker)) {
        throw new Error(`literal content leaked (form ${formName}): ${JSON.stringify(text)} -> ${JSON.stringify(r.normalized)}`);
      }
      expect(r.statements).toEqual(['select ? as c, x from t where y = ? and z in (...)', 'insert into t values (?)']);
    }
  });

  it('with standard_conforming_strings off, for backslash-escaped plain strings', () => {
    for (let round = 0; round < 1000; round++) {
      const a = content();
      const lit = `'${a.text.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
      const r = normalizeSql(`select ${lit}; select 1`, { standardConformingStrings: false });
      expect(r.normalized.toLowerCase()).not.toContain(a.marker);
      expect(r.statements).toEqual(['select ?', 'select ?']);
    }
  });

  it('for comments', () => {
    for (let round = 0; round < 1000; round++) {
      const a = content();
      const block = a.text.replaceAll('*/', '* /').replaceAll('/*', '/ *');
      const line = a.text.replaceAll('\n', ' ').replaceAll('\r', ' ');
      const r = normalizeSql(`select /* ${block} */ 1 -- ${line}\n, 2`);
      expect(r.normalized.toLowerCase()).not.toContain(a.marker);
      expect(r.normalized).toBe('select ?, ?');
    }
  });

  it('for unterminated literals, quoted identifiers and comments at the end of the text', () => {
    const unterminated: Form[] = [
      (c) => `'${c.replaceAll("'", '')}`,
      (c) => `E'${c.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}\\`,
      (c) => `$z$${c.replaceAll('$', '')}`,
      (c) => `"${c.replaceAll('"', '')}`,
      (c) => `U&'${c.replaceAll("'", '')}`,
      (c) => `B'${c.replaceAll("'", '')}`,
      (c) => `/* ${c.replaceAll('*/', '')}`,
      (c) => `'ok'\n'${c.replaceAll("'", '')}`,
    ];
    for (let round = 0; round < 2000; round++) {
      const a = content();
      const text = `select 1, ${pick(unterminated)(a.text)}`;
      const r = normalizeSql(text);
      if (r.normalized.toLowerCase().includes(a.marker)) {
        throw new Error(`unterminated content leaked: ${JSON.stringify(text)} -> ${JSON.stringify(r.normalized)}`);
      }
    }
  });

  it('never throws and always yields one command per statement on random input', () => {
    for (let round = 0; round < 3000; round++) {
      let text = '';
      const count = Math.floor(rnd() * 30);
      for (let k = 0; k < count; k++) text += pick(PIECES) + (rnd() < 0.3 ? ' ' : '');
      const r = normalizeSql(text);
      expect(r.commands).toHaveLength(r.statements.length);
      for (const s of r.statements) expect(s.length).toBeGreaterThan(0);
    }
  });
});

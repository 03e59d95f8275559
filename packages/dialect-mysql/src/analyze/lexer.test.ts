import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lex, stringValue, TokenFlag, TokenKind, type LexOptions, type Token } from './lexer.js';

const K = TokenKind;

/** `[kind, source text]` of each token. */
function pieces(text: string, options?: LexOptions): Array<[number, string]> {
  return lex(text, options).map((t) => [t.kind, text.slice(t.start, t.end)]);
}

function only(text: string, options?: LexOptions): Token {
  const tokens = lex(text, options);
  expect(tokens).toHaveLength(1);
  return tokens[0]!;
}

describe('strings', () => {
  it('reads single- and double-quoted strings with doubled quotes and backslash escapes', () => {
    expect(pieces(`'it''s' "say \\"hi\\"" 'a\\'b'`)).toEqual([
      [K.String, `'it''s' "say \\"hi\\"" 'a\\'b'`],
    ]);
    expect(pieces(`'a' x "b"`)).toEqual([
      [K.String, `'a'`],
      [K.Word, 'x'],
      [K.String, `"b"`],
    ]);
  });

  it('ends a string where the server does: a backslash escapes the quote', () => {
    // Without the escape rule the string would end at the second quote and `drop` would be code.
    expect(pieces(`select 'a\\' ; drop table t; -- '`)).toEqual([
      [K.Word, 'select'],
      [K.String, `'a\\' ; drop table t; -- '`],
    ]);
  });

  it('with NO_BACKSLASH_ESCAPES, a backslash is an ordinary character', () => {
    expect(pieces(`select 'a\\' ; drop table t; -- '`, { noBackslashEscapes: true })).toEqual([
      [K.Word, 'select'],
      [K.String, `'a\\'`],
      [K.Punct, ';'],
      [K.Word, 'drop'],
      [K.Word, 'table'],
      [K.Word, 't'],
      [K.Punct, ';'],
    ]);
  });

  it('with ANSI_QUOTES, "..." is an identifier', () => {
    const t = only('"Order ""items"""', { ansiQuotes: true });
    expect(t.kind).toBe(K.QuotedIdent);
    expect(t.value).toBe('Order "items"');
    expect(only('"x"').kind).toBe(K.String);
  });

  it('makes one literal of adjacent strings, introducers and N prefixes', () => {
    expect(pieces(`'a' 'b'   "c"`)).toEqual([[K.String, `'a' 'b'   "c"`]]);
    expect(pieces(`_utf8mb4'x' 'y'`)).toEqual([[K.String, `_utf8mb4'x' 'y'`]]);
    expect(pieces(`_latin1 'y'`)).toEqual([[K.String, `_latin1 'y'`]]);
    expect(pieces(`N'z' 'w'`)).toEqual([[K.String, `N'z' 'w'`]]);
    expect(pieces(`_binary 0x41`)).toEqual([[K.Binary, '_binary 0x41']]);
    // Not a character set: an identifier.
    expect(pieces(`_nope 'x'`)).toEqual([
      [K.Word, '_nope'],
      [K.String, `'x'`],
    ]);
  });

  it('flags an unterminated string, which runs to the end', () => {
    const t = only(`'abc; drop table t`);
    expect(t.kind).toBe(K.String);
    expect(t.flags & TokenFlag.Unterminated).toBeTruthy();
  });

  it('decodes string values as MySQL does', () => {
    const text = `_utf8mb4 'it''s' "a\\tb\\nc\\\\d\\%e\\_f\\z" 'g'`;
    const t = only(text);
    expect(stringValue(text, t)).toBe("it'sa\tb\nc\\d\\%e\\_fzg");
    const raw = `'a\\nb'`;
    expect(stringValue(raw, only(raw, { noBackslashEscapes: true }), { noBackslashEscapes: true })).toBe('a\\nb');
    expect(stringValue(`X'41'`, only(`X'41'`))).toBeUndefined();
    // A comment between the parts: not read.
    expect(stringValue(`'a' /* c */ 'b'`, only(`'a' /* c */ 'b'`))).toBeUndefined();
  });
});

describe('identifiers, numbers and variables', () => {
  it('reads backtick identifiers with doubled backticks, keeping case', () => {
    const t = only('`My ``Table```');
    expect(t.kind).toBe(K.QuotedIdent);
    expect(t.value).toBe('My `Table`');
    expect(only('FooBar').value).toBe('foobar');
  });

  it('reads hex and bit literals, and only lower-case 0x / 0b as prefixes', () => {
    expect(pieces(`0x1F X'1f' x'00' 0b01 B'10' b'1'`).map(([k]) => k)).toEqual([K.Binary, K.Binary, K.Binary, K.Binary, K.Binary, K.Binary]);
    expect(only('0X1F').kind).toBe(K.Word);
    expect(only('0xZZ').kind).toBe(K.Word);
  });

  it('reads numbers, and digits followed by letters as identifiers', () => {
    expect(pieces('1 1.5 .5 1e10 1E-3 1.5e+7 1. 1abc 2e t.1a')).toEqual([
      [K.Number, '1'],
      [K.Number, '1.5'],
      [K.Number, '.5'],
      [K.Number, '1e10'],
      [K.Number, '1E-3'],
      [K.Number, '1.5e+7'],
      [K.Number, '1.'],
      [K.Word, '1abc'],
      [K.Word, '2e'],
      [K.Word, 't'],
      [K.Punct, '.'],
      [K.Word, '1a'],
    ]);
  });

  it('reads placeholders, user and system variables', () => {
    expect(lex(`? @x @A.b @'q' @"w" @\`z\` @@version @@GLOBAL.max_connections @@session.sql_mode`).map((t) => [t.kind, t.value])).toEqual([
      [K.Param, '?'],
      [K.Variable, '@x'],
      [K.Variable, '@a.b'],
      [K.Variable, '@?'],
      [K.Variable, '@?'],
      [K.Variable, '@?'],
      [K.Variable, '@@version'],
      [K.Variable, '@@global.max_connections'],
      [K.Variable, '@@session.sql_mode'],
    ]);
    expect(pieces(`'u'@'%'`)).toEqual([
      [K.String, `'u'`],
      [K.Variable, `@'%'`],
    ]);
  });

  it('reads MySQL operators', () => {
    expect(lex('a<=>b c->>d e->f g:=h i||j k&&l m!=n o<>p !q ~r').filter((t) => t.kind === K.Operator).map((t) => t.value)).toEqual([
      '<=>', '->>', '->', ':=', '||', '&&', '!=', '<>', '!', '~',
    ]);
  });
});

describe('comments', () => {
  it('drops #, -- and /* */ comments', () => {
    expect(pieces('select 1 # drop table t\n, 2 -- drop table u\n, 3 /* drop table v */')).toEqual([
      [K.Word, 'select'],
      [K.Number, '1'],
      [K.Punct, ','],
      [K.Number, '2'],
      [K.Punct, ','],
      [K.Number, '3'],
    ]);
  });

  it('needs a space or control character after -- for a comment', () => {
    expect(pieces('select 1--1')).toEqual([
      [K.Word, 'select'],
      [K.Number, '1'],
      [K.Operator, '-'],
      [K.Operator, '-'],
      [K.Number, '1'],
    ]);
    expect(pieces('select 1 --\tx').map(([, s]) => s)).toEqual(['select', '1']);
    expect(pieces('select 1 --').map(([, s]) => s)).toEqual(['select', '1']);
  });

  it('does not nest /* */ comments', () => {
    expect(pieces('/* a /* b */ select 1 */').map(([, s]) => s)).toEqual(['select', '1', '*', '/']);
  });

  it('flags an unterminated comment', () => {
    const tokens = lex('select 1 /* drop table t');
    expect(tokens.at(-1)!.flags & TokenFlag.Unterminated).toBeTruthy();
  });
});

describe('executable comments', () => {
  it('reads the content of /*! ... */ and /*!NNNNN ... */ as code', () => {
    expect(pieces('/*!40101 DROP TABLE t */').map(([, s]) => s)).toEqual(['DROP', 'TABLE', 't']);
    expect(pieces('/*!DROP TABLE t*/').map(([, s]) => s)).toEqual(['DROP', 'TABLE', 't']);
    expect(pieces('select 1 /*!50000 , secret */ from t').map(([, s]) => s)).toEqual(['select', '1', ',', 'secret', 'from', 't']);
    for (const t of lex('/*!80000 drop table t */')) expect(t.flags & TokenFlag.Executable).toBeTruthy();
  });

  it('reads /*M! ... */ as code in MariaDB and as a comment in MySQL', () => {
    expect(pieces('/*M! drop table t */ select 1', { dialect: 'mariadb' }).map(([, s]) => s)).toEqual(['drop', 'table', 't', 'select', '1']);
    expect(pieces('/*M!100100 drop table t */ select 1', { dialect: 'mariadb' }).map(([, s]) => s)).toEqual(['drop', 'table', 't', 'select', '1']);
    expect(pieces('/*M! drop table t */ select 1').map(([, s]) => s)).toEqual(['select', '1']);
  });

  it('keeps plain comments and strings inside executable comments', () => {
    expect(pieces(`/*! select /* x */ 'a */ b' */`).map(([, s]) => s)).toEqual(['select', `'a */ b'`]);
  });

  it('flags text whose reading depends on the server version', () => {
    // A server older than 9.99.99 skips the comment up to the first `*/` and runs `drop table t`.
    const tokens = lex(`select 1 /*!99999 '*/; drop table t; -- ' */`);
    expect(tokens.some((t) => (t.flags & TokenFlag.Suspect) !== 0)).toBe(true);
    // The same text read as an old server reads it.
    expect(pieces(`select 1 /*!99999 '*/; drop table t; -- ' */`, { skipVersioned: true }).map(([, s]) => s)).toEqual([
      'select', '1', ';', 'drop', 'table', 't', ';',
    ]);
    // No doubt when both readings end in the same place.
    expect(lex('select 1 /*!99999 , 2 */').some((t) => (t.flags & TokenFlag.Suspect) !== 0)).toBe(false);
  });

  it('flags an executable comment inside another, and an unterminated one', () => {
    expect(lex('/*! select 1 /*! , 2 */ */').some((t) => (t.flags & TokenFlag.Suspect) !== 0)).toBe(true);
    const open = lex('/*! drop table t');
    expect(open.at(-1)!.flags & TokenFlag.Unterminated).toBeTruthy();
  });
});

describe('lexer properties', () => {
  const sqlish = fc.stringMatching(/^[a-zA-Z0-9_ '"`#;,.()*/!@?=<>+\-\n\\]{0,60}$/);

  it('never throws, and tokens are in order without overlap', () => {
    fc.assert(
      fc.property(sqlish, fc.boolean(), fc.boolean(), (text, ansiQuotes, noBackslashEscapes) => {
        const tokens = lex(text, { ansiQuotes, noBackslashEscapes, dialect: 'mariadb' });
        let at = 0;
        for (const t of tokens) {
          expect(t.start).toBeGreaterThanOrEqual(at);
          expect(t.end).toBeGreaterThan(t.start);
          at = t.end;
        }
        expect(at).toBeLessThanOrEqual(text.length);
      }),
      { numRuns: 2000 },
    );
  });

  it('a string of any content is one literal', () => {
    fc.assert(
      fc.property(fc.string(), (content) => {
        const quoted = `'${content.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
        const t = only(`${quoted}`);
        expect(t.kind).toBe(K.String);
        expect(stringValue(quoted, t)).toBe(content);
      }),
      { numRuns: 1000 },
    );
  });
});

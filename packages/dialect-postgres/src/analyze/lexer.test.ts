import { describe, expect, it } from 'vitest';
import { lex, TokenKind, type Token, type LexOptions } from './lexer.js';

const K = TokenKind;

/** [kind, source text] of every token. */
function shape(text: string, options?: LexOptions): Array<[number, string]> {
  return lex(text, options).map((t: Token) => [t.kind, text.slice(t.start, t.end)]);
}

describe('lex: words and identifiers', () => {
  it('lower-cases unquoted words, keeps quoted identifiers as written', () => {
    const tokens = lex('SELECT Foo, "Bar""Baz" FROM T1');
    expect(tokens.map((t) => [t.kind, t.value])).toEqual([
      [K.Word, 'select'],
      [K.Word, 'foo'],
      [K.Punct, ','],
      [K.QuotedIdent, '"Bar""Baz"'],
      [K.Word, 'from'],
      [K.Word, 't1'],
    ]);
  });

  it('lower-cases ASCII letters only', () => {
    expect(lex('ÄbC')[0]?.value).toBe('Äbc');
  });

  it('keeps digits and $ inside identifiers', () => {
    expect(shape('t1 a$b x$$y$$')).toEqual([
      [K.Word, 't1'],
      [K.Word, 'a$b'],
      [K.Word, 'x$$y$$'],
    ]);
  });

  it('lexes U&"..." as a quoted identifier', () => {
    expect(shape('U&"d\\0061t" UESCAPE')).toEqual([
      [K.QuotedIdent, 'U&"d\\0061t"'],
      [K.Word, 'UESCAPE'],
    ]);
  });

  it('flags an unterminated quoted identifier', () => {
    const [t] = lex('"abc');
    expect(t?.kind).toBe(K.QuotedIdent);
    expect(t?.unterminated).toBe(true);
    expect(t?.end).toBe(4);
  });
});

describe('lex: strings', () => {
  it('doubles quotes in standard strings and ignores backslashes', () => {
    expect(shape("'it''s' 'a\\' x")).toEqual([
      [K.String, "'it''s'"],
      [K.String, "'a\\'"],
      [K.Word, 'x'],
    ]);
  });

  it('treats backslash as an escape in E strings (either case)', () => {
    expect(shape("E'a\\'b' e'\\\\' x")).toEqual([
      [K.String, "E'a\\'b'"],
      [K.String, "e'\\\\'"],
      [K.Word, 'x'],
    ]);
    expect(shape("E'a''b'")).toEqual([[K.String, "E'a''b'"]]);
  });

  it('treats backslash as an escape in plain strings when standard_conforming_strings is off', () => {
    expect(shape("'a\\'; drop' x", { standardConformingStrings: false })).toEqual([
      [K.String, "'a\\'; drop'"],
      [K.Word, 'x'],
    ]);
    expect(shape("'a\\'; drop' x")).toEqual([
      [K.String, "'a\\'"],
      [K.Punct, ';'],
      [K.Word, 'drop'],
      [K.String, "' x"],
    ]);
  });

  it('recognizes prefixes only at a token start', () => {
    expect(shape("some'x'")).toEqual([
      [K.Word, 'some'],
      [K.String, "'x'"],
    ]);
    expect(shape("xu&'x'")).toEqual([
      [K.Word, 'xu'],
      [K.Operator, '&'],
      [K.String, "'x'"],
    ]);
  });

  it("lexes N'', U&'', B'' and X'' strings", () => {
    expect(shape("N'x' n'y' U&'d\\0061t' u&'q''q' B'0101' x'1F'")).toEqual([
      [K.String, "N'x'"],
      [K.String, "n'y'"],
      [K.String, "U&'d\\0061t'"],
      [K.String, "u&'q''q'"],
      [K.BitString, "B'0101'"],
      [K.BitString, "x'1F'"],
    ]);
  });

  it('ends bit strings at the first quote (no doubling), as the server does', () => {
    expect(shape("B'01''10'")).toEqual([
      [K.BitString, "B'01'"],
      [K.String, "'10'"],
    ]);
  });

  it('continues a string across whitespace that contains a newline, in the same mode', () => {
    expect(shape("'a'\n'b' x")).toEqual([
      [K.String, "'a'\n'b'"],
      [K.Word, 'x'],
    ]);
    expect(shape("'a' -- note\n  -- more\n 'b'")).toEqual([[K.String, "'a' -- note\n  -- more\n 'b'"]]);
    // The continuation of an E string is lexed as an E string: \' does not end it.
    expect(shape("E'a'\n'\\'; x' y")).toEqual([
      [K.String, "E'a'\n'\\'; x'"],
      [K.Word, 'y'],
    ]);
    expect(shape("B'1'\n'0'")).toEqual([[K.BitString, "B'1'\n'0'"]]);
  });

  it('does not continue without a newline or across a block comment', () => {
    expect(shape("'a' 'b'").map((t) => t[0])).toEqual([K.String, K.String]);
    expect(shape("'a' /* c */\n'b'").map((t) => t[0])).toEqual([K.String, K.String]);
  });

  it('runs an unterminated string to the end and flags it', () => {
    for (const text of ["'abc", "E'ab\\'", "B'01", "U&'x", "'a'\n'b"]) {
      const tokens = lex(text);
      expect(tokens).toHaveLength(1);
      expect(tokens[0]?.unterminated).toBe(true);
      expect(tokens[0]?.end).toBe(text.length);
    }
  });

  it('never keeps string content in token values', () => {
    for (const t of lex("'secret' E'secret' $$secret$$ B'1' X'ab' U&'secret'")) expect(t.value).toBe('');
  });
});

describe('lex: dollar quotes and parameters', () => {
  it('lexes $$...$$ and $tag$...$tag$', () => {
    expect(shape("$$a;'b$$ $q$ x $$ ; $q$ y")).toEqual([
      [K.DollarString, "$$a;'b$$"],
      [K.DollarString, '$q$ x $$ ; $q$'],
      [K.Word, 'y'],
    ]);
  });

  it('matches the full tag only', () => {
    expect(shape('$a$ $ab$ $b$a$ z')).toEqual([
      [K.DollarString, '$a$ $ab$ $b$a$'],
      [K.Word, 'z'],
    ]);
    expect(shape('$_x1$ $_x$ $_x1$')).toEqual([[K.DollarString, '$_x1$ $_x$ $_x1$']]);
  });

  it('reads $1 as a parameter, not a dollar quote', () => {
    expect(shape('$1 + $23')).toEqual([
      [K.Param, '$1'],
      [K.Operator, '+'],
      [K.Param, '$23'],
    ]);
    expect(shape('$1$')).toEqual([
      [K.Param, '$1'],
      [K.Other, '$'],
    ]);
  });

  it('does not start a tag with a digit and treats a lone $ as a character', () => {
    expect(shape('$ a')).toEqual([
      [K.Other, '$'],
      [K.Word, 'a'],
    ]);
    expect(shape('$a b')).toEqual([
      [K.Other, '$'],
      [K.Word, 'a'],
      [K.Word, 'b'],
    ]);
  });

  it('runs an unterminated dollar string to the end', () => {
    const [t] = lex('$t$ never closed $t');
    expect(t?.kind).toBe(K.DollarString);
    expect(t?.unterminated).toBe(true);
  });

  it('starts a dollar quote right after a number', () => {
    expect(shape('1$$x$$')).toEqual([
      [K.Number, '1'],
      [K.DollarString, '$$x$$'],
    ]);
  });
});

describe('lex: comments and whitespace', () => {
  it('skips line comments and nested block comments', () => {
    expect(shape('a -- x ; y\nb /* c /* d */ e; */ f')).toEqual([
      [K.Word, 'a'],
      [K.Word, 'b'],
      [K.Word, 'f'],
    ]);
  });

  it('handles star runs and slashes in block comments', () => {
    expect(shape('a /**/ b /* ** / **/ c /*/ x */ d')).toEqual([
      [K.Word, 'a'],
      [K.Word, 'b'],
      [K.Word, 'c'],
      [K.Word, 'd'],
    ]);
  });

  it('swallows an unterminated block comment', () => {
    expect(shape('a /* b /* c */ d')).toEqual([[K.Word, 'a']]);
  });

  it('ends a line comment at CR too', () => {
    expect(shape('a --x\rb')).toEqual([
      [K.Word, 'a'],
      [K.Word, 'b'],
    ]);
  });

  it('treats \\t \\n \\r \\f \\v as whitespace', () => {
    expect(shape('a\t\n\r\f\vb')).toHaveLength(2);
  });
});

describe('lex: numbers', () => {
  it('lexes integers, decimals and exponents', () => {
    expect(shape('1 12.5 .5 5. 1e10 1.5E-3 2e+2')).toEqual(
      ['1', '12.5', '.5', '5.', '1e10', '1.5E-3', '2e+2'].map((s) => [K.Number, s]),
    );
  });

  it('lexes 0x / 0o / 0b integers and underscores', () => {
    expect(shape('0x1F 0o17 0b1010 1_000_000 0x_ff 1_0.2_5')).toEqual(
      ['0x1F', '0o17', '0b1010', '1_000_000', '0x_ff', '1_0.2_5'].map((s) => [K.Number, s]),
    );
  });

  it('stops at junk the server would reject, without losing characters', () => {
    expect(shape('1e x')).toEqual([
      [K.Number, '1'],
      [K.Word, 'e'],
      [K.Word, 'x'],
    ]);
    expect(shape('1__0')).toEqual([
      [K.Number, '1'],
      [K.Word, '__0'],
    ]);
    expect(shape('0x')).toEqual([
      [K.Number, '0'],
      [K.Word, 'x'],
    ]);
  });

  it('reads 1..5 as integer, dot-dot, integer', () => {
    expect(shape('1..5')).toEqual([
      [K.Number, '1'],
      [K.Punct, '..'],
      [K.Number, '5'],
    ]);
  });

  it('does not treat digits inside identifiers as numbers', () => {
    expect(shape('t1.c2')).toEqual([
      [K.Word, 't1'],
      [K.Punct, '.'],
      [K.Word, 'c2'],
    ]);
  });
});

describe('lex: operators and punctuation', () => {
  it('splits operators as PostgreSQL does', () => {
    expect(shape('a<>b a->>b a @> b x::int y := 1 a[1:2]')).toEqual([
      [K.Word, 'a'],
      [K.Operator, '<>'],
      [K.Word, 'b'],
      [K.Word, 'a'],
      [K.Operator, '->>'],
      [K.Word, 'b'],
      [K.Word, 'a'],
      [K.Operator, '@>'],
      [K.Word, 'b'],
      [K.Word, 'x'],
      [K.Punct, '::'],
      [K.Word, 'int'],
      [K.Word, 'y'],
      [K.Punct, ':='],
      [K.Number, '1'],
      [K.Word, 'a'],
      [K.Punct, '['],
      [K.Number, '1'],
      [K.Punct, ':'],
      [K.Number, '2'],
      [K.Punct, ']'],
    ]);
  });

  it('trims a trailing + or - unless the operator has ~!@#^&|`?%', () => {
    expect(shape('1=-1')).toEqual([
      [K.Number, '1'],
      [K.Operator, '='],
      [K.Operator, '-'],
      [K.Number, '1'],
    ]);
    expect(shape('3 @- 1').map((t) => t[1])).toEqual(['3', '@-', '1']);
    expect(shape('a*--b').map((t) => t[1])).toEqual(['a', '*']);
  });

  it('stops an operator at a comment start', () => {
    expect(shape('a+/*c*/b').map((t) => t[1])).toEqual(['a', '+', 'b']);
    expect(shape('a<--c\nb').map((t) => t[1])).toEqual(['a', '<', 'b']);
  });

  it('returns other characters one at a time', () => {
    expect(shape('\\d {x}').map((t) => t[0])).toEqual([K.Other, K.Word, K.Other, K.Word, K.Other]);
  });
});

import { describe, expect, it } from 'vitest';
import { parseExpression, type Expr, type ExprOptions } from './expr.js';
import { lex } from './lexer.js';

/** The expression's structure in prefix form: `(or a (and b c))`. */
function tree(text: string, options: ExprOptions = {}): string {
  const tokens = lex(text);
  const parsed = parseExpression(tokens, 0, tokens.length, options);
  if (parsed === undefined) throw new Error(`not an expression: ${text}`);
  expect(parsed.next).toBe(tokens.length);
  const show = (e: Expr): string => {
    switch (e.k) {
      case 'lit':
        return text.slice(tokens[e.tok]!.start, tokens[e.tok]!.end);
      case 'col':
        return e.parts.join('.');
      case 'bool':
        return String(e.v);
      case 'null':
        return 'null';
      case 'not':
        return `(not ${show(e.e)})`;
      case 'unary':
        return `(${e.op} ${show(e.e)})`;
      case 'bin':
        return `(${e.op} ${show(e.l)} ${show(e.r)})`;
      case 'logic':
        return `(${e.op} ${e.args.map(show).join(' ')})`;
      case 'is':
        return `(is${e.not ? ' not' : ''} ${e.what} ${show(e.e)})`;
      case 'in':
        return `(${e.not ? 'not in' : 'in'} ${show(e.e)} ${e.list.map(show).join(' ')})`;
      case 'between':
        return `(between ${show(e.e)} ${show(e.lo)} ${show(e.hi)})`;
      case 'like':
        return `(like ${show(e.e)} ${show(e.pattern)})`;
      case 'func':
        return `${e.name}(${e.args.map(show).join(' ')})`;
      case 'sub':
        return e.exists ? 'exists(...)' : '(subquery)';
      default:
        return e.k;
    }
  };
  return show(parsed.expr);
}

describe('MySQL expression precedence', () => {
  it('binds AND tighter than OR and XOR between them', () => {
    expect(tree('a = 1 or b = 2 and c = 3')).toBe('(or (= a 1) (and (= b 2) (= c 3)))');
    expect(tree('a or b xor c and d')).toBe('(or a (xor b (and c d)))');
    expect(tree('a || b && c')).toBe('(or a (and b c))');
  });

  it('reads || as OR, or as concatenation with PIPES_AS_CONCAT', () => {
    expect(tree('a = 1 || b = 2')).toBe('(or (= a 1) (= b 2))');
    expect(tree('a = 1 || b = 2', { pipesAsConcat: true })).toBe('(= (= a (|| 1 b)) 2)');
  });

  it('binds NOT below comparisons, and like ! with HIGH_NOT_PRECEDENCE', () => {
    expect(tree('not a = b')).toBe('(not (= a b))');
    expect(tree('not a = b', { highNotPrecedence: true })).toBe('(= (not a) b)');
    expect(tree('!a = b')).toBe('(= (not a) b)');
  });

  it('reads BETWEEN, IN, LIKE and IS as the server does', () => {
    expect(tree('1 = 3 between 1 and 5')).toBe('(= 1 (between 3 1 5))');
    expect(tree('a between 1 and 2 and b')).toBe('(and (between a 1 2) b)');
    expect(tree('a not in (1, 2) or a is not null')).toBe('(or (not in a 1 2) (is not null a))');
    expect(tree("a like 'x%' escape '!'")).toBe("(like a 'x%')");
    expect(tree('a = b is true')).toBe('(is true (= a b))');
  });

  it('binds arithmetic by its precedence', () => {
    expect(tree('1 + 2 * 3 - 4')).toBe('(- (+ 1 (* 2 3)) 4)');
    expect(tree('-a ^ 2 | b & c << 1')).toBe('(| (^ (- a) 2) (& b (<< c 1)))');
    expect(tree('a div 2 mod 3')).toBe('(mod (div a 2) 3)');
  });

  it('reads calls, subqueries, CASE, INTERVAL and qualified columns', () => {
    expect(tree('upper(t.name) = lower(`db`.`t`.`x`)')).toBe('(= upper(t.name) lower(db.t.x))');
    expect(tree('exists (select 1) and a in (select b from u)')).toBe('(and exists(...) (subquery))');
    expect(tree("cast(a as char) = trim(leading 'x' from b)")).toBe("(= cast(a) trim('x' b))");
    expect(tree('extract(day from a) = 1')).toBe('(= extract(a) 1)');
    expect(tree('case when a then b else c end')).toBe('opaque');
    expect(tree('d < now() - interval 1 day')).toBe('(< d (- now() opaque))');
  });

  it('stops where the expression ends', () => {
    const tokens = lex('a = 1 order by b');
    expect(parseExpression(tokens, 0, tokens.length)?.next).toBe(3);
    const join = lex('t.id = u.id join v on x');
    expect(parseExpression(join, 0, join.length)?.next).toBe(7);
  });

  it('gives up on what is not an expression', () => {
    const tokens = lex('select from');
    expect(parseExpression(tokens, 0, tokens.length)).toBeUndefined();
  });
});

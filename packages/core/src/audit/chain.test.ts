import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson, encodeRecordLine, hashedTextOf, hashRecord } from './chain.js';

describe('canonicalJson', () => {
  it('sorts keys recursively and has no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x y' } })).toBe(
      '{"a":{"c":"x y","d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('drops undefined members, keeps null, and maps non-finite numbers to null', () => {
    expect(canonicalJson({ a: undefined, b: null, c: [undefined, Infinity], d: -0 })).toBe(
      '{"b":null,"c":[null,null],"d":0}',
    );
  });

  it('encodes every UTF-16 code unit as JSON.stringify does', () => {
    for (let c = 0; c <= 0xffff; c++) {
      const s = `a${String.fromCharCode(c)}b`;
      if (canonicalJson(s) !== JSON.stringify(s)) throw new Error(`code unit ${c.toString(16)} differs`);
    }
    expect(canonicalJson({ 'k"\\': '\ud83d\ude00' })).toBe(JSON.stringify({ 'k"\\': '\ud83d\ude00' }));
  });

  it('round-trips through JSON.parse', () => {
    const value = { text: 'line\nbreak "q" \u2028 é \ud83d\ude00', n: 1.5e-7, list: ['a'] };
    const canonical = canonicalJson(value);
    expect(canonicalJson(JSON.parse(canonical))).toBe(canonical);
  });

  it('hashes the JSON text as written with SHA-256, so member order matters', () => {
    const rec = { type: 'x', seq: 1, prev: '0'.repeat(64) };
    const expected = createHash('sha256').update('{"type":"x","seq":1,"prev":"' + '0'.repeat(64) + '"}').digest('hex');
    expect(hashRecord(rec)).toBe(expected);
    expect(hashRecord({ seq: 1, type: 'x', prev: '0'.repeat(64) })).not.toBe(expected);
  });

  it('finds the hashed text of a stored line', () => {
    const h = 'a'.repeat(64);
    expect(hashedTextOf(`{"a":1,"hash":"${h}"}`)).toEqual({ text: '{"a":1}', hash: h });
    expect(hashedTextOf('{"a":1}')).toBeNull();
    expect(hashedTextOf(`{"a":1,"hash":"${h}"} `)).toBeNull();
  });

  it('appends the hash as the last member of the line', () => {
    expect(encodeRecordLine('{"a":1}', 'h')).toBe('{"a":1,"hash":"h"}');
  });
});

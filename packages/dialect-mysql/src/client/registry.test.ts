import { describe, expect, it } from 'vitest';
import { ConnectionRegistry, parseKill } from './registry.js';

describe('parseKill', () => {
  it.each([
    ['KILL 7', { query: false, id: 7 }],
    ['kill query 42', { query: true, id: 42 }],
    ['KILL CONNECTION 3;', { query: false, id: 3 }],
    ['  KILL HARD QUERY 9  ', { query: true, id: 9 }],
    ['KILL SOFT 12', { query: false, id: 12 }],
  ])('%s', (text, expected) => {
    expect(parseKill(text)).toEqual(expected);
  });

  it.each(['KILL USER root', 'KILL QUERY ID 5', 'KILL /* c */ QUERY 5', 'KILL QUERY @x', 'SELECT 1; KILL 5', 'KILL 12345678901', 'KILL'])('%s is not the plain form', (text) => {
    expect(parseKill(text)).toBeUndefined();
  });
});

describe('ConnectionRegistry', () => {
  it('hands out distinct non-zero ids and forgets them', () => {
    const r = new ConnectionRegistry();
    const target = { subject: () => 's', sessionRef: () => undefined, killQuery: () => Promise.resolve(), killConnection: () => undefined };
    const a = r.register(target);
    const b = r.register(target);
    expect(a).not.toBe(0);
    expect(b).not.toBe(a);
    expect(r.lookup(a)).toBe(target);
    r.unregister(a);
    expect(r.lookup(a)).toBeUndefined();
    expect(r.size).toBe(1);
  });
});

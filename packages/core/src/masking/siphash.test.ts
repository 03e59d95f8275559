import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sipHash, sipKey } from './siphash.js';

/** Reference vectors of SipHash-2-4 (key 00..0f, message 00..len-1), as 64-bit little-endian words. */
const VECTORS: [number, string][] = [
  [0, '726fdb47dd0e0e31'],
  [1, '74f839c593dc67fd'],
  [7, 'ab0200f58b01d137'],
  [8, '93f5f5799a932462'],
  [15, 'a129ca6149be45e5'],
];

describe('SipHash-2-4', () => {
  it.each(VECTORS)('matches the reference output for %i bytes', (len, hex) => {
    const key = sipKey(Buffer.from(Array.from({ length: 16 }, (_, i) => i)));
    const msg = Buffer.from(Array.from({ length: len }, (_, i) => i));
    const [hi, lo] = sipHash(key, msg);
    expect(hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0')).toBe(hex);
  });

  it('agrees with a plain 64-bit (BigInt) rendering of the algorithm on any key and message', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 64 }), (k, m) => {
        const [hi, lo] = sipHash(sipKey(Buffer.from(k)), m);
        expect((BigInt(hi) << 32n) | BigInt(lo)).toBe(reference(Buffer.from(k), Buffer.from(m)));
      }),
    );
  });

  it('depends on every key byte, including those past the sixteenth', () => {
    const msg = Buffer.from('value');
    const a = sipHash(sipKey(Buffer.from('0123456789abcdef-tail-a')), msg);
    const b = sipHash(sipKey(Buffer.from('0123456789abcdef-tail-b')), msg);
    expect(a).not.toEqual(b);
  });
});

const MASK = (1n << 64n) - 1n;
const rotl = (x: bigint, b: number) => ((x << BigInt(b)) | (x >> BigInt(64 - b))) & MASK;

/** SipHash-2-4 written directly on 64-bit integers, as the specification states it. */
function reference(key: Buffer, m: Buffer): bigint {
  const k0 = key.readBigUInt64LE(0);
  const k1 = key.readBigUInt64LE(8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = () => {
    v0 = (v0 + v1) & MASK;
    v1 = rotl(v1, 13) ^ v0;
    v0 = rotl(v0, 32);
    v2 = (v2 + v3) & MASK;
    v3 = rotl(v3, 16) ^ v2;
    v0 = (v0 + v3) & MASK;
    v3 = rotl(v3, 21) ^ v0;
    v2 = (v2 + v1) & MASK;
    v1 = rotl(v1, 17) ^ v2;
    v2 = rotl(v2, 32);
  };
  let i = 0;
  for (; i + 8 <= m.length; i += 8) {
    const w = m.readBigUInt64LE(i);
    v3 ^= w;
    round();
    round();
    v0 ^= w;
  }
  let b = BigInt(m.length & 0xff) << 56n;
  for (let j = 0; j < m.length - i; j++) b |= BigInt(m[i + j]!) << BigInt(8 * j);
  v3 ^= b;
  round();
  round();
  v0 ^= b;
  v2 ^= 0xffn;
  round();
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

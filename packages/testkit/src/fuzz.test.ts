import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyMutations, chunkingArb, mutationArb, splitIntoChunks, type LengthField } from './fuzz.js';

/** Length fields of a toy framing: a 4-byte big-endian length (counting itself) before each frame. */
function fields(b: Buffer): LengthField[] {
  const out: LengthField[] = [];
  for (let at = 0; at + 4 <= b.length; ) {
    const len = b.readInt32BE(at);
    out.push({ offset: at, size: 4, endian: 'BE', value: len });
    if (len < 4) break;
    at += len;
  }
  return out;
}

const frame = (body: string) => {
  const b = Buffer.alloc(4 + body.length);
  b.writeInt32BE(4 + body.length);
  b.write(body, 4);
  return b;
};

describe('fuzz mutations', () => {
  it('chunking keeps every byte in order and caps the number of writes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), chunkingArb, (bytes, sizes) => {
        const chunks = splitIntoChunks(Buffer.from(bytes), sizes, 10);
        expect(Buffer.concat(chunks).equals(Buffer.from(bytes))).toBe(true);
        expect(chunks.length).toBeLessThanOrEqual(10);
      }),
    );
  });

  it('a length corruption rewrites exactly one real length field', () => {
    const input = Buffer.concat([frame('abc'), frame('hello'), frame('')]);
    const out = applyMutations(input, [{ op: 'length', field: 1, change: { delta: 2 } }], { corpus: [], lengthFields: fields });
    expect(out.readInt32BE(7)).toBe(11);
    expect(Buffer.concat([out.subarray(0, 7), out.subarray(11)]).equals(Buffer.concat([input.subarray(0, 7), input.subarray(11)]))).toBe(true);
    const huge = applyMutations(input, [{ op: 'length', field: 0, change: { to: 'sign' } }], { corpus: [], lengthFields: fields });
    expect(huge.readInt32BE(0)).toBe(-0x80000000);
  });

  it('mutations are deterministic, leave the input untouched and splice only corpus bytes', () => {
    const input = Buffer.concat([frame('SELECT 1'), frame('SELECT 2')]);
    const copy = Buffer.from(input);
    const other = Buffer.from('zzzzzzzz');
    fc.assert(
      fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (ms) => {
        const a = applyMutations(input, ms, { corpus: [other], lengthFields: fields });
        const b = applyMutations(input, ms, { corpus: [other], lengthFields: fields });
        expect(a.equals(b)).toBe(true);
        expect(input.equals(copy)).toBe(true);
      }),
    );
    const spliced = applyMutations(input, [{ op: 'splice', other: 0, from: 2, count: 3, at: 4 }], { corpus: [other], lengthFields: fields });
    expect(spliced.subarray(4, 7).toString()).toBe('zzz');
    expect(spliced.length).toBe(input.length + 3);
  });
});

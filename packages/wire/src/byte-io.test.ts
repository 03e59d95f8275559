import { describe, expect, it } from 'vitest';
import { ByteReader } from './byte-reader.js';
import { ByteWriter } from './byte-writer.js';

describe('ByteWriter and ByteReader', () => {
  it('round-trip integers and strings', () => {
    const w = new ByteWriter(4);
    const at = w.uint8(0x52).reserveInt32();
    w.int32(-7).int16(300).cstring('héllo').bytes(Buffer.from([1, 2, 3])).uintLE(0x030201, 3);
    w.patchInt32(at, 42);
    const buf = w.finish();
    const r = new ByteReader(buf);
    expect(r.uint8()).toBe(0x52);
    expect(r.int32()).toBe(42);
    expect(r.int32()).toBe(-7);
    expect(r.int16()).toBe(300);
    expect(r.cstring()).toBe('héllo');
    expect([...r.bytes(3)]).toEqual([1, 2, 3]);
    expect(r.uintLE(3)).toBe(0x030201);
    expect(r.remaining).toBe(0);
  });

  it('a finished buffer is not overwritten by later writes', () => {
    const w = new ByteWriter(8);
    const first = w.cstring('abc').finish();
    w.cstring('xyz');
    expect(first.toString('latin1')).toBe('abc\0');
  });

  it('throws on reads past the end and on unterminated strings', () => {
    expect(() => new ByteReader(Buffer.from([1, 2])).int32()).toThrow(RangeError);
    expect(() => new ByteReader(Buffer.from('abc')).cstring()).toThrow(RangeError);
    const r = new ByteReader(Buffer.from('abc\0def'), 0, 3);
    expect(() => r.cstring()).toThrow(RangeError);
  });

  it('honours the byte offset of a pooled buffer', () => {
    const pool = Buffer.from([9, 9, 0, 0, 0, 5, 9]);
    const view = pool.subarray(2, 6);
    expect(new ByteReader(view).int32()).toBe(5);
  });
});

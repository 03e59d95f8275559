import { describe, expect, it } from 'vitest';
import { FrameBuffer, FrameTooLargeError, InvalidFrameLengthError, type Framing } from './frame-buffer.js';

// Type byte + int32 length that counts itself but not the type byte (the PostgreSQL layout).
const typed: Framing = { headerBytes: 5, frameLength: (b, o) => 1 + b.readInt32BE(o + 1) };

function msg(type: string, body: string): Buffer {
  const payload = Buffer.from(body);
  const out = Buffer.alloc(5 + payload.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + payload.length, 1);
  payload.copy(out, 5);
  return out;
}

function collect(fb: FrameBuffer): string[] {
  const out: string[] = [];
  for (let f = fb.next(); f; f = fb.next()) out.push(f.buffer.toString('latin1', f.start, f.end));
  return out;
}

describe('FrameBuffer', () => {
  const stream = Buffer.concat([msg('Q', 'select 1\0'), msg('S', ''), msg('P', 'x'.repeat(300)), msg('X', '')]);
  const expected = [msg('Q', 'select 1\0'), msg('S', ''), msg('P', 'x'.repeat(300)), msg('X', '')].map((b) =>
    b.toString('latin1'),
  );

  it('yields several frames packed in one chunk', () => {
    const fb = new FrameBuffer(typed, 1 << 20);
    fb.push(stream);
    expect(collect(fb)).toEqual(expected);
    expect(fb.buffered).toBe(0);
  });

  it('reassembles frames split at every byte offset', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const fb = new FrameBuffer(typed, 1 << 20);
      const got: string[] = [];
      fb.push(stream.subarray(0, cut));
      got.push(...collect(fb));
      fb.push(stream.subarray(cut));
      got.push(...collect(fb));
      expect(got, `cut at ${cut}`).toEqual(expected);
    }
  });

  it('reassembles a stream fed one byte at a time', () => {
    const fb = new FrameBuffer(typed, 1 << 20);
    const got: string[] = [];
    for (let i = 0; i < stream.length; i++) {
      fb.push(stream.subarray(i, i + 1));
      got.push(...collect(fb));
    }
    expect(got).toEqual(expected);
  });

  it('never rewrites memory of a frame it handed out', () => {
    const fb = new FrameBuffer(typed, 1 << 20);
    const a = msg('Q', 'first\0');
    const b = msg('Q', 'second\0');
    fb.push(Buffer.concat([a, b.subarray(0, 3)]));
    const f = fb.next()!;
    const view = f.buffer.subarray(f.start, f.end);
    const before = Buffer.from(view);
    fb.push(b.subarray(3));
    expect(collect(fb)).toEqual([b.toString('latin1')]);
    expect(view.equals(before)).toBe(true);
  });

  it('rejects a frame over the limit before buffering it', () => {
    const fb = new FrameBuffer(typed, 64);
    fb.push(msg('Q', 'y'.repeat(100)).subarray(0, 5));
    expect(() => fb.next()).toThrow(FrameTooLargeError);
  });

  it('rejects a length smaller than its own header', () => {
    const fb = new FrameBuffer(typed, 64);
    fb.push(Buffer.from([0x51, 0, 0, 0, 1]));
    expect(() => fb.next()).toThrow(InvalidFrameLengthError);
  });

  it('switches framing and keeps leftover bytes', () => {
    const untyped: Framing = { headerBytes: 4, frameLength: (b, o) => b.readInt32BE(o) };
    const fb = new FrameBuffer(untyped, 1 << 20);
    const startup = Buffer.alloc(8);
    startup.writeInt32BE(8, 0);
    startup.writeInt32BE(196608, 4);
    fb.push(Buffer.concat([startup, msg('p', 'secret\0')]));
    expect(fb.next()!.end).toBe(8);
    fb.setFraming(typed);
    expect(collect(fb)).toEqual([msg('p', 'secret\0').toString('latin1')]);
  });
});

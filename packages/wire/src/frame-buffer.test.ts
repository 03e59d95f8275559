import { describe, expect, it } from 'vitest';
import { ASSEMBLE_ABOVE, FrameBuffer, FrameTooLargeError, InvalidFrameLengthError, type Framing } from './frame-buffer.js';

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

  it('assembles a large frame spanning many chunks, with frames before and after it', () => {
    const big = msg('d', 'z'.repeat(ASSEMBLE_ABOVE * 3));
    const all = Buffer.concat([msg('Q', 'a\0'), big, msg('S', ''), msg('X', '')]);
    for (const size of [1000, 4096, 65536, 70000]) {
      const fb = new FrameBuffer(typed, 1 << 22);
      const got: string[] = [];
      for (let at = 0; at < all.length; at += size) {
        fb.push(all.subarray(at, at + size));
        got.push(...collect(fb));
      }
      expect(got, `chunks of ${size}`).toEqual([msg('Q', 'a\0'), big, msg('S', ''), msg('X', '')].map((b) => b.toString('latin1')));
    }
  });

  it('assembles a large frame in one buffer of its own size, allocated once', () => {
    const big = msg('d', 'y'.repeat(4 << 20));
    const fb = new FrameBuffer(typed, 1 << 23);
    let f;
    for (let at = 0; at < big.length; at += 16384) {
      fb.push(big.subarray(at, at + 16384));
      f = fb.next() ?? f;
    }
    // The frame is the assembly buffer itself (not a view into joined leftovers).
    expect(f!.start).toBe(0);
    expect(f!.end).toBe(big.length);
    expect(f!.buffer.length).toBe(big.length);
    expect(f!.buffer.equals(big)).toBe(true);
    expect(fb.buffered).toBe(0);
  });

  it('drain returns a half-assembled frame and what follows', () => {
    const fb = new FrameBuffer(typed, 1 << 22);
    const big = msg('d', 'w'.repeat(ASSEMBLE_ABOVE * 2));
    fb.push(big.subarray(0, 1000));
    expect(fb.next()).toBeUndefined();
    fb.push(big.subarray(1000, 5000));
    expect(fb.drain().equals(big.subarray(0, 5000))).toBe(true);
    expect(fb.buffered).toBe(0);
  });

  it('applies a changed size limit to the next frame', () => {
    const fb = new FrameBuffer(typed, 16);
    fb.push(msg('p', 'short\0'));
    expect(fb.next()).toBeDefined();
    fb.setMaxFrameBytes(1 << 20);
    fb.push(msg('Q', 'q'.repeat(100)));
    expect(fb.next()).toBeDefined();
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

import { ByteReader, ByteWriter, FrameTooLargeError, InvalidFrameLengthError } from '@sluice/wire';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_PACKET_PAYLOAD,
  MessageReader,
  PacketSequence,
  PacketSequenceError,
  encodePacket,
  lenencAt,
  lenencIntSize,
  nextSequenceId,
  packetCount,
  packetFraming,
  readLenencBigInt,
  readLenencBigIntOrNull,
  readLenencBytes,
  readLenencBytesOrNull,
  readLenencInt,
  readLenencIntOrNull,
  readLenencString,
  readNulOrEofString,
  writeLenencBytes,
  writeLenencInt,
  writeLenencString,
  type PacketMessage,
} from './packets.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

interface Sent {
  payload: Buffer;
  seq: number;
}

function collect(reader: MessageReader): PacketMessage[] {
  const out: PacketMessage[] = [];
  for (let m = reader.next(); m; m = reader.next()) out.push({ ...m, payload: Buffer.from(m.payload) });
  return out;
}

function expectMessages(got: PacketMessage[], sent: Sent[], maxPayload: number): void {
  expect(got.length).toBe(sent.length);
  got.forEach((m, i) => {
    const s = sent[i]!;
    expect(m.payload.equals(s.payload), `message ${i}`).toBe(true);
    expect(m.sequenceId).toBe(s.seq);
    const n = packetCount(s.payload.length, maxPayload);
    expect(m.packets).toBe(n);
    expect(m.lastSequenceId).toBe((s.seq + n - 1) & 0xff);
  });
}

describe('packet framing', () => {
  it('writes the 3-byte little-endian length and the sequence id', () => {
    expect(encodePacket(Buffer.from('\x03SELECT 1', 'latin1'), 0)).toEqual(hex('09 00 00 00 03 53 45 4c 45 43 54 20 31'));
    expect(encodePacket(Buffer.alloc(0), 7)).toEqual(hex('00 00 00 07'));
    const big = Buffer.alloc(0x12345, 0x61);
    const p = encodePacket(big, 3);
    expect([...p.subarray(0, 4)]).toEqual([0x45, 0x23, 0x01, 0x03]);
    expect(packetFraming.frameLength(p, 0)).toBe(0x12345 + 4);
  });

  it('splits a long payload, with an empty packet after an exact multiple of the maximum', () => {
    const ten = Buffer.from('0123456789');
    expect(encodePacket(ten, 5, 4)).toEqual(
      Buffer.concat([hex('04 00 00 05'), Buffer.from('0123'), hex('04 00 00 06'), Buffer.from('4567'), hex('02 00 00 07'), Buffer.from('89')]),
    );
    expect(encodePacket(ten.subarray(0, 8), 0, 4)).toEqual(
      Buffer.concat([hex('04 00 00 00'), Buffer.from('0123'), hex('04 00 00 01'), Buffer.from('4567'), hex('00 00 00 02')]),
    );
    // Sequence ids wrap at 256.
    expect([...encodePacket(ten, 255, 4)].filter((_, i) => i === 3 || i === 11 || i === 19)).toEqual([255, 0, 1]);
    expect(packetCount(0, 4)).toBe(1);
    expect(packetCount(4, 4)).toBe(2);
    expect(packetCount(MAX_PACKET_PAYLOAD - 1)).toBe(1);
    expect(packetCount(MAX_PACKET_PAYLOAD)).toBe(2);
    expect(() => encodePacket(ten, 0, 0)).toThrow(RangeError);
    expect(() => encodePacket(ten, 0, MAX_PACKET_PAYLOAD + 1)).toThrow(RangeError);
  });

  it('tracks sequence ids across a conversation', () => {
    const seq = new PacketSequence();
    expect(nextSequenceId(255)).toBe(0);
    seq.received({ sequenceId: 0, lastSequenceId: 0 });
    expect(seq.next).toBe(1);
    const out = seq.encode(Buffer.from('0123456789'), 4);
    expect(out[3]).toBe(1);
    expect(seq.next).toBe(4);
    expect(() => seq.received({ sequenceId: 5, lastSequenceId: 5 })).toThrow(PacketSequenceError);
    seq.reset(255);
    seq.received({ sequenceId: 255, lastSequenceId: 255 });
    expect(seq.next).toBe(0);
    seq.reset();
    expect(seq.next).toBe(0);
  });
});

describe('MessageReader', () => {
  it('returns a one-packet message as a view of the packet', () => {
    const r = new MessageReader({ maxMessageBytes: 1 << 20 });
    const stream = Buffer.concat([encodePacket(Buffer.from('abc'), 0), encodePacket(Buffer.from('de'), 1)]);
    r.push(stream);
    const m = r.next()!;
    expect(m.payload.toString()).toBe('abc');
    expect(m.payload.buffer).toBe(stream.buffer);
    expect(r.next()!.sequenceId).toBe(1);
    expect(r.next()).toBeUndefined();
    expect(r.buffered).toBe(0);
  });

  it('rejects a continuation packet out of sequence', () => {
    const r = new MessageReader({ maxMessageBytes: 1 << 20, maxPayload: 4 });
    r.push(Buffer.concat([hex('04 00 00 00'), Buffer.from('0123'), hex('01 00 00 02'), Buffer.from('4')]));
    expect(() => r.next()).toThrow(PacketSequenceError);
  });

  it('rejects a message over the limit, counting all its packets', () => {
    const r = new MessageReader({ maxMessageBytes: 10, maxPayload: 4 });
    r.push(encodePacket(Buffer.alloc(11), 0, 4));
    expect(() => collect(r)).toThrow(FrameTooLargeError);
    const one = new MessageReader({ maxMessageBytes: 10 });
    one.push(hex('0b 00 00 00'));
    expect(() => one.next()).toThrow(FrameTooLargeError);
  });

  it('rejects a packet longer than the continuation threshold', () => {
    const r = new MessageReader({ maxMessageBytes: 100, maxPayload: 4 });
    r.push(Buffer.concat([hex('05 00 00 00'), Buffer.from('01234')]));
    expect(() => r.next()).toThrow(FrameTooLargeError);
  });

  it('drains a message whose last packet has not arrived, headers included', () => {
    const r = new MessageReader({ maxMessageBytes: 100, maxPayload: 4 });
    const all = encodePacket(Buffer.from('0123456789'), 0, 4);
    r.push(all.subarray(0, 13));
    expect(r.next()).toBeUndefined();
    expect(r.buffered).toBe(13);
    expect(r.drain().equals(all.subarray(0, 13))).toBe(true);
    expect(r.buffered).toBe(0);
  });

  const messages = (maxPayload: number) =>
    fc.array(
      fc.record({
        payload: fc.oneof(
          fc.uint8Array({ maxLength: maxPayload * 3 + 2 }),
          // Exact multiples of the maximum, which end with an empty packet.
          fc.integer({ min: 0, max: 3 }).map((k) => new Uint8Array(k * maxPayload).fill(0x5a)),
        ),
        seq: fc.integer({ min: 0, max: 255 }),
      }),
      { maxLength: 8 },
    );

  it('reassembles a stream of random messages split at every offset (lowered maximum payload)', () => {
    const maxPayload = 7;
    fc.assert(
      fc.property(messages(maxPayload), (raw) => {
        const sent = raw.map((m) => ({ payload: Buffer.from(m.payload), seq: m.seq }));
        const stream = Buffer.concat(sent.map((s) => encodePacket(s.payload, s.seq, maxPayload)));
        for (let cut = 0; cut <= stream.length; cut++) {
          const r = new MessageReader({ maxMessageBytes: 1 << 20, maxPayload });
          r.push(stream.subarray(0, cut));
          const got = collect(r);
          r.push(stream.subarray(cut));
          got.push(...collect(r));
          expectMessages(got, sent, maxPayload);
          expect(r.buffered).toBe(0);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('reassembles random messages fed in random chunks', () => {
    const maxPayload = 5;
    fc.assert(
      fc.property(messages(maxPayload), fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), (raw, sizes) => {
        const sent = raw.map((m) => ({ payload: Buffer.from(m.payload), seq: m.seq }));
        const stream = Buffer.concat(sent.map((s) => encodePacket(s.payload, s.seq, maxPayload)));
        const r = new MessageReader({ maxMessageBytes: 1 << 20, maxPayload });
        const got: PacketMessage[] = [];
        let at = 0;
        for (let i = 0; at < stream.length; i++) {
          const n = sizes[i % sizes.length]!;
          r.push(stream.subarray(at, at + n));
          at += n;
          got.push(...collect(r));
        }
        expectMessages(got, sent, maxPayload);
      }),
    );
  });

  it('reassembles real messages of 16 MiB and more, split around packet boundaries', () => {
    const exact = Buffer.alloc(MAX_PACKET_PAYLOAD, 0x61);
    const over = Buffer.alloc(MAX_PACKET_PAYLOAD + 300, 0x62);
    over.write('end', over.length - 3);
    const sent: Sent[] = [
      { payload: Buffer.from('before'), seq: 0 },
      { payload: exact, seq: 254 },
      { payload: over, seq: 3 },
      { payload: Buffer.from('after'), seq: 9 },
    ];
    const stream = Buffer.concat(sent.map((s) => encodePacket(s.payload, s.seq)));
    expect(stream.length).toBe(6 + 2 * MAX_PACKET_PAYLOAD + 300 + 5 + 6 * 4);
    // Every packet header in the stream, and the end.
    const boundaries: number[] = [];
    for (let at = 0; at < stream.length; at += packetFraming.frameLength(stream, at)) boundaries.push(at);
    expect(boundaries.length).toBe(6);
    boundaries.push(stream.length);
    const cuts = boundaries.flatMap((b) => [-2, -1, 0, 1, 2, 3, 4, 5].map((d) => b + d)).filter((c) => c >= 0 && c <= stream.length);
    for (const cut of cuts) {
      const r = new MessageReader({ maxMessageBytes: 1 << 26 });
      r.push(stream.subarray(0, cut));
      const got = collect(r);
      r.push(stream.subarray(cut));
      got.push(...collect(r));
      expectMessages(got, sent, MAX_PACKET_PAYLOAD);
    }
    // And in socket-sized chunks.
    const r = new MessageReader({ maxMessageBytes: 1 << 26 });
    const got: PacketMessage[] = [];
    for (let at = 0; at < stream.length; at += 65536) {
      r.push(stream.subarray(at, at + 65536));
      got.push(...collect(r));
    }
    expectMessages(got, sent, MAX_PACKET_PAYLOAD);
  }, 60_000);

  it('never hangs or reads out of bounds on garbage: a message, more bytes needed, or a framing error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 50 }), (bytes, chunk) => {
        const r = new MessageReader({ maxMessageBytes: 64, maxPayload: 16 });
        const buf = Buffer.from(bytes);
        let total = 0;
        try {
          for (let at = 0; at < buf.length; at += chunk) {
            r.push(buf.subarray(at, at + chunk));
            for (let m = r.next(); m; m = r.next()) {
              total += m.payload.length;
              expect(m.payload.length).toBeLessThanOrEqual(64);
            }
          }
        } catch (err) {
          expect(
            err instanceof FrameTooLargeError || err instanceof InvalidFrameLengthError || err instanceof PacketSequenceError,
            String(err),
          ).toBe(true);
        }
        expect(total).toBeLessThanOrEqual(buf.length);
      }),
    );
  });
});

describe('length-encoded integers and strings', () => {
  const encode = (v: number | bigint) => writeLenencInt(new ByteWriter(9), v).finish();

  it('uses 1, 3, 4 or 9 bytes', () => {
    expect(encode(0)).toEqual(hex('00'));
    expect(encode(250)).toEqual(hex('fa'));
    expect(encode(251)).toEqual(hex('fc fb 00'));
    expect(encode(0xffff)).toEqual(hex('fc ff ff'));
    expect(encode(0x10000)).toEqual(hex('fd 00 00 01'));
    expect(encode(0xffffff)).toEqual(hex('fd ff ff ff'));
    expect(encode(0x1000000)).toEqual(hex('fe 00 00 00 01 00 00 00 00'));
    expect(encode(0xffffffffffffffffn)).toEqual(hex('fe ff ff ff ff ff ff ff ff'));
    expect([0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000].map(lenencIntSize)).toEqual([1, 1, 3, 3, 4, 4, 9]);
    expect(() => encode(-1)).toThrow(RangeError);
    expect(() => encode(1.5)).toThrow(RangeError);
    expect(() => encode(2n ** 64n)).toThrow(RangeError);
  });

  it('reads 0xFB as NULL only where NULL is allowed, and never 0xFF', () => {
    expect(readLenencIntOrNull(new ByteReader(hex('fb')))).toBeNull();
    expect(readLenencBigIntOrNull(new ByteReader(hex('fb')))).toBeNull();
    expect(readLenencBytesOrNull(new ByteReader(hex('fb')))).toBeNull();
    expect(() => readLenencInt(new ByteReader(hex('fb')))).toThrow(RangeError);
    expect(() => readLenencBigInt(new ByteReader(hex('fb')))).toThrow(RangeError);
    expect(() => readLenencInt(new ByteReader(hex('ff')))).toThrow(RangeError);
    expect(() => readLenencBigInt(new ByteReader(hex('ff')))).toThrow(RangeError);
    expect(() => lenencAt(hex('ff'), { at: 0 }, 1)).toThrow(RangeError);
    expect(lenencAt(hex('fb'), { at: 0 }, 1)).toBe(-1);
  });

  it('refuses numbers above 2^53 but reads them as bigints', () => {
    const big = hex('fe 00 00 00 00 00 00 20 00'); // 2^53
    expect(() => readLenencInt(new ByteReader(big))).toThrow(RangeError);
    expect(() => lenencAt(big, { at: 0 }, big.length)).toThrow(RangeError);
    expect(readLenencBigInt(new ByteReader(big))).toBe(2n ** 53n);
    expect(readLenencInt(new ByteReader(hex('fe ff ff ff ff ff ff 1f 00')))).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('round-trips any integer (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 0x2000000 }), fc.maxSafeNat()), (v) => {
        const b = encode(v);
        expect(b.length).toBe(lenencIntSize(v));
        const r = new ByteReader(b);
        expect(readLenencInt(r)).toBe(v);
        expect(r.remaining).toBe(0);
        const c = { at: 0 };
        expect(lenencAt(b, c, b.length)).toBe(v);
        expect(c.at).toBe(b.length);
        expect(readLenencBigInt(new ByteReader(b))).toBe(BigInt(v));
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        const b = encode(v);
        expect(b.length).toBe(lenencIntSize(v));
        expect(readLenencBigInt(new ByteReader(b))).toBe(v);
      }),
    );
  });

  it('throws RangeError on every truncation of an integer or a string (property)', () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.uint8Array({ maxLength: 300 }), (v, bytes) => {
        const n = encode(v);
        for (let cut = 0; cut < n.length; cut++) {
          expect(() => readLenencInt(new ByteReader(n, 0, cut))).toThrow(RangeError);
          expect(() => lenencAt(n, { at: 0 }, cut)).toThrow(RangeError);
        }
        const s = writeLenencBytes(new ByteWriter(), bytes).finish();
        for (let cut = 0; cut < s.length; cut++) {
          expect(() => readLenencBytes(new ByteReader(s.subarray(0, cut)))).toThrow(RangeError);
        }
      }),
    );
  });

  it('round-trips strings and byte strings (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 300 }), fc.uint8Array({ maxLength: 70000 }), (s, bytes) => {
        const w = new ByteWriter();
        writeLenencString(w, s);
        writeLenencBytes(w, bytes);
        const r = new ByteReader(w.finish());
        expect(readLenencString(r)).toBe(s);
        expect(Buffer.from(readLenencBytes(r)).equals(Buffer.from(bytes))).toBe(true);
        expect(r.remaining).toBe(0);
      }),
      { numRuns: 50 },
    );
  });

  it('reads NUL-terminated strings, or the rest when the NUL is missing', () => {
    const r = new ByteReader(Buffer.from('abc\0def'));
    expect(r.cstring()).toBe('abc');
    expect(readNulOrEofString(r)).toBe('def');
    expect(r.remaining).toBe(0);
    expect(() => new ByteReader(Buffer.from('abc')).cstring()).toThrow(RangeError);
  });
});

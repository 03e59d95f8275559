import { ByteReader, ByteWriter, FrameBuffer, FrameTooLargeError, InvalidFrameLengthError, type Framing } from '@sluice/wire';

/**
 * MySQL packet framing and the protocol's basic data types.
 *
 *   int<3> payload length (little-endian) | int<1> sequence id | payload
 *
 * A logical message longer than 0xFFFFFF bytes is sent as several packets: every packet but
 * the last carries exactly 0xFFFFFF bytes, and a message whose length is an exact multiple
 * of 0xFFFFFF ends with an empty packet. Each packet takes the next sequence id.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html
 * https://mariadb.com/kb/en/0-packet/
 */

export const PACKET_HEADER_BYTES = 4;
/** Largest payload of one packet; a packet this long is continued by the next one. */
export const MAX_PACKET_PAYLOAD = 0xffffff;

/** Payload length of the packet whose header starts at `offset` (3 bytes, little-endian). */
export function packetPayloadLength(buf: Buffer, offset: number): number {
  return buf[offset]! | (buf[offset + 1]! << 8) | (buf[offset + 2]! << 16);
}

/** Sequence id of the packet whose header starts at `offset`. */
export function packetSequenceId(buf: Buffer, offset: number): number {
  return buf[offset + 3]!;
}

/** One packet (header included) per frame, for a FrameBuffer; continued messages are joined by {@link MessageReader}. */
export const packetFraming: Framing = {
  headerBytes: PACKET_HEADER_BYTES,
  frameLength: (b, o) => PACKET_HEADER_BYTES + packetPayloadLength(b, o),
};

/** The sequence id after `id` (they wrap at 256). */
export function nextSequenceId(id: number): number {
  return (id + 1) & 0xff;
}

/** How many packets carry a payload of `length` bytes (an exact multiple of the maximum adds an empty one). */
export function packetCount(length: number, maxPayload = MAX_PACKET_PAYLOAD): number {
  return Math.floor(length / maxPayload) + 1;
}

/**
 * The packets carrying `payload`, the first with `sequenceId` and each next one with the
 * following id. `maxPayload` is lowered only by tests of the continuation logic.
 */
export function encodePacket(payload: Uint8Array, sequenceId: number, maxPayload = MAX_PACKET_PAYLOAD): Buffer {
  if (!Number.isInteger(maxPayload) || maxPayload < 1 || maxPayload > MAX_PACKET_PAYLOAD) {
    throw new RangeError(`invalid maximum payload ${maxPayload}`);
  }
  const count = packetCount(payload.length, maxPayload);
  const out = Buffer.allocUnsafe(payload.length + count * PACKET_HEADER_BYTES);
  let at = 0;
  let from = 0;
  let seq = sequenceId & 0xff;
  for (let i = 0; i < count; i++) {
    const n = Math.min(maxPayload, payload.length - from);
    out[at] = n & 0xff;
    out[at + 1] = (n >>> 8) & 0xff;
    out[at + 2] = (n >>> 16) & 0xff;
    out[at + 3] = seq;
    out.set(payload.subarray(from, from + n), at + PACKET_HEADER_BYTES);
    at += PACKET_HEADER_BYTES + n;
    from += n;
    seq = nextSequenceId(seq);
  }
  return out;
}

/** A packet arrived with a sequence id other than the one expected. */
export class PacketSequenceError extends Error {
  constructor(
    readonly expected: number,
    readonly received: number,
  ) {
    super(`packet out of order: expected sequence id ${expected}, got ${received}`);
    this.name = 'PacketSequenceError';
  }
}

/**
 * The sequence ids of one conversation. Every command starts a new one at 0 (`reset`); each
 * packet sent or received takes the next id, whichever side sends it.
 */
export class PacketSequence {
  #next = 0;

  /** The id the next packet (sent or received) must carry. */
  get next(): number {
    return this.#next;
  }

  reset(to = 0): void {
    this.#next = to & 0xff;
  }

  /** Checks a received message (its first and last packet ids) and moves past it. */
  received(message: { readonly sequenceId: number; readonly lastSequenceId: number }): void {
    if (message.sequenceId !== this.#next) throw new PacketSequenceError(this.#next, message.sequenceId);
    this.#next = nextSequenceId(message.lastSequenceId);
  }

  /** Encodes `payload` with the next ids and moves past them. */
  encode(payload: Uint8Array, maxPayload = MAX_PACKET_PAYLOAD): Buffer {
    const out = encodePacket(payload, this.#next, maxPayload);
    this.#next = (this.#next + packetCount(payload.length, maxPayload)) & 0xff;
    return out;
  }
}

/** A logical message: the payload of one packet, or of several joined. */
export interface PacketMessage {
  /** The payload (a view of the packet when it fits in one; joined otherwise). */
  readonly payload: Buffer;
  /** Sequence id of the first packet. */
  readonly sequenceId: number;
  /** Sequence id of the last packet (the same for a one-packet message). */
  readonly lastSequenceId: number;
  /** How many packets carried it. */
  readonly packets: number;
  /** The packet as received, header included, when the message is one packet. */
  readonly packet?: Buffer;
}

export interface MessageReaderOptions {
  /** Largest logical message accepted (payload bytes); a longer one throws FrameTooLargeError. */
  readonly maxMessageBytes: number;
  /** Continuation threshold; lowered only by tests. */
  readonly maxPayload?: number;
}

/**
 * Reassembles logical messages from a byte stream: packets are framed by a FrameBuffer, and a
 * packet of the maximum length is joined with those that follow it. The packets of one message
 * must carry consecutive sequence ids (PacketSequenceError otherwise); the first id of each
 * message is the caller's to check (see PacketSequence).
 *
 * Payload views handed out are never written again (the FrameBuffer invariant).
 */
export class MessageReader {
  readonly #frames: FrameBuffer;
  readonly #maxPayload: number;
  #maxMessageBytes: number;
  /** Packets (header included) of a message continued by packets not yet arrived. */
  #parts: Buffer[] = [];
  #partsPayload = 0;

  constructor(options: MessageReaderOptions) {
    this.#maxPayload = options.maxPayload ?? MAX_PACKET_PAYLOAD;
    if (!Number.isInteger(this.#maxPayload) || this.#maxPayload < 1 || this.#maxPayload > MAX_PACKET_PAYLOAD) {
      throw new RangeError(`invalid maximum payload ${this.#maxPayload}`);
    }
    this.#maxMessageBytes = options.maxMessageBytes;
    this.#frames = new FrameBuffer(packetFraming, this.#frameLimit());
  }

  #frameLimit(): number {
    return PACKET_HEADER_BYTES + Math.min(this.#maxPayload, this.#maxMessageBytes);
  }

  /** Changes the message size limit for messages not yet started. */
  setMaxMessageBytes(limit: number): void {
    this.#maxMessageBytes = limit;
    this.#frames.setMaxFrameBytes(this.#frameLimit());
  }

  /** Bytes held that are not yet a whole message. */
  get buffered(): number {
    return this.#frames.buffered + this.#partsPayload + this.#parts.length * PACKET_HEADER_BYTES;
  }

  push(chunk: Buffer): void {
    this.#frames.push(chunk);
  }

  /**
   * The next complete message, or undefined when more bytes are needed. Throws
   * FrameTooLargeError, InvalidFrameLengthError or PacketSequenceError; the stream is then
   * unusable.
   */
  next(): PacketMessage | undefined {
    for (;;) {
      const f = this.#frames.next();
      if (!f) return undefined;
      const length = f.end - f.start - PACKET_HEADER_BYTES;
      if (length > this.#maxPayload) throw new InvalidFrameLengthError(length);
      const seq = f.buffer[f.start + 3]!;
      if (this.#parts.length > 0) {
        const prev = this.#parts[this.#parts.length - 1]!;
        const want = nextSequenceId(prev[3]!);
        if (seq !== want) throw new PacketSequenceError(want, seq);
      }
      if (this.#partsPayload + length > this.#maxMessageBytes) {
        throw new FrameTooLargeError(this.#partsPayload + length, this.#maxMessageBytes);
      }
      const packet = f.buffer.subarray(f.start, f.end);
      if (length === this.#maxPayload) {
        this.#parts.push(packet);
        this.#partsPayload += length;
        continue;
      }
      if (this.#parts.length === 0) {
        return { payload: packet.subarray(PACKET_HEADER_BYTES), sequenceId: seq, lastSequenceId: seq, packets: 1, packet };
      }
      const parts = this.#parts;
      const payload = Buffer.allocUnsafe(this.#partsPayload + length);
      let at = 0;
      for (const p of parts) at += p.copy(payload, at, PACKET_HEADER_BYTES);
      packet.copy(payload, at, PACKET_HEADER_BYTES);
      this.#parts = [];
      this.#partsPayload = 0;
      return { payload, sequenceId: parts[0]![3]!, lastSequenceId: seq, packets: parts.length + 1 };
    }
  }

  /** Takes every buffered byte not yet returned as a message, packet headers included. */
  drain(): Buffer {
    const rest = this.#frames.drain();
    if (this.#parts.length === 0) return rest;
    const out = Buffer.concat([...this.#parts, rest]);
    this.#parts = [];
    this.#partsPayload = 0;
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Basic types: length-encoded integers and strings.
// https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_dt_integers.html
//
//   < 0xFB: the value in 1 byte | 0xFC + int<2> | 0xFD + int<3> | 0xFE + int<8>
//   0xFB is NULL in a text row; 0xFF never starts one (it starts an ERR packet).

/** The marker of a NULL value in a text row. */
export const LENENC_NULL = 0xfb;

/** Bytes a length-encoded integer takes. */
export function lenencIntSize(v: number | bigint): number {
  if (v < 0xfb) return 1;
  if (v < 0x10000) return 3;
  if (v < 0x1000000) return 4;
  return 9;
}

/**
 * A length-encoded integer that may be the NULL marker (0xFB) as a bigint, or null. Throws
 * RangeError for a truncated one or for 0xFF.
 */
export function readLenencBigIntOrNull(r: ByteReader): bigint | null {
  const first = r.uint8();
  if (first < 0xfb) return BigInt(first);
  switch (first) {
    case 0xfb:
      return null;
    case 0xfc:
      return BigInt(r.uintLE(2));
    case 0xfd:
      return BigInt(r.uintLE(3));
    case 0xfe: {
      const lo = r.uintLE(4);
      const hi = r.uintLE(4);
      return (BigInt(hi) << 32n) | BigInt(lo);
    }
    default:
      throw new RangeError('0xFF does not start a length-encoded integer');
  }
}

/** A length-encoded integer as a bigint (values up to 2^64 - 1). */
export function readLenencBigInt(r: ByteReader): bigint {
  const v = readLenencBigIntOrNull(r);
  if (v === null) throw new RangeError('unexpected NULL (0xFB) where an integer is required');
  return v;
}

/** A length-encoded integer that may be the NULL marker, as a number or null. */
export function readLenencIntOrNull(r: ByteReader): number | null {
  const first = r.uint8();
  if (first < 0xfb) return first;
  switch (first) {
    case 0xfb:
      return null;
    case 0xfc:
      return r.uintLE(2);
    case 0xfd:
      return r.uintLE(3);
    case 0xfe: {
      const lo = r.uintLE(4);
      const hi = r.uintLE(4);
      if (hi > 0x1fffff) throw new RangeError('length-encoded integer above 2^53');
      return hi * 0x100000000 + lo;
    }
    default:
      throw new RangeError('0xFF does not start a length-encoded integer');
  }
}

/** A length-encoded integer as a number; RangeError when it is NULL, truncated or above 2^53. */
export function readLenencInt(r: ByteReader): number {
  const v = readLenencIntOrNull(r);
  if (v === null) throw new RangeError('unexpected NULL (0xFB) where an integer is required');
  return v;
}

/** A length-encoded string's bytes (a view), or null for the NULL marker. */
export function readLenencBytesOrNull(r: ByteReader): Buffer | null {
  const n = readLenencIntOrNull(r);
  return n === null ? null : r.bytes(n);
}

/** A length-encoded string's bytes (a view). */
export function readLenencBytes(r: ByteReader): Buffer {
  return r.bytes(readLenencInt(r));
}

/** A length-encoded UTF-8 string. */
export function readLenencString(r: ByteReader): string {
  return readLenencBytes(r).toString('utf8');
}

export function writeLenencInt(w: ByteWriter, v: number | bigint): ByteWriter {
  if (typeof v === 'number' && (!Number.isSafeInteger(v) || v < 0)) throw new RangeError(`invalid length-encoded integer ${v}`);
  if (v < 0 || v > 0xffffffffffffffffn) throw new RangeError(`invalid length-encoded integer ${v}`);
  if (v < 0xfb) return w.uint8(Number(v));
  if (v < 0x10000) return w.uint8(0xfc).uintLE(Number(v), 2);
  if (v < 0x1000000) return w.uint8(0xfd).uintLE(Number(v), 3);
  const big = BigInt(v);
  return w
    .uint8(0xfe)
    .uintLE(Number(big & 0xffffffffn), 4)
    .uintLE(Number(big >> 32n), 4);
}

export function writeLenencBytes(w: ByteWriter, b: Uint8Array): ByteWriter {
  return writeLenencInt(w, b.length).bytes(b);
}

export function writeLenencString(w: ByteWriter, s: string): ByteWriter {
  return writeLenencBytes(w, Buffer.from(s, 'utf8'));
}

/**
 * A NUL-terminated string, or the rest of the payload when the NUL is missing (old servers
 * end some strings with the packet instead).
 */
export function readNulOrEofString(r: ByteReader): string {
  try {
    return r.cstring();
  } catch {
    return r.rest().toString('utf8');
  }
}

/**
 * Reads a length-encoded integer from `buf` at `at`, bounds-checked against `end`, for the
 * row paths that walk a payload without a ByteReader. Returns the value (-1 for NULL) and
 * leaves the offset after it in `cursor.at`.
 */
export function lenencAt(buf: Buffer, cursor: { at: number }, end: number): number {
  const at = cursor.at;
  if (at >= end) throw new RangeError('row ends early: a length-encoded integer is missing');
  const first = buf[at]!;
  if (first < 0xfb) {
    cursor.at = at + 1;
    return first;
  }
  switch (first) {
    case 0xfb:
      cursor.at = at + 1;
      return -1;
    case 0xfc:
      if (at + 3 > end) throw new RangeError('row ends early inside a length-encoded integer');
      cursor.at = at + 3;
      return buf[at + 1]! | (buf[at + 2]! << 8);
    case 0xfd:
      if (at + 4 > end) throw new RangeError('row ends early inside a length-encoded integer');
      cursor.at = at + 4;
      return buf[at + 1]! | (buf[at + 2]! << 8) | (buf[at + 3]! << 16);
    case 0xfe: {
      if (at + 9 > end) throw new RangeError('row ends early inside a length-encoded integer');
      const lo = buf.readUInt32LE(at + 1);
      const hi = buf.readUInt32LE(at + 5);
      if (hi > 0x1fffff) throw new RangeError('length-encoded integer above 2^53');
      cursor.at = at + 9;
      return hi * 0x100000000 + lo;
    }
    default:
      throw new RangeError('0xFF does not start a length-encoded integer');
  }
}

/**
 * A cursor over one buffer. Reads are bounds-checked: reading past the end throws a
 * `RangeError` that callers turn into a protocol error. Re-point it with `reset` rather than
 * allocating one per message.
 */
export class ByteReader {
  #buf: Buffer;
  #pos: number;
  #end: number;

  constructor(buf: Buffer = Buffer.alloc(0), start = 0, end = buf.length) {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
  }

  reset(buf: Buffer, start = 0, end = buf.length): this {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
    return this;
  }

  get offset(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#end - this.#pos;
  }

  #need(n: number): void {
    if (this.#pos + n > this.#end) {
      throw new RangeError(`message ends early: needed ${n} more bytes, ${this.#end - this.#pos} left`);
    }
  }

  uint8(): number {
    this.#need(1);
    return this.#buf[this.#pos++]!;
  }

  int16(): number {
    this.#need(2);
    const v = this.#buf.readInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  uint16(): number {
    this.#need(2);
    const v = this.#buf.readUInt16BE(this.#pos);
    this.#pos += 2;
    return v;
  }

  int32(): number {
    this.#need(4);
    const v = this.#buf.readInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  uint32(): number {
    this.#need(4);
    const v = this.#buf.readUInt32BE(this.#pos);
    this.#pos += 4;
    return v;
  }

  /** Little-endian unsigned integer of 1 to 6 bytes (MySQL, TDS). */
  uintLE(bytes: number): number {
    this.#need(bytes);
    const v = this.#buf.readUIntLE(this.#pos, bytes);
    this.#pos += bytes;
    return v;
  }

  /** A NUL-terminated UTF-8 string; the NUL is consumed. */
  cstring(): string {
    const nul = this.#buf.indexOf(0, this.#pos);
    if (nul === -1 || nul >= this.#end) throw new RangeError('string is not NUL-terminated');
    const s = this.#buf.toString('utf8', this.#pos, nul);
    this.#pos = nul + 1;
    return s;
  }

  /** A view of the next `n` bytes (no copy). */
  bytes(n: number): Buffer {
    if (n < 0) throw new RangeError(`negative length ${n}`);
    this.#need(n);
    const v = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }

  /** A view of everything left (no copy). */
  rest(): Buffer {
    const v = this.#buf.subarray(this.#pos, this.#end);
    this.#pos = this.#end;
    return v;
  }

  skip(n: number): void {
    this.#need(n);
    this.#pos += n;
  }
}

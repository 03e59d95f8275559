/**
 * A growable buffer for building messages. `frame()` returns a view of what was written and
 * starts a fresh buffer, so a returned Buffer is never written to again.
 */
export class ByteWriter {
  #buf: Buffer;
  #pos = 0;

  constructor(initialSize = 256) {
    this.#buf = Buffer.allocUnsafe(initialSize);
  }

  get length(): number {
    return this.#pos;
  }

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  uint8(v: number): this {
    this.#ensure(1);
    this.#buf[this.#pos++] = v;
    return this;
  }

  int16(v: number): this {
    this.#ensure(2);
    this.#buf.writeInt16BE(v, this.#pos);
    this.#pos += 2;
    return this;
  }

  uint16(v: number): this {
    this.#ensure(2);
    this.#buf.writeUInt16BE(v, this.#pos);
    this.#pos += 2;
    return this;
  }

  int32(v: number): this {
    this.#ensure(4);
    this.#buf.writeInt32BE(v, this.#pos);
    this.#pos += 4;
    return this;
  }

  uint32(v: number): this {
    this.#ensure(4);
    this.#buf.writeUInt32BE(v, this.#pos);
    this.#pos += 4;
    return this;
  }

  uintLE(v: number, bytes: number): this {
    this.#ensure(bytes);
    this.#buf.writeUIntLE(v, this.#pos, bytes);
    this.#pos += bytes;
    return this;
  }

  /** UTF-8 string followed by NUL. */
  cstring(s: string): this {
    const n = Buffer.byteLength(s);
    this.#ensure(n + 1);
    this.#buf.write(s, this.#pos, 'utf8');
    this.#pos += n;
    this.#buf[this.#pos++] = 0;
    return this;
  }

  string(s: string): this {
    const n = Buffer.byteLength(s);
    this.#ensure(n);
    this.#buf.write(s, this.#pos, 'utf8');
    this.#pos += n;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.#ensure(b.length);
    this.#buf.set(b, this.#pos);
    this.#pos += b.length;
    return this;
  }

  /** Position of a 4-byte big-endian placeholder, to be filled by `patchInt32`. */
  reserveInt32(): number {
    this.#ensure(4);
    const at = this.#pos;
    this.#pos += 4;
    return at;
  }

  patchInt32(at: number, v: number): this {
    this.#buf.writeInt32BE(v, at);
    return this;
  }

  /** Returns what was written and resets the writer to a fresh buffer. */
  finish(): Buffer {
    const out = this.#buf.subarray(0, this.#pos);
    this.#buf = Buffer.allocUnsafe(Math.max(64, this.#buf.length));
    this.#pos = 0;
    return out;
  }
}

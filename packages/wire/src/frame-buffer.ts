/**
 * Reassembles length-prefixed frames from a stream of chunks.
 *
 * INVARIANT: memory handed out (a frame view) is never written again. An incoming chunk is
 * adopted without a copy when nothing is left over; otherwise the leftover and the chunk are
 * joined into a new buffer. A caller may therefore keep frame views (for example queued for a
 * socket write) after pushing more data.
 *
 * A frame larger than {@link ASSEMBLE_ABOVE} that spans chunks is assembled in one buffer of
 * its final size, allocated once its header is known, so a large message costs one copy of
 * its bytes rather than one per chunk.
 */

/** How a protocol frames its messages. */
export interface Framing {
  /** Bytes needed before the total frame length can be known. */
  readonly headerBytes: number;
  /** Total frame length (header included), read from the header at `offset`. */
  frameLength(buf: Buffer, offset: number): number;
}

export interface Frame {
  /** The buffer holding the frame; the frame is `buffer.subarray(start, end)`. */
  readonly buffer: Buffer;
  readonly start: number;
  readonly end: number;
}

export class FrameTooLargeError extends Error {
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`frame of ${size} bytes exceeds the limit of ${limit} bytes`);
    this.name = 'FrameTooLargeError';
  }
}

export class InvalidFrameLengthError extends Error {
  constructor(readonly length: number) {
    super(`invalid frame length ${length}`);
    this.name = 'InvalidFrameLengthError';
  }
}

/** Frames above this size that span chunks are assembled in place (see the module comment). */
export const ASSEMBLE_ABOVE = 64 * 1024;

export class FrameBuffer {
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  #framing: Framing;
  #maxFrameBytes: number;
  /** A large frame being assembled, and how much of it has arrived. */
  #assembly: Buffer | undefined;
  #fill = 0;
  /** A completed assembled frame, returned before anything in `#buf`. */
  #ready: Buffer | undefined;
  /** Reused result object: valid until the next call to `next`. */
  readonly #frame = { buffer: this.#buf, start: 0, end: 0 };

  constructor(framing: Framing, maxFrameBytes: number) {
    this.#framing = framing;
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Switches framing (for example from a startup packet to typed messages); leftover bytes stay. */
  setFraming(framing: Framing): void {
    this.#framing = framing;
  }

  /** Changes the size limit for frames not yet started (for example once a client has logged in). */
  setMaxFrameBytes(limit: number): void {
    this.#maxFrameBytes = limit;
  }

  get buffered(): number {
    return this.#buf.length - this.#pos + (this.#assembly ? this.#fill : 0) + (this.#ready?.length ?? 0);
  }

  push(chunk: Buffer): void {
    if (this.#assembly) {
      const take = Math.min(this.#assembly.length - this.#fill, chunk.length);
      chunk.copy(this.#assembly, this.#fill, 0, take);
      this.#fill += take;
      if (this.#fill < this.#assembly.length) return;
      this.#ready = this.#assembly;
      this.#assembly = undefined;
      this.#fill = 0;
      this.#buf = chunk.subarray(take);
      this.#pos = 0;
      return;
    }
    if (this.#pos >= this.#buf.length) {
      this.#buf = chunk;
    } else {
      const rest = this.#buf.length - this.#pos;
      const joined = Buffer.allocUnsafe(rest + chunk.length);
      this.#buf.copy(joined, 0, this.#pos);
      chunk.copy(joined, rest);
      this.#buf = joined;
    }
    this.#pos = 0;
  }

  /**
   * The next complete frame, or undefined if more bytes are needed. The returned object is
   * reused by the next call; copy its fields if you keep them. Throws FrameTooLargeError or
   * InvalidFrameLengthError for a header that cannot be right; the stream is then unusable.
   */
  next(): Frame | undefined {
    const f = this.#frame;
    if (this.#ready) {
      f.buffer = this.#ready;
      f.start = 0;
      f.end = this.#ready.length;
      this.#ready = undefined;
      return f;
    }
    if (this.#assembly) return undefined;
    const { headerBytes } = this.#framing;
    const avail = this.#buf.length - this.#pos;
    if (avail < headerBytes) return undefined;
    const len = this.#framing.frameLength(this.#buf, this.#pos);
    if (!Number.isInteger(len) || len < headerBytes) throw new InvalidFrameLengthError(len);
    if (len > this.#maxFrameBytes) throw new FrameTooLargeError(len, this.#maxFrameBytes);
    if (avail < len) {
      if (len > ASSEMBLE_ABOVE) {
        this.#assembly = Buffer.allocUnsafe(len);
        this.#fill = this.#buf.copy(this.#assembly, 0, this.#pos);
        this.#buf = Buffer.alloc(0);
        this.#pos = 0;
      }
      return undefined;
    }
    f.buffer = this.#buf;
    f.start = this.#pos;
    f.end = this.#pos + len;
    this.#pos += len;
    return f;
  }

  /** Takes every buffered byte that is not yet a frame (for handing a stream to another reader). */
  drain(): Buffer {
    const parts: Buffer[] = [];
    if (this.#ready) parts.push(this.#ready);
    if (this.#assembly) parts.push(this.#assembly.subarray(0, this.#fill));
    this.#ready = undefined;
    this.#assembly = undefined;
    this.#fill = 0;
    const rest = parts.length ? Buffer.concat([...parts, this.#buf.subarray(this.#pos)]) : this.#buf.subarray(this.#pos);
    this.#buf = Buffer.alloc(0);
    this.#pos = 0;
    return rest;
  }
}

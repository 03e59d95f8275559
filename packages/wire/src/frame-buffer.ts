/**
 * Reassembles length-prefixed frames from a stream of chunks.
 *
 * INVARIANT: memory handed out (a frame view) is never written again. An incoming chunk is
 * adopted without a copy when nothing is left over; otherwise the leftover and the chunk are
 * joined into a new buffer. A caller may therefore keep frame views (for example queued for a
 * socket write) after pushing more data.
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

export class FrameBuffer {
  #buf: Buffer = Buffer.alloc(0);
  #pos = 0;
  #framing: Framing;
  readonly #maxFrameBytes: number;
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

  get buffered(): number {
    return this.#buf.length - this.#pos;
  }

  push(chunk: Buffer): void {
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
    const { headerBytes } = this.#framing;
    const avail = this.#buf.length - this.#pos;
    if (avail < headerBytes) return undefined;
    const len = this.#framing.frameLength(this.#buf, this.#pos);
    if (!Number.isInteger(len) || len < headerBytes) throw new InvalidFrameLengthError(len);
    if (len > this.#maxFrameBytes) throw new FrameTooLargeError(len, this.#maxFrameBytes);
    if (avail < len) return undefined;
    const f = this.#frame;
    f.buffer = this.#buf;
    f.start = this.#pos;
    f.end = this.#pos + len;
    this.#pos += len;
    return f;
  }

  /** Takes every buffered byte that is not yet a frame (for handing a stream to another reader). */
  drain(): Buffer {
    const rest = this.#buf.subarray(this.#pos);
    this.#buf = Buffer.alloc(0);
    this.#pos = 0;
    return rest;
  }
}

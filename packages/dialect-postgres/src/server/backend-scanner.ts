/**
 * Walks the upstream's message stream without copying it. The relay forwards each chunk as
 * it came; the scanner only tells it where messages end and hands over the few messages the
 * gateway must read (CommandComplete, ErrorResponse, ReadyForQuery, ...). DataRows are
 * counted and skipped, never assembled, so a large result costs no extra memory.
 *
 *   Byte1 type | Int32 length (counts itself) | payload
 */
export interface BackendScanHandler {
  /**
   * A message of a collected type is complete. `frame` includes the type byte and may be a
   * copy (when it spanned chunks), cut at 64 KiB for a longer message. `endInChunk` is where it ends in the current chunk.
   */
  onMessage(type: number, frame: Buffer, endInChunk: number): void;
  /** A DataRow header was seen. */
  onDataRow(): void;
}

/**
 * Collected messages are kept up to this many bytes; the rest of a longer one (an error whose
 * message is megabytes long) is skipped. The fields the gateway reads come first.
 */
const MAX_COLLECTED_BYTES = 64 * 1024;

export class BackendScanner {
  readonly #collect: Uint8Array;
  /** Header bytes of the current message (5 when complete). */
  readonly #header = Buffer.alloc(5);
  #headerFill = 0;
  /** Payload bytes of the current message still to come. */
  #remaining = 0;
  /** When collecting a message that spans chunks: its bytes so far. */
  #parts: Buffer[] | undefined;
  #partsLength = 0;

  /** @param collectTypes message type bytes the handler wants (cut at 64 KiB). */
  constructor(collectTypes: Iterable<number>) {
    this.#collect = new Uint8Array(256);
    for (const t of collectTypes) this.#collect[t] = 1;
  }

  /**
   * Collects messages of `type` from now on; `whole`: never cut (rows the gateway rewrites,
   * which it must have entire whatever their size).
   */
  collect(type: number, whole = false): void {
    this.#collect[type] = whole ? 2 : 1;
  }

  /** True when messages of `type` are collected. */
  collects(type: number): boolean {
    return this.#collect[type] !== 0;
  }

  /** Where the unfinished message began in the last chunk scanned (-1: in an earlier chunk). */
  #pendingStart = -1;
  /** Type of the unfinished message (-1 while its header is incomplete). */
  #pendingType = -1;

  /** True between messages: nothing of a message has been seen without its end. */
  get atBoundary(): boolean {
    return this.#remaining === 0 && this.#headerFill === 0;
  }

  /**
   * When the last chunk ended inside a message: where that message began in the chunk, or -1
   * when it began in an earlier one.
   */
  get pendingStart(): number {
    return this.#pendingStart;
  }

  /** When the last chunk ended inside a message: its type, or -1 while its header is incomplete. */
  get pendingType(): number {
    return this.#pendingType;
  }

  scan(chunk: Buffer, handler: BackendScanHandler): void {
    this.#pendingStart = -1;
    let at = 0;
    const n = chunk.length;
    while (at < n) {
      if (this.#remaining > 0) {
        // Inside a payload that started in an earlier chunk.
        const take = Math.min(this.#remaining, n - at);
        if (this.#parts && this.#partsLength < this.#limit) {
          const keep = Math.min(take, this.#limit - this.#partsLength);
          this.#parts.push(chunk.subarray(at, at + keep));
          this.#partsLength += keep;
        }
        this.#remaining -= take;
        at += take;
        if (this.#remaining === 0) this.#finishSpanning(handler, at);
        continue;
      }
      if (this.#headerFill === 0 && n - at >= 5) {
        // Fast path: the whole header is in this chunk.
        const type = chunk[at]!;
        const len = chunk.readInt32BE(at + 1);
        if (len < 4) throw new RangeError(`upstream sent a message with invalid length ${len}`);
        const end = at + 1 + len;
        if (type === 0x44 /* DataRow */) handler.onDataRow();
        if (end <= n) {
          if (this.#collect[type] !== 0) handler.onMessage(type, chunk.subarray(at, end), end);
          at = end;
        } else {
          this.#begin(type, len, chunk.subarray(at, n));
          this.#remaining = end - n;
          this.#pendingStart = at;
          this.#pendingType = type;
          at = n;
        }
        continue;
      }
      // Header split across chunks.
      if (this.#headerFill === 0) {
        this.#pendingStart = at;
        this.#pendingType = -1;
      }
      const take = Math.min(5 - this.#headerFill, n - at);
      chunk.copy(this.#header, this.#headerFill, at, at + take);
      this.#headerFill += take;
      at += take;
      if (this.#headerFill < 5) break;
      this.#headerFill = 0;
      const type = this.#header[0]!;
      const len = this.#header.readInt32BE(1);
      if (len < 4) throw new RangeError(`upstream sent a message with invalid length ${len}`);
      if (type === 0x44) handler.onDataRow();
      this.#pendingType = type;
      this.#begin(type, len, Buffer.from(this.#header));
      this.#remaining = len - 4;
      if (this.#remaining === 0) this.#finishSpanning(handler, at);
    }
  }

  /** How much of the collected message being assembled is kept. */
  #limit = MAX_COLLECTED_BYTES;

  #begin(type: number, len: number, first: Buffer): void {
    const mode = this.#collect[type];
    if (mode !== 0) {
      this.#limit = mode === 2 ? Number.MAX_SAFE_INTEGER : MAX_COLLECTED_BYTES;
      const keep = first.subarray(0, this.#limit);
      this.#parts = [keep];
      this.#partsLength = keep.length;
    } else {
      this.#parts = undefined;
    }
  }

  #finishSpanning(handler: BackendScanHandler, endInChunk: number): void {
    const parts = this.#parts;
    if (!parts) return;
    this.#parts = undefined;
    const frame = Buffer.concat(parts, this.#partsLength);
    handler.onMessage(frame[0]!, frame, endInChunk);
  }
}

/**
 * A bounded on-disk queue of JSON lines: what the OpenLineage HTTP sink has not delivered yet.
 *
 * The directory holds append-only segment files `openlineage-000001.jsonl`, ... and a cursor
 * file, `cursor.json`, naming the segment and byte offset of the first undelivered line.
 * Appends are buffered in memory and written in batches (one write and one fdatasync per
 * batch, one batch at a time); only lines that are on disk are handed to the reader. A segment
 * is closed once it passes `segmentBytes`, or once every line in it was delivered, and removed
 * once the cursor moved past it. A new queue on the same directory starts a new segment and
 * reads from the cursor, so lines left by an earlier process come first, in order.
 *
 * The cursor is rewritten (write, then rename) after every delivered line. A process that dies
 * between a delivery and that rewrite sends the line again after the restart; a clean close
 * leaves no such duplicate. A torn last line (a write cut short by a crash) is ignored.
 *
 * `maxBytes` bounds the bytes of undelivered lines, buffered or on disk; an append past it is
 * refused. A directory must be used by one queue at a time.
 */
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { syncDirectory, writeFully } from '../util/durable-file.js';

export interface OpenLineageQueueOptions {
  readonly dir: string;
  /** Bytes of undelivered lines past which appends are refused. */
  readonly maxBytes: number;
  /** Size past which a new segment is started. */
  readonly segmentBytes: number;
  readonly logger: Logger;
  /** Wait before a failed write is tried again. Default 1,000 ms. */
  readonly writeRetryMs?: number;
}

/** A line on disk, not yet acknowledged. */
export interface QueueEntry {
  readonly line: string;
  readonly segment: number;
  /** Offset just past the line's newline. */
  readonly end: number;
  /** Bytes the line takes on disk, newline included. */
  readonly bytes: number;
}

interface Cursor {
  segment: number;
  offset: number;
}

const SEGMENT_PATTERN = /^openlineage-(\d+)\.jsonl$/;
const CURSOR_FILE = 'cursor.json';
const READ_CHUNK = 1024 * 1024;
const NEWLINE = 0x0a;

export function queueSegmentName(segment: number): string {
  return `openlineage-${String(segment).padStart(6, '0')}.jsonl`;
}

export class OpenLineageQueue {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #logger: Logger;
  readonly #writeRetryMs: number;
  /** Resolves once the directory was read; rejects when it cannot be used. */
  readonly ready: Promise<void>;

  #failed = false;
  #closed = false;
  /** Lines appended and not yet written. */
  #pending: string[] = [];
  /** Undelivered lines and their bytes, buffered or on disk. */
  #count = 0;
  #bytes = 0;
  /** Segments at or after the cursor with the bytes of whole lines written to each. */
  readonly #segments = new Map<number, number>();
  #writeSegment = 1;
  #writeHandle: FileHandle | undefined;
  #writeSize = 0;
  #writing: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #cursor: Cursor = { segment: 1, offset: 0 };
  /** Lines read ahead from the cursor's segment, starting at the cursor. */
  #readAhead: QueueEntry[] = [];
  #dataWaiters: (() => void)[] = [];

  constructor(options: OpenLineageQueueOptions) {
    this.#dir = options.dir;
    this.#maxBytes = options.maxBytes;
    this.#segmentBytes = options.segmentBytes;
    this.#logger = options.logger;
    this.#writeRetryMs = options.writeRetryMs ?? 1000;
    this.ready = this.#open();
    this.ready.then(
      () => this.#scheduleWrite(),
      () => {
        this.#failed = true;
      },
    );
  }

  /** Undelivered lines (buffered or on disk). */
  get count(): number {
    return this.#count;
  }

  /** Bytes of the undelivered lines. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Lines appended but not yet written and synced. */
  get unwritten(): number {
    return this.#pending.length;
  }

  /** Queues a line (without its newline). False, and nothing queued, when the queue is full, failed or closed. */
  append(line: string): boolean {
    if (this.#closed || this.#failed) return false;
    const size = Buffer.byteLength(line) + 1;
    if (this.#bytes + size > this.#maxBytes) return false;
    this.#pending.push(line);
    this.#count += 1;
    this.#bytes += size;
    this.#scheduleWrite();
    return true;
  }

  /**
   * The first undelivered line that is on disk, or undefined when there is none (yet). The same
   * entry is returned until it is acknowledged.
   */
  async next(): Promise<QueueEntry | undefined> {
    await this.ready;
    for (;;) {
      const head = this.#readAhead[0];
      if (head !== undefined) return head;
      const segment = this.#cursor.segment;
      const written = this.#segments.get(segment);
      if (written !== undefined && this.#cursor.offset < written) {
        const before = this.#cursor.offset;
        await this.#readFrom(segment, before, written);
        if (this.#readAhead.length === 0 && this.#cursor.offset === before) {
          // No whole line where one should be (the file was changed under the queue): skip it.
          this.#logger.warn({ segment, offset: before }, 'OpenLineage queue: unreadable bytes in a segment skipped');
          this.#skip(written - before);
          this.#cursor.offset = written;
        }
        continue;
      }
      if (segment < this.#writeSegment) {
        await this.#leaveSegment(segment);
        continue;
      }
      // Caught up with the segment being written. When it holds only delivered lines and
      // nothing is about to be written, close it so that it can be removed.
      if (written !== undefined && written > 0 && this.#pending.length === 0 && this.#writing === undefined && !this.#closed) {
        const handle = this.#writeHandle;
        this.#writeHandle = undefined;
        this.#writeSegment += 1;
        this.#writeSize = 0;
        await handle?.close().catch(() => undefined);
        continue;
      }
      return undefined;
    }
  }

  /** Marks `entry` (the one `next` returned) delivered or given up, and moves the cursor past it. */
  async ack(entry: QueueEntry): Promise<void> {
    if (this.#readAhead[0] !== entry) return;
    this.#readAhead.shift();
    this.#cursor.offset = entry.end;
    this.#count -= 1;
    this.#bytes -= entry.bytes;
    await this.#saveCursor();
  }

  /** Resolves when more lines reach the disk, or when the queue is closed. */
  waitForData(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#dataWaiters.push(resolve));
  }

  /** Writes what is buffered and closes the segment being written; undelivered lines stay on disk. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#wakeReaders();
    try {
      await this.ready;
    } catch {
      return;
    }
    // One last attempt for what is buffered (a failing disk is not retried any more).
    while (this.#writing !== undefined) await this.#writing;
    if (this.#pending.length > 0) await this.#writeBatches();
    const handle = this.#writeHandle;
    this.#writeHandle = undefined;
    await handle?.close().catch(() => undefined);
  }

  async #open(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    const segments = (await readdir(this.#dir))
      .map((name) => SEGMENT_PATTERN.exec(name)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const cursor = await this.#readCursor(segments[0] ?? 1);
    let lineCount = 0;
    let lineBytes = 0;
    for (const segment of segments) {
      if (segment < cursor.segment) {
        await unlink(join(this.#dir, queueSegmentName(segment))).catch(() => undefined);
        continue;
      }
      const start = segment === cursor.segment ? cursor.offset : 0;
      const { whole, lines } = await scanLines(join(this.#dir, queueSegmentName(segment)), start);
      if (segment === cursor.segment && cursor.offset > whole) cursor.offset = whole;
      this.#segments.set(segment, whole);
      lineCount += lines;
      lineBytes += Math.max(0, whole - start);
    }
    this.#cursor = cursor;
    // Lines appended while the directory was being read are already counted.
    this.#count += lineCount;
    this.#bytes += lineBytes;
    const last = segments.at(-1);
    this.#writeSegment = Math.max(last === undefined ? 1 : last + 1, cursor.segment);
    if (lineCount > 0) this.#logger.info({ dir: this.#dir, events: lineCount, bytes: lineBytes }, 'OpenLineage queue: undelivered events found on disk');
  }

  async #readCursor(fallback: number): Promise<Cursor> {
    let text: string;
    try {
      text = await readFile(join(this.#dir, CURSOR_FILE), 'utf8');
    } catch {
      return { segment: fallback, offset: 0 };
    }
    try {
      const parsed = JSON.parse(text) as { segment?: unknown; offset?: unknown };
      const { segment, offset } = parsed;
      if (typeof segment === 'number' && Number.isSafeInteger(segment) && segment >= 1 && typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0) {
        return { segment, offset };
      }
    } catch {
      // fall through
    }
    this.#logger.warn({ dir: this.#dir }, 'OpenLineage queue: unreadable cursor file; replaying every queued event');
    return { segment: fallback, offset: 0 };
  }

  async #saveCursor(): Promise<void> {
    const file = join(this.#dir, CURSOR_FILE);
    try {
      await writeFile(`${file}.tmp`, JSON.stringify(this.#cursor));
      await rename(`${file}.tmp`, file);
    } catch (err) {
      this.#logger.warn({ err, dir: this.#dir }, 'OpenLineage queue: could not save the cursor; delivered events may be sent again after a restart');
    }
  }

  /** Moves the cursor to the next segment and removes this one (and any empty ones skipped). */
  async #leaveSegment(segment: number): Promise<void> {
    let next = this.#writeSegment;
    for (const s of this.#segments.keys()) if (s > segment && s < next) next = s;
    this.#cursor = { segment: next, offset: 0 };
    this.#readAhead = [];
    await this.#saveCursor();
    for (let s = segment; s < next; s++) {
      this.#segments.delete(s);
      await unlink(join(this.#dir, queueSegmentName(s))).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') this.#logger.warn({ err, segment: s }, 'OpenLineage queue: could not remove a delivered segment');
      });
    }
  }

  /** Reads whole lines of `segment` from `offset` (before `written`) into the read-ahead. */
  async #readFrom(segment: number, offset: number, written: number): Promise<void> {
    const handle = await open(join(this.#dir, queueSegmentName(segment)), 'r');
    try {
      let length = Math.min(READ_CHUNK, written - offset);
      for (;;) {
        const buffer = Buffer.alloc(length);
        const { bytesRead } = await handle.read(buffer, 0, length, offset);
        const lastNewline = buffer.subarray(0, bytesRead).lastIndexOf(NEWLINE);
        if (lastNewline < 0) {
          if (bytesRead < length || offset + length >= written) return;
          length = Math.min(length * 2, written - offset);
          continue;
        }
        // Blank lines (only a damaged file has them) count towards the entry that follows them.
        let start = 0;
        let from = 0;
        while (start <= lastNewline) {
          const end = buffer.indexOf(NEWLINE, start);
          const line = buffer.toString('utf8', start, end);
          if (line.trim() !== '') {
            this.#readAhead.push({ line, segment, end: offset + end + 1, bytes: end + 1 - from });
            from = end + 1;
          }
          start = end + 1;
        }
        if (this.#readAhead.length === 0) {
          this.#skip(lastNewline + 1);
          this.#cursor.offset = offset + lastNewline + 1;
        }
        return;
      }
    } finally {
      await handle.close();
    }
  }

  /** Forgets bytes passed over without an entry. */
  #skip(bytes: number): void {
    this.#bytes = Math.max(0, this.#bytes - bytes);
  }

  #scheduleWrite(): void {
    if (this.#failed || this.#writing !== undefined || this.#retryTimer !== undefined || this.#pending.length === 0 || this.#closed) return;
    const run = async (): Promise<void> => {
      await this.ready;
      await new Promise<void>((resolve) => setImmediate(resolve));
      await this.#writeBatches();
    };
    this.#writing = run()
      .catch(() => undefined)
      .finally(() => {
        this.#writing = undefined;
        this.#scheduleWrite();
      });
  }

  /** Writes the buffered lines, batch after batch; on a failure schedules a retry and returns. */
  async #writeBatches(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      this.#pending = [];
      const data = Buffer.from(batch.join('\n') + '\n');
      if (this.#writeSize > 0 && this.#writeSize + data.length > this.#segmentBytes) {
        const full = this.#writeHandle;
        this.#writeHandle = undefined;
        this.#writeSegment += 1;
        this.#writeSize = 0;
        await full?.close().catch(() => undefined);
      }
      const segment = this.#writeSegment;
      try {
        if (this.#writeHandle === undefined) {
          this.#writeHandle = await open(join(this.#dir, queueSegmentName(segment)), 'a');
          await syncDirectory(this.#dir);
        }
        await writeFully(this.#writeHandle, data);
        await this.#writeHandle.datasync();
      } catch (err) {
        this.#pending = [...batch, ...this.#pending];
        await this.#recoverFromWriteFailure(err);
        return;
      }
      this.#writeSize += data.length;
      this.#segments.set(segment, this.#writeSize);
      this.#wakeReaders();
    }
  }

  async #recoverFromWriteFailure(err: unknown): Promise<void> {
    this.#logger.error(
      { err, dir: this.#dir, buffered: this.#pending.length },
      'OpenLineage queue: writing events to disk failed; they stay buffered and the write is retried',
    );
    // Cut off what part of the batch may have reached the file; failing that, start a new segment.
    const handle = this.#writeHandle;
    this.#writeHandle = undefined;
    let truncated = false;
    if (handle !== undefined) {
      truncated = await handle.truncate(this.#writeSize).then(
        () => true,
        () => false,
      );
      await handle.close().catch(() => undefined);
    }
    if (!truncated && this.#writeSize > 0) {
      this.#writeSegment += 1;
      this.#writeSize = 0;
    }
    if (this.#closed) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#scheduleWrite();
    }, this.#writeRetryMs);
    this.#retryTimer.unref();
  }

  #wakeReaders(): void {
    const waiters = this.#dataWaiters;
    this.#dataWaiters = [];
    for (const wake of waiters) wake();
  }
}

/** Counts the non-blank whole lines of a file from `start`; `whole` is the offset just past the last newline. */
async function scanLines(path: string, start: number): Promise<{ whole: number; lines: number }> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(READ_CHUNK);
    let position = start;
    let whole = start;
    let lines = 0;
    let lineHasContent = false;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      for (let i = 0; i < bytesRead; i++) {
        const byte = buffer[i];
        if (byte === NEWLINE) {
          if (lineHasContent) lines += 1;
          lineHasContent = false;
          whole = position + i + 1;
        } else if (byte !== 0x20 && byte !== 0x0d && byte !== 0x09) {
          lineHasContent = true;
        }
      }
      position += bytesRead;
    }
    return { whole, lines };
  } finally {
    await handle.close();
  }
}

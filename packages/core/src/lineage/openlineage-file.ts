/**
 * Writes OpenLineage RunEvents to a file, one JSON event per line, appended (the convention of
 * OpenLineage's file transport). `emit` buffers the line; buffered lines are written in
 * batches, one write at a time; `flush` writes what is buffered and syncs the file to disk.
 * Lines buffered past `maxBufferedBytes` (a stalled or failing disk) are dropped, counted and
 * logged; a failed write is logged and its lines are kept and written with the next batch.
 */
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';
import { toOpenLineageEvent, type OpenLineageEventOptions } from './openlineage.js';
import type { RunEvent, RunEventSink } from './types.js';
import { writeFully } from '../util/durable-file.js';

export interface OpenLineageFileSinkOptions extends OpenLineageEventOptions {
  /** The file appended to; it and its directory are created when missing. */
  readonly path: string;
  /** Bytes waiting to be written past which new events are dropped. Default 16 MiB. */
  readonly maxBufferedBytes?: number;
  /** Default wait of `flush()` without a timeout. Default 10,000 ms. */
  readonly flushTimeoutMs?: number;
  /** Where write failures and drops are reported. Default: a pino logger on stdout. */
  readonly logger?: Logger;
}

export interface OpenLineageFileSinkStats {
  /** Events written to the file. */
  readonly written: number;
  /** Events waiting to be written. */
  readonly buffered: number;
  /** Events dropped: buffer full, sink closed or not serialisable. */
  readonly dropped: number;
}

export interface OpenLineageFileSink extends RunEventSink {
  stats(): OpenLineageFileSinkStats;
}

const DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
const DEFAULT_FLUSH_TIMEOUT_MS = 10_000;
const WRITE_RETRY_MS = 1000;

export function createFileSink(options: OpenLineageFileSinkOptions): OpenLineageFileSink {
  return new FileSink(options);
}

class FileSink implements OpenLineageFileSink {
  readonly #options: OpenLineageFileSinkOptions;
  readonly #logger: Logger;
  readonly #maxBufferedBytes: number;
  #buffer: string[] = [];
  #bufferedBytes = 0;
  #handle: FileHandle | undefined;
  #writing: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #written = 0;
  #dropped = 0;
  #lastError: unknown;

  constructor(options: OpenLineageFileSinkOptions) {
    this.#options = options;
    this.#logger = options.logger ?? pino({ name: 'openlineage-file' });
    this.#maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  }

  emit(event: RunEvent): void {
    try {
      if (this.#closed) {
        this.#drop('the sink is closed');
        return;
      }
      const line = JSON.stringify(toOpenLineageEvent(event, this.#options)) + '\n';
      const size = Buffer.byteLength(line);
      if (this.#bufferedBytes + size > this.#maxBufferedBytes) {
        this.#drop('the write buffer is full');
        return;
      }
      this.#buffer.push(line);
      this.#bufferedBytes += size;
      this.#schedule();
    } catch (err) {
      this.#dropped += 1;
      try {
        this.#logger.error({ err }, 'OpenLineage file: a run event could not be serialised; dropped');
      } catch {
        // A failing logger must not reach the caller.
      }
    }
  }

  async flush(timeoutMs: number = this.#options.flushTimeoutMs ?? DEFAULT_FLUSH_TIMEOUT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    try {
      await Promise.race([this.#drainAndSync(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await this.#drainAndSync();
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close().catch(() => undefined);
  }

  stats(): OpenLineageFileSinkStats {
    return { written: this.#written, buffered: this.#buffer.length, dropped: this.#dropped };
  }

  /** Writes what is buffered now (once, without waiting for retries) and syncs the file. */
  async #drainAndSync(): Promise<void> {
    while (this.#writing !== undefined) await this.#writing;
    if (this.#buffer.length > 0) {
      this.#writing = this.#write().finally(() => {
        this.#writing = undefined;
      });
      await this.#writing;
    }
    try {
      await this.#handle?.sync();
    } catch (err) {
      this.#logger.error({ err, path: this.#options.path }, 'OpenLineage file: syncing the file failed');
    }
  }

  #schedule(): void {
    if (this.#writing !== undefined || this.#retryTimer !== undefined || this.#buffer.length === 0) return;
    this.#writing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.#write())
      .finally(() => {
        this.#writing = undefined;
        if (!this.#closed) this.#schedule();
      });
  }

  /** Writes the buffered lines in one write; on failure keeps them and schedules a retry. */
  async #write(): Promise<void> {
    const lines = this.#buffer;
    const bytes = this.#bufferedBytes;
    this.#buffer = [];
    this.#bufferedBytes = 0;
    try {
      if (this.#handle === undefined) {
        await mkdir(dirname(this.#options.path), { recursive: true });
        this.#handle = await open(this.#options.path, 'a');
      }
      await writeFully(this.#handle, Buffer.from(lines.join('')));
      this.#written += lines.length;
      this.#lastError = undefined;
    } catch (err) {
      this.#buffer = [...lines, ...this.#buffer];
      this.#bufferedBytes += bytes;
      if (this.#lastError === undefined) {
        this.#logger.error({ err, path: this.#options.path, buffered: this.#buffer.length }, 'OpenLineage file: writing run events failed; retrying');
      }
      this.#lastError = err;
      // A handle that failed may be broken for good: open the file again next time.
      const handle = this.#handle;
      this.#handle = undefined;
      await handle?.close().catch(() => undefined);
      if (!this.#closed) {
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#schedule();
        }, WRITE_RETRY_MS);
        this.#retryTimer.unref();
      }
    }
  }

  #drop(reason: string): void {
    this.#dropped += 1;
    if (this.#dropped === 1 || this.#dropped % 1000 === 0) {
      this.#logger.error({ dropped: this.#dropped, path: this.#options.path }, `OpenLineage file: run events DROPPED, ${reason}`);
    }
  }
}

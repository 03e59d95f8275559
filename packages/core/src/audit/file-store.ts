/**
 * The embedded audit store: an append-only, hash-chained JSON-lines log in a directory.
 *
 * The directory holds segment files `audit-000001.jsonl`, `audit-000002.jsonl`, ... written in
 * order; one chain (seq, prev, hash) runs across all of them. The line format is described in
 * `chain.ts`. A new segment is started when a line would make the current one larger than
 * `segmentBytes` (lines are never split, and lines written while the new file opens still go to
 * the current one, so a segment may end somewhat past the limit).
 *
 * Appends are assigned their place in the chain synchronously and their line is handed to the
 * operating system at once (one write(2) into its page cache, on the caller's turn), so a record
 * survives the gateway process being killed as soon as the append returns: a session records a
 * statement's outcome before it writes the reply, and a client that saw a result can rely on its
 * record. Syncing to stable storage (fdatasync) is batched: a durable append starts a sync right
 * away (appends made in the same tick join it); other appends are synced within
 * `groupCommitMs`. While the next segment is being opened, lines keep going to the current one.
 * The write is a synchronous system call on the gateway's thread: a disk that stops accepting
 * writes into the page cache stalls the gateway rather than letting it answer without a record
 * (a sync that does not finish within `writeTimeoutMs` fails the store). After any write or sync
 * failure the store is unhealthy for good: every append waiting
 * for its sync and every later append is rejected.
 *
 * A directory must be written by one store at a time; nothing here guards against two processes
 * appending to the same directory.
 */
import type { FileHandle } from 'node:fs/promises';
import { writeSync } from 'node:fs';
import { mkdir, open, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { GENESIS_HASH, encodeRecordLine, isHash, sha256Hex } from './chain.js';
import { GroupCommit } from './group-commit.js';
import { listSegments, readTail, segmentFileName } from './segments.js';
import type { AuditAppendOptions, AuditEvent, AuditLink, AuditRecord, AuditStore } from './types.js';
import { withDeadline } from '../util/deadline.js';
import { syncDirectory } from '../util/durable-file.js';

export interface FileAuditStoreLogger {
  error(obj: object, msg: string): void;
}

export interface FileAuditStoreOptions {
  /** Directory of the segment files; created (recursively) when missing. */
  readonly dir: string;
  /** Longest wait, in ms, before a non-durable append is written. Default 50. */
  readonly groupCommitMs?: number;
  /** Size, in bytes, past which a new segment is started. Default 64 MiB. */
  readonly segmentBytes?: number;
  /** Where repairs and write failures are reported. Default: stderr. */
  readonly logger?: FileAuditStoreLogger;
  /**
   * A batch whose write and fsync take longer than this (a stalled disk) fails the store, so
   * statements are refused instead of waiting forever. Default 10,000 ms.
   */
  readonly writeTimeoutMs?: number;
  /** Records waiting to be written past which the store fails closed. Default 500,000. */
  readonly maxPendingRecords?: number;
}

/** Counters of the store's work since it was opened. */
export interface FileAuditStoreStats {
  /** Batches written (each is one write and one fdatasync). */
  readonly batches: number;
  /** Records written and synced. */
  readonly records: number;
  /** fdatasync calls on segment files. */
  readonly syncs: number;
  /** New segments started since open. */
  readonly rotations: number;
  /** Number of the segment being appended to. */
  readonly segment: number;
  /** Seq of the last record appended (buffered or written); 0 for an empty log. */
  readonly lastSeq: number;
}

const DEFAULT_GROUP_COMMIT_MS = 50;
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

interface Waiter {
  readonly seq: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/** The last line of the log cannot be read as a record: the chain cannot be continued. */
class ChainEndError extends Error {}

const stderrLogger: FileAuditStoreLogger = {
  error(obj, msg) {
    console.error(`[audit] ${msg}`, obj);
  },
};

export class FileAuditStore implements AuditStore {
  readonly #dir: string;
  readonly #groupCommitMs: number;
  readonly #segmentBytes: number;
  readonly #logger: FileAuditStoreLogger;
  readonly #writeTimeoutMs: number;
  readonly #maxPending: number;

  #fh: FileHandle;
  #segment: number;
  #segmentSize: number;
  /** Segment files written since the last sync and left behind by a rotation: synced, then closed. */
  #retired: FileHandle[] = [];
  /** A new segment was started since the last sync: its directory entry must be synced too. */
  #newSegment = false;

  #seq: number;
  #prev: string;
  /** Highest seq handed to the operating system (it survives the process dying). */
  #writtenSeq: number;
  /** Highest seq that is written and synced. */
  #syncedSeq: number;

  #rotating: Promise<void> | null = null;
  /** Appends waiting for their record to be synced, in seq order. */
  #waiters: Waiter[] = [];
  readonly #commit: GroupCommit;
  #failure: Error | null = null;
  #closed = false;
  #closing: Promise<void> | null = null;

  #batches = 0;
  #records = 0;
  #syncs = 0;
  #rotations = 0;

  private constructor(
    options: Required<FileAuditStoreOptions>,
    fh: FileHandle,
    segment: number,
    segmentSize: number,
    lastSeq: number,
    lastHash: string,
  ) {
    this.#dir = options.dir;
    this.#groupCommitMs = options.groupCommitMs;
    this.#segmentBytes = options.segmentBytes;
    this.#logger = options.logger;
    this.#writeTimeoutMs = options.writeTimeoutMs;
    this.#maxPending = options.maxPendingRecords;
    this.#fh = fh;
    this.#segment = segment;
    this.#segmentSize = segmentSize;
    this.#seq = lastSeq;
    this.#writtenSeq = lastSeq;
    this.#syncedSeq = lastSeq;
    this.#prev = lastHash;
    this.#commit = new GroupCommit(options.groupCommitMs, {
      canRun: () => true,
      hasWork: () => this.#syncedSeq !== this.#seq && this.#failure === null,
      run: () => this.#syncBatch(),
    });
  }

  /**
   * Opens (or creates) the store in `options.dir` and continues the chain from the last record
   * of the last segment. A torn last line (a partial write cut short by a crash) is truncated
   * away and logged; a last complete line that is not a record is an error.
   */
  static async open(options: FileAuditStoreOptions): Promise<FileAuditStore> {
    const groupCommitMs = options.groupCommitMs ?? DEFAULT_GROUP_COMMIT_MS;
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isFinite(groupCommitMs) || groupCommitMs < 0) {
      throw new RangeError(`groupCommitMs must be a non-negative number, got ${groupCommitMs}`);
    }
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes <= 0) {
      throw new RangeError(`segmentBytes must be a positive integer, got ${segmentBytes}`);
    }
    const resolved: Required<FileAuditStoreOptions> = {
      dir: options.dir,
      groupCommitMs,
      segmentBytes,
      logger: options.logger ?? stderrLogger,
      writeTimeoutMs: options.writeTimeoutMs ?? 10_000,
      maxPendingRecords: options.maxPendingRecords ?? 500_000,
    };
    const dir = options.dir;
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw new Error(`the audit store cannot create its directory ${dir}: ${(err as Error).message}`, {
        cause: err,
      });
    }

    let lastSeq = 0;
    let lastHash = GENESIS_HASH;
    let segmentSize = 0;
    let segment = 1;
    let fresh = true;
    try {
      const segments = await listSegments(dir);
      const last = segments.at(-1);
      if (last) {
        fresh = false;
        segment = last.number;
        // Walk back over empty segments (a crash right after a rotation leaves one).
        for (let i = segments.length - 1; i >= 0; i--) {
          const file = segments[i]!;
          const { line, size } = await lastLineOf(file.path, file.name, resolved.logger);
          if (i === segments.length - 1) segmentSize = size;
          if (line === null) continue;
          const found = parseChainEnd(line, file.name);
          lastSeq = found.seq;
          lastHash = found.hash;
          break;
        }
      }
    } catch (err) {
      if (err instanceof ChainEndError) throw err;
      throw new Error(`the audit store cannot read ${dir}: ${(err as Error).message}`, { cause: err });
    }

    const path = join(dir, segmentFileName(segment));
    let fh: FileHandle;
    try {
      fh = await open(path, 'a');
      if (fresh) await syncDirectory(dir);
    } catch (err) {
      throw new Error(`the audit store cannot write to ${dir}: ${(err as Error).message}`, { cause: err });
    }
    return new FileAuditStore(resolved, fh, segment, segmentSize, lastSeq, lastHash);
  }

  /** The store's directory. */
  get dir(): string {
    return this.#dir;
  }

  /** False once a write or sync has failed, and after close. */
  get healthy(): boolean {
    return this.#failure === null && !this.#closed;
  }

  get stats(): FileAuditStoreStats {
    return {
      batches: this.#batches,
      records: this.#records,
      syncs: this.#syncs,
      rotations: this.#rotations,
      segment: this.#segment,
      lastSeq: this.#seq,
    };
  }

  /** Hash of the last record appended (the chain head), or 64 zeros for an empty log. */
  get lastHash(): string {
    return this.#prev;
  }

  append(event: AuditEvent, options: AuditAppendOptions): Promise<AuditRecord> {
    const body: Record<string, unknown> = { ...event };
    if ('hash' in body) delete body['hash'];
    let json: string;
    try {
      json = JSON.stringify(body);
    } catch (err) {
      const why = (err as Error).message;
      return Promise.reject(new Error(`the audit event cannot be serialized: ${why}`, { cause: err }));
    }
    return this.#chainAndQueue(json, options.durable).then(({ seq, prev, hash }) => ({ ...body, seq, prev, hash }) as unknown as AuditRecord);
  }

  appendJson(json: string, options: AuditAppendOptions): Promise<AuditLink> {
    return this.#chainAndQueue(json, options.durable);
  }

  /**
   * Appends without a promise. The record is handed to the operating system before this
   * returns (so it survives the gateway process being killed the moment after), and synced
   * with the next batch.
   */
  enqueueJson(json: string): void {
    if (this.#failure || this.#closed) {
      // The caller does not wait: the failure is already logged and `healthy` is false.
      return;
    }
    this.#chain(json);
    if (this.#failure) return;
    this.#commit.soon();
  }

  #chainAndQueue(json: string, durable: boolean): Promise<AuditLink> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error(`the audit store at ${this.#dir} is closed`));
    const link = this.#chain(json);
    if (this.#failure) return Promise.reject(this.#failure);
    const done = new Promise<void>((resolve, reject) => {
      this.#waiters.push({ seq: link.seq, resolve, reject });
    });
    if (durable) this.#commit.now();
    else this.#commit.soon();
    return done.then(() => link);
  }

  /**
   * Links one event (JSON object text without seq, prev, hash) into the chain and writes its
   * line. The chain order is the call order, and so is the order of the lines in the file.
   */
  #chain(json: string): AuditLink {
    const seq = this.#seq + 1;
    const prev = this.#prev;
    const open = json.length > 2 ? `${json.slice(0, -1)},` : '{';
    const body = `${open}"seq":${seq},"prev":"${prev}"}`;
    const hash = sha256Hex(body);
    this.#seq = seq;
    this.#prev = hash;
    this.#write(`${encodeRecordLine(body, hash)}\n`, seq);
    if (this.#waiters.length > this.#maxPending && this.#failure === null) {
      // The disk does not keep up: refuse rather than hold an unbounded backlog in memory.
      this.#fail(new Error(`more than ${this.#maxPending} records are waiting to be written`));
    }
    return { seq, prev, hash };
  }

  /**
   * Hands a line to the operating system now (one write(2) into its page cache, no sync), so
   * that nothing the gateway has answered for is only in its own memory. While a new segment is
   * being opened the line waits for it, in order.
   */
  #write(line: string, seq: number): void {
    if (this.#failure) return;
    const data = Buffer.from(line, 'utf8');
    if (this.#rotating === null && this.#segmentSize > 0 && this.#segmentSize + data.length > this.#segmentBytes) {
      // The next segment is opened in the background; lines keep going to this one until it is
      // open (a segment may end a few lines past the limit), so none waits in memory.
      this.#rotating = this.#rotate();
    }
    try {
      writeAllSync(this.#fh.fd, data);
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#segmentSize += data.length;
    this.#writtenSeq = seq;
  }

  /** Writes and syncs everything appended before the call. Rejects if the store cannot write. */
  async flush(): Promise<void> {
    const target = this.#seq;
    while (this.#syncedSeq < target && this.#failure === null) {
      const inFlight = this.#commit.runNow();
      if (inFlight === null) break;
      await inFlight;
    }
    if (this.#syncedSeq < target) {
      throw this.#failure ?? new Error(`the audit store at ${this.#dir} could not flush its buffer`);
    }
  }

  /**
   * Stops accepting appends, flushes what is buffered and closes the segment file. Rejects when
   * records buffered at the call could not be written (the file is closed all the same); a failure
   * that happened before the call was already reported to its appends and does not reject.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    let flushError: unknown = null;
    if (this.#failure === null) {
      try {
        await this.flush();
      } catch (err) {
        flushError = err;
      }
    }
    this.#commit.cancel();
    await this.#commit.inFlight;
    for (const fh of [...this.#retired, this.#fh]) {
      try {
        await fh.close();
      } catch (err) {
        this.#logger.error({ err, dir: this.#dir }, 'audit store: closing the segment file failed');
      }
    }
    this.#retired = [];
    if (flushError) throw flushError;
  }

  /** One batch: waits for a segment being opened, then syncs everything written so far. */
  async #syncBatch(): Promise<void> {
    try {
      await withDeadline(this.#syncWritten(), this.#writeTimeoutMs, 'a write and fsync');
    } catch (err) {
      this.#fail(err);
    }
  }

  async #syncWritten(): Promise<void> {
    if (this.#rotating !== null) await this.#rotating;
    if (this.#failure) throw this.#failure;
    const target = this.#writtenSeq;
    const retired = this.#retired;
    this.#retired = [];
    const newSegment = this.#newSegment;
    this.#newSegment = false;
    try {
      await Promise.all([...retired.map((fh) => fh.datasync()), this.#fh.datasync(), ...(newSegment ? [syncDirectory(this.#dir)] : [])]);
    } finally {
      for (const fh of retired) await fh.close().catch(() => undefined);
    }
    this.#syncs += retired.length + 1;
    if (this.#failure) throw this.#failure;
    this.#batches++;
    this.#records += target - this.#syncedSeq;
    this.#syncedSeq = target;
    let n = 0;
    while (n < this.#waiters.length && this.#waiters[n]!.seq <= target) n++;
    const done = this.#waiters.splice(0, n);
    for (const w of done) w.resolve();
  }

  /** Opens the next segment and switches to it; the one it replaces is synced and closed by the next batch. */
  async #rotate(): Promise<void> {
    const next = this.#segment + 1;
    let fh: FileHandle;
    try {
      fh = await open(join(this.#dir, segmentFileName(next)), 'a');
    } catch (err) {
      this.#rotating = null;
      this.#fail(err);
      return;
    }
    if (this.#failure) {
      await fh.close().catch(() => undefined);
      this.#rotating = null;
      return;
    }
    this.#retired.push(this.#fh);
    this.#fh = fh;
    this.#segment = next;
    this.#segmentSize = 0;
    this.#rotations++;
    this.#newSegment = true;
    this.#rotating = null;
  }

  #fail(cause: unknown): void {
    if (this.#failure) return;
    const why = cause instanceof Error ? cause.message : String(cause);
    const failure = new Error(`the audit store cannot write to ${this.#dir}: ${why}`, { cause });
    this.#failure = failure;
    this.#commit.cancel();
    const waiters = this.#waiters;
    this.#waiters = [];
    const unsynced = this.#seq - this.#syncedSeq;
    this.#logger.error(
      { err: cause, dir: this.#dir, lost: unsynced },
      'audit store write failed; the store is unhealthy and refuses every append',
    );
    for (const w of waiters) w.reject(failure);
  }
}

/** Writes all of `data` to a file descriptor now, looping over short writes. */
function writeAllSync(fd: number, data: Buffer): void {
  let written = 0;
  while (written < data.length) {
    const n = writeSync(fd, data, written, data.length - written);
    if (n <= 0) throw new Error('the write made no progress');
    written += n;
  }
}

/**
 * The last complete line of a segment, after truncating a torn tail (bytes after the last "\n")
 * away. Returns the file size after any repair.
 */
async function lastLineOf(
  path: string,
  name: string,
  logger: FileAuditStoreLogger,
): Promise<{ line: string | null; size: number }> {
  const fh = await open(path, 'r');
  let tail;
  let size: number;
  try {
    size = (await fh.stat()).size;
    tail = await readTail(fh, size, 1);
  } finally {
    await fh.close();
  }
  if (tail.completeEnd < size) {
    await truncate(path, tail.completeEnd);
    logger.error(
      { file: path, removedBytes: size - tail.completeEnd, keptBytes: tail.completeEnd },
      `audit store: ${name} ended with a torn (partial) line, left by an interrupted write; it was truncated away`,
    );
    size = tail.completeEnd;
  }
  const line = tail.lines.at(-1);
  return { line: line ?? null, size };
}

function parseChainEnd(line: string, name: string): { seq: number; hash: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    throw new ChainEndError(
      `the audit store cannot continue its chain: the last line of ${name} is not valid JSON; ` +
        'run the audit verifier to find the damage',
      { cause: err },
    );
  }
  const rec = parsed as { seq?: unknown; hash?: unknown } | null;
  if (
    typeof rec !== 'object' ||
    rec === null ||
    !Number.isSafeInteger(rec.seq) ||
    (rec.seq as number) < 1 ||
    !isHash(rec.hash)
  ) {
    throw new ChainEndError(
      `the audit store cannot continue its chain: the last line of ${name} is not an audit record ` +
        '(no valid seq and hash); run the audit verifier to find the damage',
    );
  }
  return { seq: rec.seq as number, hash: rec.hash };
}

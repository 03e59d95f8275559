/**
 * Segment files of the audit directory: naming, listing, and line-level reading shared by the
 * store, the reader, the verifier and the follower.
 */
import { once } from 'node:events';
import type { FileHandle } from 'node:fs/promises';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const SEGMENT_PATTERN = /^audit-(\d{6,})\.jsonl$/;
const NEWLINE = 0x0a;
const TAIL_CHUNK = 64 * 1024;

export interface SegmentFile {
  /** 1-based segment number. */
  readonly number: number;
  /** File name, e.g. `audit-000001.jsonl`. */
  readonly name: string;
  readonly path: string;
}

/** `audit-000001.jsonl` for 1 (at least six digits). */
export function segmentFileName(number: number): string {
  return `audit-${String(number).padStart(6, '0')}.jsonl`;
}

/** The segment number of a file name, or null when it is not a segment file. */
export function parseSegmentFileName(name: string): number | null {
  const m = SEGMENT_PATTERN.exec(name);
  if (!m?.[1]) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** The segment files of `dir`, in segment order. Rejects (ENOENT) when the directory is missing. */
export async function listSegments(dir: string): Promise<SegmentFile[]> {
  const names = await readdir(dir);
  const out: SegmentFile[] = [];
  for (const name of names) {
    const number = parseSegmentFileName(name);
    if (number !== null) out.push({ number, name, path: join(dir, name) });
  }
  out.sort((a, b) => a.number - b.number);
  return out;
}

/** Throws a clear error unless `dir` exists and is a directory. */
export async function assertAuditDir(dir: string): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`the audit directory ${dir} does not exist`, { cause: err });
    }
    throw new Error(`cannot read the audit directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
  if (!isDir) throw new Error(`the audit path ${dir} is not a directory`);
}

/** Fills `buf` from `position`; throws if the file is shorter than expected. */
export async function readFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error('the file became shorter while it was being read');
    done += bytesRead;
  }
}

export interface Tail {
  /** Up to the requested number of complete lines (without "\n"), oldest first. */
  readonly lines: string[];
  /** Byte offset just past the last "\n" in the file (0 when there is none). */
  readonly completeEnd: number;
}

/**
 * Reads the last `maxLines` complete lines of the first `size` bytes of a file, scanning
 * backwards in chunks so only the end of the file is read. Bytes after the last "\n" (a line
 * still being written, or torn by a crash) are not part of any returned line.
 */
export async function readTail(fh: FileHandle, size: number, maxLines: number): Promise<Tail> {
  let pos = size;
  // Chunks read backwards, joined once at the end: a long last record costs linear time.
  const chunks: Buffer[] = [];
  let newlines = 0;
  while (pos > 0 && newlines < maxLines + 1) {
    const len = Math.min(TAIL_CHUNK, pos);
    pos -= len;
    const chunk = Buffer.alloc(len);
    await readFully(fh, chunk, pos);
    for (let i = 0; i < len; i++) if (chunk[i] === NEWLINE) newlines++;
    chunks.push(chunk);
  }
  const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks.reverse());
  const lastNewline = buf.lastIndexOf(NEWLINE);
  if (lastNewline < 0) return { lines: [], completeEnd: 0 };
  const completeEnd = pos + lastNewline + 1;
  if (maxLines <= 0) return { lines: [], completeEnd };
  const parts = buf.subarray(0, lastNewline).toString('utf8').split('\n');
  // When the scan stopped before the start of the file, the first part may be partial.
  if (pos > 0) parts.shift();
  return { lines: parts.slice(-maxLines), completeEnd };
}

export interface SegmentLine {
  readonly text: string;
  /** 1-based line number in the file. */
  readonly lineNo: number;
  /** False for a final line with no "\n" after it (torn, or still being written). */
  readonly terminated: boolean;
}

/**
 * Streams the lines of a segment file as it is when the call starts (later growth is not read).
 * Lines are split by `readline`, so a stray "\r" in a hand-edited file also ends a line.
 */
export async function* readSegmentLines(path: string): AsyncGenerator<SegmentLine> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size === 0) return;
    const last = Buffer.alloc(1);
    await readFully(fh, last, size - 1);
    const endsWithNewline = last[0] === NEWLINE;
    const stream = fh.createReadStream({ start: 0, end: size - 1, autoClose: false, encoding: 'utf8' });
    const rl = createInterface({ input: stream, crlfDelay: Infinity });
    let pending: string | undefined;
    let lineNo = 0;
    try {
      for await (const text of rl) {
        if (pending !== undefined) yield { text: pending, lineNo, terminated: true };
        pending = text;
        lineNo++;
      }
    } finally {
      rl.close();
      if (!stream.destroyed) {
        stream.destroy();
        await once(stream, 'close').catch(() => undefined);
      }
    }
    if (pending !== undefined) yield { text: pending, lineNo, terminated: endsWithNewline };
  } finally {
    await fh.close();
  }
}

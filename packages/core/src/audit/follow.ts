/**
 * `tail -f` for an audit directory: the last records, then new ones as they are written,
 * following the store from segment to segment. Polls the files; never loads a whole segment.
 */
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SegmentFile } from './segments.js';
import { assertAuditDir, listSegments, readFully, readTail } from './segments.js';
import type { AuditRecord } from './types.js';

export interface FollowOptions {
  /** How many of the existing records to yield first. Default 10. */
  readonly fromEnd?: number;
  /** Ends the generator (normally, without throwing). */
  readonly signal: AbortSignal;
  /** Interval between looks at the files, in ms. Default 250. */
  readonly pollMs?: number;
}

const READ_CHUNK = 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Yields the last `fromEnd` records, then every record appended afterwards, until `signal`
 * aborts. Only complete lines are read (a line being written is picked up on a later poll).
 * Lines that are not records are skipped (use the verifier to check the log), as are records
 * whose seq is not after the last one yielded, so a record is never yielded twice. Rejects when
 * the directory does not exist.
 */
export async function* followAuditRecords(dir: string, options: FollowOptions): AsyncGenerator<AuditRecord> {
  const { signal } = options;
  const fromEnd = Math.max(0, Math.floor(options.fromEnd ?? 10));
  const pollMs = options.pollMs ?? 250;
  await assertAuditDir(dir);
  if (signal.aborted) return;

  let lastSeq = 0;
  let current: SegmentFile | null = null;
  let offset = 0;

  // The backlog: read backwards from the end, segment by segment, until enough records.
  const segments = await listSegments(dir);
  const backlog: AuditRecord[][] = [];
  let found = 0;
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i]!;
    const fh = await openIfExists(segment.path);
    if (!fh) continue;
    try {
      const size = (await fh.stat()).size;
      const tail = await readTail(fh, size, fromEnd - found);
      if (current === null) {
        current = segment;
        offset = tail.completeEnd;
      }
      const records = parseLines(tail.lines);
      backlog.push(records);
      found += records.length;
    } finally {
      await fh.close();
    }
    if (found >= fromEnd) break;
  }
  for (let i = backlog.length - 1; i >= 0; i--) {
    for (const record of backlog[i]!) {
      if (record.seq <= lastSeq) continue;
      lastSeq = record.seq;
      yield record;
    }
  }

  while (!signal.aborted) {
    let moved = false;
    if (current === null) {
      const first = (await listSegments(dir))[0];
      if (first) {
        current = first;
        offset = 0;
        moved = true;
      }
    } else {
      const read = await readNewLines(current.path, offset);
      offset = read.offset;
      for (const record of parseLines(read.lines)) {
        if (record.seq <= lastSeq) continue;
        lastSeq = record.seq;
        yield record;
      }
      if (read.lines.length === 0) {
        const currentNumber = current.number;
        const next = (await listSegments(dir)).find((s) => s.number > currentNumber);
        if (next) {
          // The store finishes a segment before it starts the next: one more read drains it.
          const rest = await readNewLines(current.path, offset);
          for (const record of parseLines(rest.lines)) {
            if (record.seq <= lastSeq) continue;
            lastSeq = record.seq;
            yield record;
          }
          current = next;
          offset = 0;
          moved = true;
        }
      } else {
        moved = true;
      }
    }
    if (moved) continue;
    try {
      await sleep(pollMs, undefined, { signal });
    } catch {
      return;
    }
  }
}

async function openIfExists(path: string): Promise<FileHandle | null> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * The complete lines of a file from `offset` on, and the offset just past the last one. When
 * the file is now shorter than `offset` (rewritten or repaired), reading restarts at 0; the
 * caller's seq check drops what it already yielded.
 */
async function readNewLines(path: string, offset: number): Promise<{ lines: string[]; offset: number }> {
  const fh = await openIfExists(path);
  if (!fh) return { lines: [], offset };
  try {
    const size = (await fh.stat()).size;
    let pos = size < offset ? 0 : offset;
    const lines: string[] = [];
    let carry: Buffer = Buffer.alloc(0);
    while (pos < size) {
      const chunk = Buffer.alloc(Math.min(READ_CHUNK, size - pos));
      await readFully(fh, chunk, pos);
      pos += chunk.length;
      const buf = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
      let start = 0;
      for (let nl = buf.indexOf(NEWLINE); nl >= 0; nl = buf.indexOf(NEWLINE, start)) {
        lines.push(buf.toString('utf8', start, nl));
        start = nl + 1;
      }
      carry = buf.subarray(start);
    }
    return { lines, offset: pos - carry.length };
  } finally {
    await fh.close();
  }
}

function parseLines(lines: readonly string[]): AuditRecord[] {
  const out: AuditRecord[] = [];
  for (const line of lines) {
    if (line.length === 0) continue;
    try {
      const parsed = JSON.parse(line) as { seq?: unknown } | null;
      if (typeof parsed === 'object' && parsed !== null && Number.isSafeInteger(parsed.seq)) {
        out.push(parsed as AuditRecord);
      }
    } catch {
      // not a record: skipped (see followAuditRecords)
    }
  }
  return out;
}

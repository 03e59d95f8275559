/**
 * Reading and verifying an audit directory written by `FileAuditStore`.
 *
 * What the verifier can and cannot prove. Each record commits to its own content (`hash`), to
 * its place (`seq`) and to the record before it (`prev`), so editing, removing, inserting or
 * reordering records anywhere before the last record breaks the chain, and so does removing a
 * whole segment file in the middle or at the start. Removing records (or whole segments) from
 * the END cannot be detected from the files alone: what is left is still a valid, shorter chain.
 * To catch that, record `lastHash` (and the record count) of a successful verification somewhere
 * the gateway cannot write, and compare later: the anchored hash must still appear in the log,
 * at the same seq. Likewise, someone able to rewrite the whole log from some point on, with
 * hashes recomputed, is caught only by such an anchor.
 */
import { basename } from 'node:path';
import { GENESIS_HASH, hashedTextOf, isHash, sha256Hex } from './chain.js';
import type { SegmentFile } from './segments.js';
import { assertAuditDir, listSegments, readSegmentLines, segmentFileName } from './segments.js';
import type { AuditRecord } from './types.js';

export interface AuditRecordFilter {
  /** Only records whose `time` is at or after this instant. */
  readonly since?: Date;
  /** Only records whose `time` is before this instant (exclusive). */
  readonly until?: Date;
}

export type VerifyProblemKind = 'edited' | 'removed' | 'reordered' | 'malformed' | 'torn';

export interface VerifyProblem {
  /** Seq of the bad record, when it can be read. */
  readonly seq: number | null;
  /** Segment file name (not the full path). */
  readonly file: string;
  /** 1-based line number in `file`. */
  readonly line: number;
  readonly kind: VerifyProblemKind;
  /** A sentence naming the record and what is wrong with it. */
  readonly message: string;
}

export type VerifyResult =
  | { readonly ok: true; readonly records: number; readonly lastHash: string }
  | { readonly ok: false; readonly records: number; readonly problem: VerifyProblem };

/**
 * Streams the records of every segment, in order, optionally only those in a time window.
 * Records are not verified (see {@link verifyAuditLog}). A line that is not a record throws,
 * naming the file and line, except a final unterminated line of the last segment, which is a
 * write in progress (or one torn by a crash) and is skipped. Segments created after the call
 * starts are not read. Rejects when the directory does not exist.
 */
export async function* readAuditRecords(dir: string, filter?: AuditRecordFilter): AsyncGenerator<AuditRecord> {
  await assertAuditDir(dir);
  const since = filter?.since?.getTime();
  const until = filter?.until?.getTime();
  const filtering = since !== undefined || until !== undefined;
  const segments = await listSegments(dir);
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const isLastSegment = i === segments.length - 1;
    for await (const { text, lineNo, terminated } of readSegmentLines(segment.path)) {
      if (!terminated && isLastSegment) return;
      const record = parseAuditRecordLine(text);
      if (typeof record === 'string') {
        throw new Error(`${segment.name} line ${lineNo} is not an audit record: ${record}`);
      }
      if (filtering) {
        const t = Date.parse(record.time);
        if (Number.isNaN(t)) continue;
        if (since !== undefined && t < since) continue;
        if (until !== undefined && t >= until) continue;
      }
      yield record;
    }
  }
}

/** Where a record sits. */
interface Place {
  readonly file: string;
  readonly line: number;
  readonly seq: number;
}

/**
 * Checks the whole chain and names the first bad record. Streams every segment once (twice
 * from the point of a forward seq jump, to tell a removal from a reordering). Rejects when the
 * directory does not exist; an existing empty directory verifies with 0 records.
 *
 * Beyond the hash chain it also checks that every line is byte-for-byte in the store's format,
 * so a re-formatted line, or one with duplicate keys, is reported as edited.
 */
export async function verifyAuditLog(dir: string): Promise<VerifyResult> {
  await assertAuditDir(dir);
  const segments = await listSegments(dir);
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let prevPlace: Place | null = null;
  let good = 0;
  let expectedSegment = 1;

  const fail = (problem: VerifyProblem): VerifyResult => ({ ok: false, records: good, problem });

  for (let s = 0; s < segments.length; s++) {
    const segment = segments[s]!;
    const missingSegments = missingBefore(segment, expectedSegment);
    expectedSegment = segment.number + 1;
    let firstInSegment = true;
    for await (const { text, lineNo, terminated } of readSegmentLines(segment.path)) {
      const here = { file: segment.name, line: lineNo };
      const where = `${segment.name} line ${lineNo}`;
      if (!terminated) {
        const seq = seqOf(text);
        return fail({
          ...here,
          seq,
          kind: 'torn',
          message:
            `${describe(seq, where)} is incomplete: the line has no end, as left by a write interrupted ` +
            'by a crash (the store truncates it away when it next opens)',
        });
      }
      const record = parseAuditRecordLine(text);
      if (typeof record === 'string') {
        const seq = seqOf(text);
        return fail({ ...here, seq, kind: 'malformed', message: `${describe(seq, where)} is malformed: ${record}` });
      }
      const hashed = hashedTextOf(text);
      const seq = record.seq;
      if (!hashed || hashed.hash !== record.hash || sha256Hex(hashed.text) !== hashed.hash) {
        return fail({
          ...here,
          seq,
          kind: 'edited',
          message: `record seq ${seq} (${where}) was edited: its hash does not match its content`,
        });
      }
      const segmentNote =
        firstInSegment && missingSegments.length > 0
          ? ` (segment file${missingSegments.length > 1 ? 's' : ''} ${missingSegments.join(', ')} ` +
            `${missingSegments.length > 1 ? 'are' : 'is'} missing)`
          : '';
      firstInSegment = false;

      if (seq < expectedSeq) {
        return fail({
          ...here,
          seq,
          kind: 'reordered',
          message:
            `record seq ${seq} (${where}) is out of order: it comes after record seq ${expectedSeq - 1}` +
            (prevPlace ? ` (${prevPlace.file} line ${prevPlace.line})` : '') +
            ', so records were moved or copied',
        });
      }
      if (seq > expectedSeq) {
        const later = await findSeqInRange(segments, s, lineNo, expectedSeq, seq - 1);
        if (later) {
          return fail({
            ...here,
            seq,
            kind: 'reordered',
            message:
              `record seq ${seq} (${where}) is out of order: record seq ${later.seq} should come before it ` +
              `but is at ${later.file} line ${later.line}, so records were moved`,
          });
        }
        if (record.prev === prevHash) {
          return fail({
            ...here,
            seq,
            kind: 'edited',
            message:
              `record seq ${seq} (${where}) was edited: it links to the record before it but its seq ` +
              `should be ${expectedSeq} (its hash was recomputed after the change)`,
          });
        }
        const missing =
          seq - 1 === expectedSeq ? `record seq ${expectedSeq} is` : `records seq ${expectedSeq} to ${seq - 1} are`;
        return fail({
          ...here,
          seq,
          kind: 'removed',
          message:
            `record seq ${seq} (${where}) does not follow ` +
            (expectedSeq === 1
              ? 'the start of the log'
              : `record seq ${expectedSeq - 1}${prevPlace ? ` (${prevPlace.file} line ${prevPlace.line})` : ''}`) +
            `: ${missing} missing, so records were removed${segmentNote}`,
        });
      }
      if (record.prev !== prevHash) {
        // The seq is right but the link is not: the record before was changed and re-hashed,
        // or this record was forged with a recomputed hash.
        if (prevPlace) {
          return {
            ok: false,
            records: good - 1,
            problem: {
              seq: prevPlace.seq,
              file: prevPlace.file,
              line: prevPlace.line,
              kind: 'edited',
              message:
                `record seq ${prevPlace.seq} (${prevPlace.file} line ${prevPlace.line}) was edited: it no longer ` +
                `matches the hash that record seq ${seq} (${where}) holds for it (its own hash was recomputed ` +
                'after the change)',
            },
          };
        }
        return fail({
          ...here,
          seq,
          kind: 'edited',
          message: `record seq ${seq} (${where}) was edited: the first record must link to 64 zeros`,
        });
      }
      good++;
      expectedSeq = seq + 1;
      prevHash = record.hash;
      prevPlace = { file: segment.name, line: lineNo, seq };
    }
  }
  // A good chain can still have lost its end: see the module comment.
  return { ok: true, records: good, lastHash: prevHash };
}

/**
 * Parses one stored line into a record, or returns why it is not one. Only the chain fields are
 * checked; the event fields are taken as they are.
 */
export function parseAuditRecordLine(text: string): AuditRecord | string {
  if (text.length === 0) return 'the line is empty';
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return `it is not valid JSON (${(err as Error).message})`;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'it is not a JSON object';
  const rec = parsed as Record<string, unknown>;
  if (!Number.isSafeInteger(rec['seq']) || (rec['seq'] as number) < 1) return 'it has no valid seq';
  if (!isHash(rec['prev'])) return 'it has no valid prev hash';
  if (!isHash(rec['hash'])) return 'it has no valid hash';
  if (typeof rec['time'] !== 'string' || typeof rec['type'] !== 'string') return 'it has no time or type';
  return parsed as AuditRecord;
}

/** A best-effort seq from a line that could not be parsed as a record. */
function seqOf(text: string): number | null {
  const m = /"seq":(\d+)/.exec(text);
  if (!m?.[1]) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

function describe(seq: number | null, where: string): string {
  return seq === null ? `the line at ${where}` : `record seq ${seq} (${where})`;
}

function missingBefore(segment: SegmentFile, expected: number): string[] {
  const out: string[] = [];
  for (let n = expected; n < segment.number && out.length < 5; n++) out.push(segmentFileName(n));
  if (segment.number - expected > 5) out.push('...');
  return out;
}

/**
 * Looks, after the given place, for a record whose seq is in [low, high]: the records a forward
 * jump skipped are either later in the log (reordered) or gone (removed). Unreadable lines are
 * skipped.
 */
async function findSeqInRange(
  segments: readonly SegmentFile[],
  fromSegment: number,
  afterLine: number,
  low: number,
  high: number,
): Promise<Place | null> {
  for (let s = fromSegment; s < segments.length; s++) {
    const segment = segments[s]!;
    for await (const { text, lineNo } of readSegmentLines(segment.path)) {
      if (s === fromSegment && lineNo <= afterLine) continue;
      const seq = seqFromRecord(text);
      if (seq !== null && seq >= low && seq <= high) return { file: basename(segment.path), line: lineNo, seq };
    }
  }
  return null;
}

function seqFromRecord(text: string): number | null {
  try {
    const parsed = JSON.parse(text) as { seq?: unknown } | null;
    return typeof parsed === 'object' && parsed !== null && Number.isSafeInteger(parsed.seq)
      ? (parsed.seq as number)
      : null;
  } catch {
    return null;
  }
}

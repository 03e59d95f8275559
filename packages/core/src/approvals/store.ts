/**
 * The durable state of the approvals service: review requests and grants, kept in one
 * append-only JSON-lines journal in a directory.
 *
 * Every line is a complete record after a change, `{"kind":"request","record":{...}}` or
 * `{"kind":"grant","record":{...}}`; replaying the journal in order (the last line for an id
 * wins) gives the current state. A call to `put` resolves only once its lines are written and
 * fdatasync'ed, so a request survives a crash once `put` resolved. Lines put while a write is
 * in flight are written together in the next batch (one write and one sync per batch).
 *
 * On open the journal is replayed. A last line cut short by an interrupted write (or otherwise
 * unreadable) is dropped with a logged warning; an unreadable line anywhere else is an error that
 * names the file and the line. When the journal holds many superseded lines, or records older
 * than the retention, it is compacted: the current state is written to a new file, synced, and
 * renamed over the journal.
 *
 * After a write or sync failure the store refuses every later `put` (it fails closed), so a torn
 * line can only ever be the last one. One process writes a directory at a time.
 */
import type { FileHandle } from 'node:fs/promises';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApprovalRequest, ApprovalStatus, Grant } from './types.js';
import { withDeadline } from '../util/deadline.js';
import { syncDirectory, writeFully } from '../util/durable-file.js';

/** The journal's file name inside the state directory. */
export const JOURNAL_FILE = 'approvals.jsonl';
const COMPACT_FILE = 'approvals.jsonl.compact';

/** Default: decided requests and ended grants are kept this long (then only the audit trail has them). */
export const DEFAULT_RETENTION_MS = 30 * 24 * 60 * 60 * 1000;
const DEFAULT_WRITE_TIMEOUT_MS = 10_000;

const STATUSES: ReadonlySet<ApprovalStatus> = new Set<ApprovalStatus>([
  'pending',
  'approved',
  'executed',
  'rejected',
  'expired',
  'abandoned',
]);

/** One journal line. */
export type StoreEntry =
  | { readonly kind: 'request'; readonly record: ApprovalRequest }
  | { readonly kind: 'grant'; readonly record: Grant };

export interface ApprovalStoreLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ApprovalStoreOptions {
  /** State directory; created (mode 0700) when missing. */
  readonly dir: string;
  readonly logger: ApprovalStoreLogger;
  /**
   * Decided requests (decided or created before this many ms ago) and grants that ended before
   * this many ms ago are dropped when the journal is compacted on open. Default 30 days.
   */
  readonly retentionMs?: number;
  /** A write and sync that take longer than this fail the store. Default 10,000 ms. */
  readonly writeTimeoutMs?: number;
  /** For tests: the clock used for the retention. */
  readonly now?: () => number;
}

interface Pending {
  readonly text: string;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

export class ApprovalStore {
  readonly #dir: string;
  readonly #path: string;
  readonly #logger: ApprovalStoreLogger;
  readonly #writeTimeoutMs: number;
  #fh: FileHandle;
  #pending: Pending[] = [];
  #writing = false;
  #idle: Promise<void> = Promise.resolve();
  #failure: Error | null = null;
  #closed = false;

  /** Requests as replayed at open (in journal order of first appearance). */
  readonly requests: ReadonlyMap<string, ApprovalRequest>;
  /** Grants as replayed at open. */
  readonly grants: ReadonlyMap<string, Grant>;

  private constructor(
    options: ApprovalStoreOptions,
    fh: FileHandle,
    requests: Map<string, ApprovalRequest>,
    grants: Map<string, Grant>,
  ) {
    this.#dir = options.dir;
    this.#path = join(options.dir, JOURNAL_FILE);
    this.#logger = options.logger;
    this.#writeTimeoutMs = options.writeTimeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS;
    this.#fh = fh;
    this.requests = requests;
    this.grants = grants;
  }

  /** Opens (or creates) the journal in `options.dir` and replays it. */
  static async open(options: ApprovalStoreOptions): Promise<ApprovalStore> {
    const { dir, logger } = options;
    const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    if (!(retentionMs > 0)) throw new RangeError(`retentionMs must be positive, got ${retentionMs}`);
    const now = options.now ?? Date.now;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new Error(`the approvals store cannot create its directory ${dir}: ${(err as Error).message}`, { cause: err });
    }
    const path = join(dir, JOURNAL_FILE);
    let text: string | null;
    try {
      if (!(await stat(path)).isFile()) throw new Error('it is not a regular file');
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`the approvals store cannot read ${path}: ${(err as Error).message}`, { cause: err });
      }
      text = null;
    }

    const requests = new Map<string, ApprovalRequest>();
    const grants = new Map<string, Grant>();
    let lines = 0;
    let compact = false;
    if (text !== null) {
      const replayed = replay(text, path, logger);
      lines = replayed.lines;
      compact = replayed.tornTail;
      for (const entry of replayed.entries) {
        if (entry.kind === 'request') requests.set(entry.record.id, entry.record);
        else grants.set(entry.record.id, entry.record);
      }
      const cutoff = now() - retentionMs;
      for (const [id, r] of requests) {
        if (r.status === 'pending' || r.status === 'approved') continue;
        if (Date.parse(r.decidedAt ?? r.createdAt) < cutoff) {
          requests.delete(id);
          compact = true;
        }
      }
      for (const [id, g] of grants) {
        const ended = Math.min(Date.parse(g.expiresAt), g.revokedAt ? Date.parse(g.revokedAt) : Infinity);
        if (ended < cutoff) {
          grants.delete(id);
          compact = true;
        }
      }
      // Superseded lines (a request goes through two or three states) make the journal grow.
      if (lines > 2 * (requests.size + grants.size) + 64) compact = true;
    }

    try {
      if (compact) await writeCompacted(dir, path, requests, grants);
      const fh = await open(path, 'a', 0o600);
      if (text === null) await syncDirectory(dir);
      return new ApprovalStore(options, fh, requests, grants);
    } catch (err) {
      throw new Error(`the approvals store cannot write to ${dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The state directory. */
  get dir(): string {
    return this.#dir;
  }

  /** False once a write has failed, and after close. */
  get healthy(): boolean {
    return this.#failure === null && !this.#closed;
  }

  /**
   * Appends records; resolves once they are on stable storage. Rejects when the store cannot
   * write (then and for good: every later put rejects too).
   */
  put(...entries: StoreEntry[]): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new Error(`the approvals store at ${this.#dir} is closed`));
    let text = '';
    try {
      for (const e of entries) text += `${JSON.stringify({ kind: e.kind, record: e.record })}\n`;
    } catch (err) {
      return Promise.reject(new Error(`an approvals record cannot be serialized: ${(err as Error).message}`, { cause: err }));
    }
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ text, resolve, reject });
      if (!this.#writing) this.#idle = this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#pending.length > 0 && this.#failure === null) {
        const batch = this.#pending;
        this.#pending = [];
        try {
          await this.#writeWithDeadline(Buffer.from(batch.map((p) => p.text).join(''), 'utf8'));
        } catch (err) {
          this.#fail(err, batch);
          return;
        }
        for (const p of batch) p.resolve();
      }
    } finally {
      this.#writing = false;
    }
  }

  async #writeWithDeadline(data: Buffer): Promise<void> {
    await withDeadline(this.#write(data), this.#writeTimeoutMs, 'a write and fsync');
  }

  async #write(data: Buffer): Promise<void> {
    await writeFully(this.#fh, data);
    await this.#fh.datasync();
  }

  #fail(cause: unknown, batch: Pending[]): void {
    const why = cause instanceof Error ? cause.message : String(cause);
    const failure = new Error(`the approvals store cannot write to ${this.#path}: ${why}`, { cause });
    this.#failure = failure;
    const queued = this.#pending;
    this.#pending = [];
    this.#logger.error(
      { err: cause, file: this.#path },
      'approvals store write failed; it refuses every later change (fail closed)',
    );
    for (const p of batch) p.reject(failure);
    for (const p of queued) p.reject(failure);
  }

  /** Waits for writes in flight, then closes the journal. Later puts reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#idle;
    try {
      await this.#fh.close();
    } catch (err) {
      this.#logger.error({ err, file: this.#path }, 'approvals store: closing the journal failed');
    }
  }
}

interface Replayed {
  readonly entries: StoreEntry[];
  /** Complete lines read. */
  readonly lines: number;
  /** The last line was dropped: the file must be rewritten before appending to it. */
  readonly tornTail: boolean;
}

function replay(text: string, path: string, logger: ApprovalStoreLogger): Replayed {
  const entries: StoreEntry[] = [];
  const lines = text.split('\n');
  // A file that ends with "\n" splits into a last empty string: every line is complete.
  const complete = text.endsWith('\n') || text.length === 0;
  if (complete) lines.pop();
  let tornTail = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const last = i === lines.length - 1;
    if (line.trim() === '' && !last) continue;
    const entry = parseEntry(line);
    if (typeof entry !== 'string') {
      if (!complete && last) {
        // Parsed fine but the newline never made it: keep the record, rewrite the file.
        tornTail = true;
      }
      entries.push(entry);
      continue;
    }
    if (last) {
      logger.warn(
        { file: path, line: i + 1, bytes: Buffer.byteLength(line, 'utf8') },
        `approvals store: the last line of ${path} is incomplete or unreadable (an interrupted write); it was ignored`,
      );
      tornTail = true;
      continue;
    }
    throw new Error(`the approvals journal ${path} is damaged at line ${i + 1}: ${entry}`);
  }
  return { entries, lines: lines.length, tornTail };
}

/** The entry of a journal line, or why it is not one. */
function parseEntry(line: string): StoreEntry | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`;
  }
  return checkStoreEntry(parsed);
}

/** The entry a parsed value is (a kind and a well-formed record), or why it is not one. */
export function checkStoreEntry(parsed: unknown): StoreEntry | string {
  if (typeof parsed !== 'object' || parsed === null) return 'not a JSON object';
  const { kind, record } = parsed as { kind?: unknown; record?: unknown };
  if (typeof record !== 'object' || record === null) return 'no record';
  const r = record as Record<string, unknown>;
  if (typeof r['id'] !== 'string' || r['id'] === '') return 'a record without an id';
  if (kind === 'request') {
    if (!STATUSES.has(r['status'] as ApprovalStatus)) return `a request with an unknown status ${JSON.stringify(r['status'])}`;
    for (const key of ['target', 'statement', 'digest'] as const) {
      if (typeof r[key] !== 'string') return `a request without ${key}`;
    }
    const times = badTimes(r, 'request', ['createdAt', 'expiresAt'], ['decidedAt']);
    if (times) return times;
    if (typeof r['requester'] !== 'object' || r['requester'] === null) return 'a request without requester';
    return { kind, record: record as ApprovalRequest };
  }
  if (kind === 'grant') {
    if (typeof r['subject'] !== 'string') return 'a grant without subject';
    // A grant whose expiry is not a date would never end; lists that are not lists of names would break matching.
    const times = badTimes(r, 'grant', ['createdAt', 'expiresAt'], ['revokedAt']);
    if (times) return times;
    for (const key of ['operations', 'targets', 'objects', 'guardrails'] as const) {
      const list = r[key];
      if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) return `a grant whose ${key} is not a list of names`;
    }
    return { kind, record: record as Grant };
  }
  return `an unknown kind ${JSON.stringify(kind)}`;
}

/** Why the timestamps of a record are unusable (a required one missing, any one not a date), or undefined. */
function badTimes(r: Record<string, unknown>, what: string, required: readonly string[], optional: readonly string[]): string | undefined {
  for (const key of [...required, ...optional]) {
    const v = r[key];
    if (v === undefined && !required.includes(key)) continue;
    if (typeof v !== 'string') return `a ${what} without ${key}`;
    if (Number.isNaN(Date.parse(v))) return `a ${what} whose ${key} is not a date (${JSON.stringify(v)})`;
  }
  return undefined;
}

/** Writes the state to a new file, syncs it, and renames it over the journal. */
async function writeCompacted(
  dir: string,
  path: string,
  requests: ReadonlyMap<string, ApprovalRequest>,
  grants: ReadonlyMap<string, Grant>,
): Promise<void> {
  const tmp = join(dir, COMPACT_FILE);
  let text = '';
  for (const record of requests.values()) text += `${JSON.stringify({ kind: 'request', record })}\n`;
  for (const record of grants.values()) text += `${JSON.stringify({ kind: 'grant', record })}\n`;
  await rm(tmp, { force: true }); // a leftover of an interrupted compaction
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  await syncDirectory(dir);
}

import type { Analysis, StatementHandle } from '@sluice/core';
import type { CopyMasker } from '../masking/copy.js';
import type { ResultField, RowMasker } from '../masking/plan.js';

/** A statement as the client prepared it (Parse) and as a portal refers to it (Bind). */
export interface PreparedStatement {
  readonly text: string;
  readonly analysis: Analysis;
  /**
   * For a portal whose statement may be held for review: a copy of its Bind (the parameters).
   * `reviewable` says whether they were kept (a statement bound while its decision was a plain
   * allow keeps none).
   */
  readonly bind?: Buffer;
  readonly reviewable?: boolean;
  /** The approval that released this portal's first Execute (later Executes continue it). */
  approved?: string;
  /**
   * With masking: the result description the server gave for this statement (Describe S) or
   * portal (Describe P); null when it returns no rows.
   */
  fields?: readonly ResultField[] | null;
  /** The RowDescription bytes behind `fields` (mask plans are cached by them). */
  description?: Buffer;
  /** With masking, for a portal: its statement. */
  statement?: PreparedStatement;
  /** With masking, for a portal: client Describes of it in flight. */
  describing?: number;
  /** With masking, for a statement: the description its last described portal got. */
  portalDescription?: Buffer;
  portalFields?: readonly ResultField[];
}

/** What masks the rows of the result in progress. */
export interface ResultMasking {
  rows?: RowMasker | undefined;
  copy?: CopyMasker | undefined;
}

/**
 * The expected-response ledger: one entry per client message whose answer the gateway
 * tracks, in the order the messages were forwarded. It pairs outcomes with statements, makes
 * a statement name or portal count only once the server has accepted it, and lets the gateway
 * insert its own responses (a refused statement) at the right place in the stream.
 * INVARIANT: entries are in the order their requests were forwarded (or refused).
 */
export type LedgerEntry =
  /** A Parse: answered by ParseComplete, or skipped/failed. */
  | { kind: 'parse'; name: string; prepared: PreparedStatement }
  /** A Bind: answered by BindComplete, or skipped/failed. */
  | { kind: 'bind'; portal: string; prepared: PreparedStatement | undefined }
  /**
   * A simple Query or FunctionCall: answered by results then ReadyForQuery. A query string
   * with several statements has one handle per statement, answered in order (`next`).
   */
  | { kind: 'query'; handles: readonly StatementHandle[]; next: number; masking?: ResultMasking }
  /**
   * An Execute: answered by CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse.
   * With masking: `portal` is what it executes; `describe` says that the gateway sent a Describe
   * of the portal just before it, whose answer (RowDescription or NoData) is the gateway's.
   */
  | { kind: 'execute'; handle: StatementHandle; portal?: PreparedStatement; describe?: boolean; masking?: ResultMasking }
  /** With masking, a client's Describe: answered by [ParameterDescription] RowDescription or NoData. */
  | { kind: 'describe'; target: PreparedStatement | undefined; portal: boolean }
  /** A Sync: answered by ReadyForQuery. */
  | { kind: 'sync' }
  /**
   * A refused request: in its place the server got a request that is sure to fail, so that it
   * answers with an error where PostgreSQL would have (aborting the transaction and, in the
   * extended protocol, skipping to Sync, as after any error); the gateway sends `error`, its
   * own refusal, instead of the server's. `simple`: it stands for a Query (its ReadyForQuery
   * follows), otherwise for an extended-protocol message.
   */
  | { kind: 'refused'; error: Buffer; simple: boolean }
  /**
   * The client ended a copy (CopyDone, CopyFail) before the server said it started one
   * (CopyInResponse): the Syncs before this mark are ignored by the server, those after it are
   * not. A mark that reaches the head is stale (that copy never started) and is dropped.
   */
  | { kind: 'copy-end' }
  /**
   * A message the gateway answers itself (a refusal, a notice), sent once everything before it
   * is answered; with `ready`, followed by a ReadyForQuery with the transaction status current
   * at that moment (a refused simple Query). A refused extended-protocol message gets no
   * ReadyForQuery of its own: the Sync that follows is forwarded and answers it.
   */
  | { kind: 'synthetic'; bytes: Buffer; ready: boolean };

export class Ledger {
  #entries: (LedgerEntry | undefined)[] = [];
  #head = 0;

  get empty(): boolean {
    return this.#head >= this.#entries.length;
  }

  get size(): number {
    return this.#entries.length - this.#head;
  }

  push(entry: LedgerEntry): void {
    this.#entries.push(entry);
  }

  /** Puts an entry back at the head. */
  unshift(entry: LedgerEntry): void {
    if (this.#head > 0) {
      this.#head--;
      this.#entries[this.#head] = entry;
    } else {
      this.#entries.unshift(entry);
    }
  }

  peek(): LedgerEntry | undefined {
    return this.#entries[this.#head];
  }

  shift(): LedgerEntry | undefined {
    const e = this.#entries[this.#head];
    if (e === undefined) return undefined;
    this.#entries[this.#head] = undefined;
    this.#head++;
    if (this.#head > 64 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
    return e;
  }

  /**
   * The server entered copy-in mode for the head: it ignores the Syncs the client sent before
   * ending the copy, so they will get no ReadyForQuery and are dropped. Returns true when the
   * client had already ended the copy (a `copy-end` mark, which is removed; Syncs after it
   * stay).
   */
  enterCopyIn(): boolean {
    const [head, ...rest] = this.clear();
    if (head === undefined) return false;
    this.#entries.push(head);
    let ended = false;
    for (const e of rest) {
      if (!ended && e.kind === 'copy-end') {
        ended = true;
        continue;
      }
      if (!ended && e.kind === 'sync') continue;
      this.#entries.push(e);
    }
    return ended;
  }

  /** True when a Sync is queued (the server's skip after an error ends there). */
  hasSync(): boolean {
    for (let i = this.#head; i < this.#entries.length; i++) if (this.#entries[i]?.kind === 'sync') return true;
    return false;
  }

  /** Removes the entries matching `drop` (used rarely: a refusal replacing its own entry). */
  remove(drop: (e: LedgerEntry) => boolean): void {
    const rest = this.clear().filter((e) => !drop(e));
    for (const e of rest) this.#entries.push(e);
  }

  /** Removes every entry (for session end) and returns them. */
  clear(): LedgerEntry[] {
    const rest = this.#entries.slice(this.#head).filter((e): e is LedgerEntry => e !== undefined);
    this.#entries = [];
    this.#head = 0;
    return rest;
  }
}

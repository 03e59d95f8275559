import type { StatementHandle } from '@sluice/core';

/**
 * The expected-response ledger: one entry per client message that the upstream will answer
 * in a way the gateway tracks, in order. It pairs outcomes with statements and lets the
 * gateway inject its own responses (a refused statement) at the right place in the stream.
 * INVARIANT: entries are in the order their requests were forwarded (or refused).
 */
export type LedgerEntry =
  /** A simple Query or FunctionCall: answered by results then ReadyForQuery. */
  | { kind: 'query'; handle: StatementHandle; rows: number; errorCode: string | undefined; command: string | undefined }
  /** An Execute: answered by CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse. */
  | { kind: 'execute'; handle: StatementHandle }
  /** A Sync: answered by ReadyForQuery. */
  | { kind: 'sync' }
  /** A response the gateway produces itself, sent once everything before it is answered. */
  | { kind: 'synthetic'; bytes: Buffer };

export class Ledger {
  #entries: LedgerEntry[] = [];
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

  peek(): LedgerEntry | undefined {
    return this.#entries[this.#head];
  }

  shift(): LedgerEntry | undefined {
    const e = this.#entries[this.#head];
    if (e === undefined) return undefined;
    this.#entries[this.#head] = undefined as never;
    this.#head++;
    if (this.#head > 64 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
    return e;
  }

  /** Removes every entry (for session end) and returns them. */
  clear(): LedgerEntry[] {
    const rest = this.#entries.slice(this.#head);
    this.#entries = [];
    this.#head = 0;
    return rest;
  }
}

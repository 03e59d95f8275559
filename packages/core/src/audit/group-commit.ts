/**
 * When a batching audit store writes: at once when asked (`now`; appends made in the same tick
 * join that batch), otherwise within `windowMs` of the first append that waits (`soon`). One
 * batch is in flight at a time; when it ends, the next is started at once if one was asked for,
 * or within the window if records still wait. Shared by the embedded store and the PostgreSQL
 * store, which differ only in what a batch is.
 */
export interface GroupCommitBatch {
  /** False while no batch can be written (no connection): a request waits for the next `kick`. */
  canRun(): boolean;
  /** True when records wait to be written and the store can still write. */
  hasWork(): boolean;
  /** Writes one batch. Never rejects (the store handles its own failures). */
  run(): Promise<void>;
}

export class GroupCommit {
  readonly #windowMs: number;
  readonly #batch: GroupCommitBatch;
  #timer: NodeJS.Timeout | null = null;
  #asked = false;
  #queued = false;
  #inFlight: Promise<void> | null = null;

  constructor(windowMs: number, batch: GroupCommitBatch) {
    this.#windowMs = windowMs;
    this.#batch = batch;
  }

  /** The batch being written, if any. */
  get inFlight(): Promise<void> | null {
    return this.#inFlight;
  }

  /** A record waits that may wait for the window. */
  soon(): void {
    if (this.#timer === null && !this.#asked) this.#startTimer();
  }

  /** A batch as soon as possible; appends made in the same tick join it. */
  now(): void {
    this.#asked = true;
    if (this.#queued) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      this.kick();
    });
  }

  /** Starts a batch right away (none in flight), and returns the one in flight. */
  runNow(): Promise<void> | null {
    this.#asked = true;
    this.kick();
    return this.#inFlight;
  }

  /** Starts the batch asked for, unless one is in flight or none can run now. */
  kick(): void {
    if (this.#inFlight !== null || !this.#asked || !this.#batch.canRun()) return;
    this.#asked = false;
    this.cancel();
    if (!this.#batch.hasWork()) return;
    this.#inFlight = this.#batch.run().finally(() => {
      this.#inFlight = null;
      if (!this.#batch.hasWork()) return;
      if (this.#asked) this.kick();
      else if (this.#timer === null) this.#startTimer();
    });
  }

  /** Stops the window's timer (on failure and close). */
  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #startTimer(): void {
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.now();
    }, this.#windowMs);
  }
}

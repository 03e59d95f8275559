/**
 * Where the approvals service keeps its requests and grants. The service holds every record in
 * memory (its mirror, read synchronously on the statement path) and writes each change through
 * a backend:
 *
 * - the journal in a state directory (`journalBackend`, one gateway process per directory);
 * - a store shared by several gateway replicas (the gateway's PostgreSQL backend), where one
 *   replica's changes reach the others through `subscribe`.
 *
 * Every change of a request's status is a conditional transition: it takes effect only if the
 * stored status is still one of the expected ones, so two replicas can never both decide, both
 * release, or expire a request approved meanwhile. The loser learns it from the result (false)
 * and reads what won with `getRequest`.
 *
 * A transition may carry a `confirm` step (the service writes the audit record there). It runs
 * once the transition has won and before it takes effect: in a database, inside the transaction
 * that holds the row; if it throws, nothing is stored, the error is rethrown and no other
 * replica ever saw the change. So a replica never acts on a decision the audit trail does not
 * show.
 */
import type { ApprovalRequest, ApprovalStatus, Grant } from './types.js';
import { ApprovalStore, type ApprovalStoreLogger, type StoreEntry } from './store.js';

/** Everything stored, as loaded when the service opens. */
export interface ApprovalSnapshot {
  readonly requests: readonly ApprovalRequest[];
  readonly grants: readonly Grant[];
}

export interface WriteOptions {
  /**
   * Runs once the write has won and before it takes effect (see the module comment); when it
   * throws, nothing is stored and the error is rethrown.
   */
  readonly confirm?: () => Promise<void>;
}

export interface TransitionOptions extends WriteOptions {
  /** A new grant stored together with the transition (an approval that grants), or not at all. */
  readonly grant?: Grant;
}

export interface ApprovalBackend {
  /** Where the records are kept, for messages (no password). */
  readonly description: string;
  /**
   * True when other gateway processes share the records: then a request belongs to the replica
   * that created it (`owner`), and expired requests of replicas that went away are swept.
   */
  readonly shared: boolean;
  /** The current records. Called once, when the service opens. */
  load(): Promise<ApprovalSnapshot>;
  /** Stores a new request or grant; false (nothing stored, confirm not run) when its id is taken. */
  insert(entry: StoreEntry, options?: WriteOptions): Promise<boolean>;
  /**
   * Replaces a request with `next` if its stored status is one of `from`; false (nothing stored,
   * confirm not run) when it is not, or when there is no such request.
   */
  transition(next: ApprovalRequest, from: readonly ApprovalStatus[], options?: TransitionOptions): Promise<boolean>;
  /** Replaces a grant with its revoked form if the stored one is not revoked yet; false otherwise. */
  revokeGrant(revoked: Grant, options?: WriteOptions): Promise<boolean>;
  /** The stored request, read now (not from a cache). */
  getRequest(id: string): Promise<ApprovalRequest | undefined>;
  /** The stored grant, read now. */
  getGrant(id: string): Promise<Grant | undefined>;
  /**
   * Calls `listener` with records changed by other processes (and possibly, again, with this
   * process's own changes: the service ignores what it already has). Returns the unsubscribe.
   */
  subscribe(listener: (change: StoreEntry) => void): () => void;
  close(): Promise<void>;
}

export interface JournalBackendOptions {
  readonly dir: string;
  readonly logger: ApprovalStoreLogger;
  readonly retentionMs?: number;
  readonly now?: () => number;
}

/** Opens the journal in a state directory as a backend (single process: nothing to subscribe to). */
export async function openJournalBackend(options: JournalBackendOptions): Promise<ApprovalBackend> {
  const store = await ApprovalStore.open({
    dir: options.dir,
    logger: options.logger,
    ...(options.now !== undefined ? { now: options.now } : {}),
    ...(options.retentionMs !== undefined ? { retentionMs: options.retentionMs } : {}),
  });
  return new JournalBackend(store);
}

/**
 * The journal as a backend. Conditions are checked against its own record of what was stored;
 * a write claims its record at once (before any await), so two transitions of one request in
 * this process cannot both win.
 */
export class JournalBackend implements ApprovalBackend {
  readonly shared = false;
  readonly #store: ApprovalStore;
  readonly #requests: Map<string, ApprovalRequest>;
  readonly #grants: Map<string, Grant>;

  constructor(store: ApprovalStore) {
    this.#store = store;
    this.#requests = new Map(store.requests);
    this.#grants = new Map(store.grants);
  }

  get description(): string {
    return `the approvals journal in ${this.#store.dir}`;
  }

  async load(): Promise<ApprovalSnapshot> {
    return { requests: [...this.#requests.values()], grants: [...this.#grants.values()] };
  }

  async insert(entry: StoreEntry, options?: WriteOptions): Promise<boolean> {
    if (entry.kind === 'request') {
      if (this.#requests.has(entry.record.id)) return false;
      return this.#write(this.#requests, entry.record, undefined, [entry], options);
    }
    if (this.#grants.has(entry.record.id)) return false;
    return this.#write(this.#grants, entry.record, undefined, [entry], options);
  }

  async transition(next: ApprovalRequest, from: readonly ApprovalStatus[], options?: TransitionOptions): Promise<boolean> {
    const current = this.#requests.get(next.id);
    if (current === undefined || !from.includes(current.status)) return false;
    if (options?.grant !== undefined && this.#grants.has(options.grant.id)) {
      throw new Error(`grant id ${options.grant.id} is already taken`);
    }
    const entries: StoreEntry[] = [{ kind: 'request', record: next }];
    if (options?.grant !== undefined) {
      entries.push({ kind: 'grant', record: options.grant });
      this.#grants.set(options.grant.id, options.grant);
    }
    try {
      return await this.#write(this.#requests, next, current, entries, options);
    } catch (err) {
      if (options?.grant !== undefined && this.#grants.get(options.grant.id) === options.grant) this.#grants.delete(options.grant.id);
      throw err;
    }
  }

  async revokeGrant(revoked: Grant, options?: WriteOptions): Promise<boolean> {
    const current = this.#grants.get(revoked.id);
    if (current === undefined || current.revokedAt !== undefined) return false;
    return this.#write(this.#grants, revoked, current, [{ kind: 'grant', record: revoked }], options);
  }

  async getRequest(id: string): Promise<ApprovalRequest | undefined> {
    return this.#requests.get(id);
  }

  async getGrant(id: string): Promise<Grant | undefined> {
    return this.#grants.get(id);
  }

  subscribe(): () => void {
    return () => undefined;
  }

  close(): Promise<void> {
    return this.#store.close();
  }

  /** Claims `record` in `map`, confirms, appends; puts `previous` back when either fails. */
  async #write<T extends { readonly id: string }>(
    map: Map<string, T>,
    record: T,
    previous: T | undefined,
    entries: StoreEntry[],
    options: WriteOptions | undefined,
  ): Promise<boolean> {
    map.set(record.id, record);
    try {
      await options?.confirm?.();
      await this.#store.put(...entries);
      return true;
    } catch (err) {
      if (map.get(record.id) === record) {
        if (previous === undefined) map.delete(record.id);
        else map.set(record.id, previous);
      }
      throw err;
    }
  }
}

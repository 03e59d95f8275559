/**
 * Connection ids the gateway hands its MySQL clients (in the greeting, and what `KILL` and
 * `KILL QUERY` name), shared by every listener of the process. A client never sees an
 * upstream thread id it could use against another user's connection: `KILL n` is always read
 * in the gateway's own id space.
 */
export interface KillTarget {
  /** The identity subject of the session, for the same-identity check. */
  readonly subject: () => string | undefined;
  /** The governed session, for the audit record. */
  readonly sessionRef: () => unknown;
  /** Stops the statement running (or withdraws one held for review). */
  killQuery(): Promise<void>;
  /** Ends the session. */
  killConnection(): void;
}

export class ConnectionRegistry {
  readonly #entries = new Map<number, KillTarget>();
  #next = 1;

  /** A new id, never 0 and never one in use. */
  register(target: KillTarget): number {
    for (;;) {
      const id = this.#next;
      this.#next = this.#next >= 0xfffffffe ? 1 : this.#next + 1;
      if (this.#entries.has(id)) continue;
      this.#entries.set(id, target);
      return id;
    }
  }

  unregister(id: number): void {
    this.#entries.delete(id);
  }

  lookup(id: number): KillTarget | undefined {
    return this.#entries.get(id);
  }

  get size(): number {
    return this.#entries.size;
  }
}

/**
 * `KILL [HARD | SOFT] [CONNECTION | QUERY] n` with a plain number; undefined for any other
 * form. The session refuses the others (`KILL USER u` would end every session of the
 * gateway's shared upstream account; MariaDB's `KILL QUERY ID n` names a query, not a
 * connection).
 */
export function parseKill(text: string): { readonly query: boolean; readonly id: number } | undefined {
  const m = /^\s*kill\s+(?:(?:hard|soft)\s+)?(?:(connection)\s+|(query)\s+)?(\d{1,10})\s*;?\s*$/i.exec(text);
  if (!m) return undefined;
  const id = Number(m[3]);
  if (!Number.isSafeInteger(id)) return undefined;
  return { query: m[2] !== undefined, id };
}

import { randomInt } from 'node:crypto';

/** What a client's BackendKeyData maps to: its own upstream backend. */
export interface CancelTarget {
  cancel(): Promise<void>;
  /** For the audit record. */
  readonly sessionRef: unknown;
}

/**
 * Clients get a key minted by the gateway, never the upstream's. A CancelRequest is honoured
 * only for the exact (processId, secretKey) pair, and reaches only that session's upstream.
 */
export class CancelRegistry {
  readonly #entries = new Map<string, CancelTarget>();

  /** Mints a unique key for a session. */
  register(target: CancelTarget): { processId: number; secretKey: number } {
    for (;;) {
      const processId = randomInt(1, 0x7fffffff);
      const secretKey = randomInt(-0x80000000, 0x7fffffff);
      const k = `${processId}:${secretKey}`;
      if (this.#entries.has(k)) continue;
      this.#entries.set(k, target);
      return { processId, secretKey };
    }
  }

  unregister(key: { processId: number; secretKey: number }): void {
    this.#entries.delete(`${key.processId}:${key.secretKey}`);
  }

  lookup(processId: number, secretKey: number): CancelTarget | undefined {
    return this.#entries.get(`${processId}:${secretKey}`);
  }

  get size(): number {
    return this.#entries.size;
  }
}

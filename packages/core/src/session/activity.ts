import { clientErrors, type ClientFacingError } from '../errors.js';

/** The timeouts a session's activity is watched with (from `ListenerLimits`); 0 or absent: off. */
export interface ActivityLimits {
  readonly idleSessionTimeoutMs?: number | undefined;
  readonly idleInTransactionTimeoutMs?: number | undefined;
}

export interface ActivityHandlers {
  /**
   * The session waited for its client too long: end it with `error` (sent natively) and audit
   * `reason` ('idle-timeout' or 'idle-in-transaction-timeout').
   */
  onIdleTimeout(error: ClientFacingError, reason: 'idle-timeout' | 'idle-in-transaction-timeout'): void;
  /** The gateway is draining and the session has nothing in progress: end it now ('shutdown'). */
  onDrained(): void;
}

/**
 * What a dialect session tells about its client's requests, for the idle timeouts and for a
 * graceful shutdown. The session calls `busy()` when the client sends something and `idle()`
 * when everything the client asked for is answered (nothing in flight, nothing held for an
 * approver), with whether the upstream said a transaction is open. A statement that runs or
 * waits for an approver is never idle.
 *
 * As PostgreSQL does, the idle session timeout applies outside a transaction and the
 * idle-in-transaction timeout inside one. The cost per request is a flag and, when a timeout is
 * configured, the refresh of one timer.
 */
export class SessionActivity {
  readonly #sessionMs: number;
  readonly #transactionMs: number;
  readonly #handlers: ActivityHandlers;
  #timer: NodeJS.Timeout | undefined;
  #timerMs = 0;
  #busy = true;
  #inTransaction = false;
  #draining = false;
  #stopped = false;

  constructor(limits: ActivityLimits, handlers: ActivityHandlers) {
    this.#sessionMs = limits.idleSessionTimeoutMs ?? 0;
    this.#transactionMs = limits.idleInTransactionTimeoutMs ?? 0;
    this.#handlers = handlers;
  }

  /** The client sent something. */
  busyNow(): void {
    this.#busy = true;
  }

  /** Everything the client asked for is answered; `inTransaction`: the upstream said so. */
  idle(inTransaction: boolean): void {
    if (this.#stopped) return;
    this.#busy = false;
    this.#inTransaction = inTransaction;
    if (this.#draining) {
      this.stop();
      this.#handlers.onDrained();
      return;
    }
    const ms = inTransaction ? this.#transactionMs : this.#sessionMs;
    if (ms <= 0) return;
    if (this.#timer !== undefined && this.#timerMs === ms) {
      this.#timer.refresh();
      return;
    }
    clearTimeout(this.#timer);
    this.#timerMs = ms;
    this.#timer = setTimeout(this.#fire, ms);
    this.#timer.unref();
  }

  readonly #fire = (): void => {
    if (this.#busy || this.#stopped) return;
    const ms = this.#inTransaction ? this.#transactionMs : this.#sessionMs;
    if (ms <= 0 || ms !== this.#timerMs) return;
    this.stop();
    if (this.#inTransaction) this.#handlers.onIdleTimeout(clientErrors.idleInTransactionTimeout(ms), 'idle-in-transaction-timeout');
    else this.#handlers.onIdleTimeout(clientErrors.idleTimeout(ms), 'idle-timeout');
  };

  /**
   * The gateway is shutting down: a session with nothing in progress ends now, a busy one as
   * soon as its requests are answered.
   */
  drain(): void {
    if (this.#stopped) return;
    this.#draining = true;
    if (!this.#busy) {
      this.stop();
      this.#handlers.onDrained();
    }
  }

  /** The session ended: no more timeouts. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

import type { Socket } from 'node:net';
import type { Logger } from 'pino';

/**
 * The sessions of one dialect listener: started for each accepted socket (unless the listener
 * is closing), forgotten when they close, all ended by `close()`, which resolves once the last
 * one is gone. Every dialect's listener keeps its sessions this way.
 */
export class ListenerSessions<S extends { shutdown(): void; drain?(): void }> {
  readonly #sessions = new Set<S>();
  readonly #logger: Logger;
  #closing = false;
  #drained: (() => void) | undefined;
  #done: Promise<void> | undefined;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /**
   * Starts a session for `socket` with `start`, which gets the callback the session calls when
   * it has closed. Never throws: a session that cannot start is logged and its socket closed.
   */
  accept(socket: Socket, start: (onClosed: (session: S) => void) => S): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    try {
      this.#sessions.add(start(this.#onClosed));
    } catch (err) {
      this.#logger.error({ err }, 'could not start a client session');
      socket.destroy();
    }
  }

  readonly #onClosed = (session: S): void => {
    this.#sessions.delete(session);
    if (this.#closing && this.#sessions.size === 0) this.#drained?.();
  };

  /**
   * Ends every session (each says why: the gateway shuts down) and resolves when all are
   * closed. With `graceMs`, sessions that can drain (`drain()`) and are running a request may
   * finish it first (idle ones end at once); those still open after `graceMs` are ended.
   */
  close(options: { readonly graceMs?: number } = {}): Promise<void> {
    this.#closing = true;
    if (this.#sessions.size === 0) return Promise.resolve();
    // A second call (a forced stop during a graceful one) shares the first one's promise, so
    // that the first caller is not left waiting on a resolver the second replaced.
    const draining = this.#done !== undefined;
    this.#done ??= new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    const done = this.#done;
    const graceMs = options.graceMs ?? 0;
    if (graceMs <= 0) {
      for (const s of [...this.#sessions]) s.shutdown();
      return done;
    }
    if (draining) return done;
    for (const s of [...this.#sessions]) {
      if (s.drain) s.drain();
      else s.shutdown();
    }
    if (this.#sessions.size === 0) return done;
    const timer = setTimeout(() => {
      if (this.#sessions.size > 0) this.#logger.warn({ sessions: this.#sessions.size, graceMs }, 'sessions still busy after the shutdown grace period are ended');
      for (const s of [...this.#sessions]) s.shutdown();
    }, graceMs);
    timer.unref();
    return done.finally(() => clearTimeout(timer));
  }
}

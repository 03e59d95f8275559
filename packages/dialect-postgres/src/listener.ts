import type { Socket } from 'node:net';
import type { Analysis, DialectListener, ListenerContext } from '@sluice/core';
import { CancelRegistry } from './cancel-registry.js';
import { PostgresClientSession } from './client/session.js';
import type { PostgresTargetOptions } from './config.js';

/** Accepts client sockets for one listen address and tracks their sessions. */
export class PostgresListener implements DialectListener {
  readonly #context: ListenerContext<PostgresTargetOptions>;
  readonly #analyze: (text: string) => Analysis;
  readonly #sessions = new Set<PostgresClientSession>();
  readonly #cancels: CancelRegistry;
  #closing = false;
  #drained: (() => void) | undefined;

  constructor(context: ListenerContext<PostgresTargetOptions>, analyze: (text: string) => Analysis, cancels: CancelRegistry) {
    this.#context = context;
    this.#analyze = analyze;
    this.#cancels = cancels;
  }

  get activeSessions(): number {
    return this.#sessions.size;
  }

  accept(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    try {
      const session = new PostgresClientSession(socket, {
        context: this.#context,
        cancels: this.#cancels,
        analyze: this.#analyze,
        onClosed: (s) => {
          this.#sessions.delete(s);
          if (this.#closing && this.#sessions.size === 0) this.#drained?.();
        },
      });
      this.#sessions.add(session);
    } catch (err) {
      this.#context.logger.error({ err }, 'could not start a client session');
      socket.destroy();
    }
  }

  close(): Promise<void> {
    this.#closing = true;
    if (this.#sessions.size === 0) return Promise.resolve();
    const done = new Promise<void>((resolve) => {
      this.#drained = resolve;
    });
    for (const s of [...this.#sessions]) s.shutdown();
    return done;
  }
}

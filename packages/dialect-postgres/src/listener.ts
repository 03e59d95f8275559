import type { Socket } from 'node:net';
import { type Analysis, type DialectListener, type ListenerContext, ListenerSessions } from '@sluice/core';
import { CancelRegistry } from './cancel-registry.js';
import { PostgresClientSession } from './client/session.js';
import type { PostgresTargetOptions } from './config.js';

/** Accepts client sockets for one listen address and tracks their sessions. */
export class PostgresListener implements DialectListener {
  readonly #context: ListenerContext<PostgresTargetOptions>;
  readonly #analyze: (text: string) => Analysis;
  readonly #sessions: ListenerSessions<PostgresClientSession>;
  readonly #cancels: CancelRegistry;

  constructor(context: ListenerContext<PostgresTargetOptions>, analyze: (text: string) => Analysis, cancels: CancelRegistry) {
    this.#context = context;
    this.#analyze = analyze;
    this.#cancels = cancels;
    this.#sessions = new ListenerSessions(context.logger);
  }

  get activeSessions(): number {
    return this.#sessions.size;
  }

  accept(socket: Socket): void {
    this.#sessions.accept(
      socket,
      (onClosed) => new PostgresClientSession(socket, { context: this.#context, cancels: this.#cancels, analyze: this.#analyze, onClosed }),
    );
  }

  close(options?: { readonly graceMs?: number }): Promise<void> {
    return this.#sessions.close(options);
  }
}

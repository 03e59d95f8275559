import type { Socket } from 'node:net';
import { type DialectListener, type ListenerContext, ListenerSessions } from '@sluice/core';
import type { ResultMasking } from './client/masking.js';
import type { ConnectionRegistry } from './client/registry.js';
import { MysqlClientSession } from './client/session.js';
import type { MysqlTargetOptions } from './config.js';

/** Greeting version until an upstream has been seen: a MySQL 8 server. */
const DEFAULT_VERSION = '8.0.40-sluice';

/** Accepts client sockets for one listen address and tracks their sessions. */
export class MysqlListener implements DialectListener {
  readonly #context: ListenerContext<MysqlTargetOptions>;
  readonly #sessions: ListenerSessions<MysqlClientSession>;
  readonly #connections: ConnectionRegistry;
  readonly #masking: ResultMasking | undefined;
  /** The version clients are greeted with: the last upstream's (clients check it for features). */
  #version = DEFAULT_VERSION;

  constructor(context: ListenerContext<MysqlTargetOptions>, connections: ConnectionRegistry, masking: ResultMasking | undefined) {
    this.#context = context;
    this.#connections = connections;
    this.#masking = masking;
    this.#sessions = new ListenerSessions(context.logger);
  }

  get activeSessions(): number {
    return this.#sessions.size;
  }

  accept(socket: Socket): void {
    this.#sessions.accept(
      socket,
      (onClosed) =>
        new MysqlClientSession(socket, {
          context: this.#context,
          connections: this.#connections,
          serverVersion: () => this.#version,
          sawServerVersion: (v) => {
            this.#version = v;
          },
          ...(this.#masking ? { masking: this.#masking } : {}),
          onClosed,
        }),
    );
  }

  close(options?: { readonly graceMs?: number }): Promise<void> {
    return this.#sessions.close(options);
  }
}

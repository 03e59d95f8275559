import type { Socket } from 'node:net';
import type { DialectListener, ListenerContext } from '@sluice/core';
import { ConnectionRegistry } from './client/registry.js';
import type { ResultMasking } from './client/masking.js';
import { MysqlClientSession } from './client/session.js';
import type { MysqlTargetOptions } from './config.js';

/** Greeting version until an upstream has been seen: a MySQL 8 server. */
const DEFAULT_VERSION = '8.0.40-sluice';

/** Accepts client sockets for one listen address and tracks their sessions. */
export class MysqlListener implements DialectListener {
  readonly #context: ListenerContext<MysqlTargetOptions>;
  readonly #sessions = new Set<MysqlClientSession>();
  readonly #connections: ConnectionRegistry;
  readonly #masking: ResultMasking | undefined;
  #version = DEFAULT_VERSION;
  #closing = false;
  #drained: (() => void) | undefined;

  constructor(context: ListenerContext<MysqlTargetOptions>, connections: ConnectionRegistry, masking: ResultMasking | undefined) {
    this.#context = context;
    this.#connections = connections;
    this.#masking = masking;
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
      const session = new MysqlClientSession(socket, {
        context: this.#context,
        connections: this.#connections,
        serverVersion: () => this.#version,
        sawServerVersion: (v) => {
          this.#version = v;
        },
        ...(this.#masking ? { masking: this.#masking } : {}),
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

/**
 * The dialect SPI. A dialect turns bytes into requests and result metadata and back; it
 * never decides. Core (the Governor) owns identity, decisions and audit. The app composes.
 *
 * A dialect package exports one value made with `defineDialect`. See docs/dialect-sdk.md.
 */
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { ZodType } from 'zod';
import type { Analysis } from './analysis/types.js';
import type { ClientCertificatePolicy } from './identity/client-certificate.js';
import type { Governor } from './session/governor.js';

export const DIALECT_API_VERSION = 1 as const;

/** A configured target: a name clients ask for, and the dialect's own validated options. */
export interface Target<TOptions> {
  readonly name: string;
  readonly dialect: string;
  readonly options: TOptions;
}

export interface ListenerLimits {
  /** Largest client message accepted, in bytes; a larger one ends the session with a native error. */
  readonly maxMessageBytes: number;
  /** Time allowed from TCP accept to a verified identity. */
  readonly authTimeoutMs: number;
  /**
   * A session whose client sends nothing for this long outside a transaction is ended with the
   * dialect's native idle-timeout error (audit reason 'idle-timeout'). 0 or absent: off.
   */
  readonly idleSessionTimeoutMs?: number;
  /**
   * The same inside an open transaction, as the upstream reports it (the transaction is rolled
   * back by closing the upstream connection; audit reason 'idle-in-transaction-timeout'). 0 or absent: off.
   */
  readonly idleInTransactionTimeoutMs?: number;
}

/** What the app hands a dialect's listener. */
export interface ListenerContext<TOptions> {
  readonly governor: Governor;
  /** The listener's logger; a dialect makes one child per session. */
  readonly logger: Logger;
  /** Looks up a target of this dialect by the name the client asked for. Reflects reloads. */
  resolveTarget(name: string): Target<TOptions> | undefined;
  /** Names of this dialect's targets, for error hints. */
  targetNames(): readonly string[];
  /** TLS towards clients, when configured. */
  readonly tls: SecureContext | undefined;
  /** Refuse clients that do not upgrade to TLS. */
  readonly requireTls: boolean;
  /**
   * Mutual TLS: set when the listener asks clients for a certificate (verified against the CAs
   * in `tls`). The upgrade uses `clientCertificateSocketOptions`, and the login is refused
   * (natively, audited) unless `checkClientCertificate` accepts the client.
   */
  readonly clientCertificates?: ClientCertificatePolicy;
  /**
   * Whether a client on a loopback address may send its token in clear without TLS, for
   * dialects whose clients do so only when asked (MySQL's mysql_clear_password). Default false.
   */
  readonly allowPlaintextLoopback?: boolean;
  readonly limits: ListenerLimits;
}

export interface DialectListener {
  /** Takes ownership of an accepted client socket. Never throws; errors end that session only. */
  accept(socket: Socket): void;
  /** Sessions currently open. */
  readonly activeSessions: number;
  /**
   * Ends every session (their audit records say 'shutdown') and resolves when all are closed.
   * With `graceMs` (a graceful shutdown), idle sessions end at once and a session running a
   * request may finish it (its result delivered) within `graceMs`; then it is ended. A listener
   * that ignores the option ends every session at once, as before.
   */
  close(options?: { readonly graceMs?: number }): Promise<void>;
}

export interface Dialect<TOptions> {
  readonly apiVersion: typeof DIALECT_API_VERSION;
  /** The name used in config (`dialect: postgres`, `listen: { postgres: ... }`). */
  readonly name: string;
  readonly defaultPort: number;
  /** Validates a target's dialect-specific keys (everything but `name` and `dialect`). */
  readonly targetOptions: ZodType<TOptions>;
  /** Creates the client-facing listener. Called once per configured listen address. */
  createListener(context: ListenerContext<TOptions>): DialectListener;
  /** Analyses one request's text (may hold several statements). Must not throw. */
  analyze(text: string): Analysis;
}

/** Declares a dialect. Checks the API version so a plugin built for another core fails early. */
export function defineDialect<TOptions>(dialect: Dialect<TOptions>): Dialect<TOptions> {
  if (dialect.apiVersion !== DIALECT_API_VERSION) {
    throw new Error(
      `dialect "${dialect.name}" targets SPI version ${String(dialect.apiVersion)}, this core provides ${DIALECT_API_VERSION}`,
    );
  }
  return Object.freeze({ ...dialect });
}

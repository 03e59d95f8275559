import type { Socket } from 'node:net';
import tls from 'node:tls';
import {
  type Analysis,
  checkClientCertificate,
  type ClientCertificateInfo,
  clientCertificateSocketOptions,
  ClientFacingError,
  clientErrors,
  combineAnalyses,
  executionOf,
  type GovernedSession,
  type HeldInfo,
  type Identity,
  type ListenerContext,
  type Logger,
  OperationClass,
  type LoginAttempt,
  type MaskedColumn,
  SessionActivity,
  type StatementHandle,
  type StatementOutcome,
  toClientFacing,
} from '@sluice/core';
import { FrameBuffer, FrameTooLargeError, InvalidFrameLengthError } from '@sluice/wire';
import type { PostgresAnalysis } from '../analyze/analyze.js';
import type { CancelRegistry } from '../cancel-registry.js';
import type { PostgresTargetOptions } from '../config.js';
import { encodeClientError, sqlstateOf } from '../errors.js';
import {
  AUTHENTICATION_CLEARTEXT_PASSWORD,
  AUTHENTICATION_OK,
  encodeBackendKeyData,
  encodeReadyForQuery,
} from '../messages/backend-messages.js';
import { encodeErrorResponse, readErrorCode } from '../messages/error-response.js';
import { Backend, Frontend, startupFraming, typedFraming } from '../messages/framing.js';
import {
  decodeBindNames,
  decodeBindParameters,
  decodeClose,
  decodeCommandTag,
  decodeExecute,
  decodeFunctionCall,
  decodeParse,
  decodePassword,
  decodeQuery,
  rowsFromTag,
} from '../messages/frontend-messages.js';
import { decodeStartupPacket, SSL_ACCEPTED, SSL_REFUSED } from '../messages/startup-message.js';
import { BackendScanner, type BackendScanHandler } from '../server/backend-scanner.js';
import { connectUpstream, sendUpstreamCancel, UpstreamError, type UpstreamConnection } from '../server/upstream.js';
import { Ledger, type LedgerEntry, type PreparedStatement, type ResultMasking } from './ledger.js';
import { catalogFor } from '../masking/catalog.js';
import { decodeRowDescription, OutBuffer, type RowMasker } from '../masking/plan.js';
import { SessionMasking } from '../masking/session-masking.js';

/** What the analyzer says about SQL-level PREPARE, EXECUTE and DEALLOCATE. */
type SqlAnalysis = Analysis & {
  readonly prepare?: { readonly name: string; readonly statement: Analysis };
  readonly execute?: string;
  readonly deallocate?: string;
};

export const SessionState = {
  /** Waiting for the startup packet (or SSLRequest). */
  Startup: 'startup',
  /** Asked for the password, waiting for it. */
  AwaitingPassword: 'awaiting-password',
  /** Verifying the identity and opening the upstream. */
  Authenticating: 'authenticating',
  /** Relaying. */
  Ready: 'ready',
  Closed: 'closed',
} as const;
export type SessionState = (typeof SessionState)[keyof typeof SessionState];

export interface SessionDeps {
  readonly context: ListenerContext<PostgresTargetOptions>;
  readonly cancels: CancelRegistry;
  readonly analyze: (text: string) => Analysis;
  readonly onClosed: (session: PostgresClientSession) => void;
}

/** Backend message types the relay reads; all others pass without being looked at. */
const COLLECTED = [
  Backend.ParseComplete,
  Backend.BindComplete,
  Backend.CopyInResponse,
  Backend.CommandComplete,
  Backend.ErrorResponse,
  Backend.ReadyForQuery,
  Backend.EmptyQueryResponse,
  Backend.PortalSuspended,
  Backend.FunctionCallResponse,
  Backend.ParameterStatus,
];

/**
 * Client encodings in which a byte that looks like a quote or a backslash can be the second
 * byte of a character: the server would split and read the text differently from the
 * gateway's analysis, so statements could run undecided and unmasked. Sessions are refused
 * (or ended) when one is in force.
 */
const UNSAFE_CLIENT_ENCODINGS = new Set(['SJIS', 'SHIFT_JIS_2004', 'BIG5', 'GBK', 'GB18030', 'UHC', 'JOHAB']);

/** A setting the gateway's analysis cannot follow, from a ParameterStatus frame; undefined when fine. */
function unfollowableSetting(frame: Buffer): string | undefined {
  const nameEnd = frame.indexOf(0, 5);
  if (nameEnd < 0) return undefined;
  const name = frame.toString('utf8', 5, nameEnd);
  const valueEnd = frame.indexOf(0, nameEnd + 1);
  const value = frame.toString('utf8', nameEnd + 1, valueEnd < 0 ? frame.length : valueEnd);
  if (name === 'client_encoding' && UNSAFE_CLIENT_ENCODINGS.has(value.toUpperCase())) {
    return `client_encoding ${value} (a byte of one of its characters can look like a quote; use UTF8)`;
  }
  if (name === 'standard_conforming_strings' && value.toLowerCase() === 'off') {
    return 'standard_conforming_strings = off (leave it on, the default)';
  }
  return undefined;
}

/** Read as well when results may be masked (DataRow and CopyData whole, see `collect`). */
const MASKING_COLLECTED = [Backend.RowDescription, Backend.NoData, Backend.CopyOutResponse, Backend.NoticeResponse];

/** Describe of a portal, sent by the gateway before an Execute whose result it has not seen described. */
function describePortal(name: string): Buffer {
  const body = Buffer.from(`P${name}\0`, 'utf8');
  const frame = Buffer.allocUnsafe(5 + body.length);
  frame[0] = Frontend.Describe;
  frame.writeInt32BE(4 + body.length, 1);
  body.copy(frame, 5);
  return frame;
}

/**
 * Requests the gateway cannot read are `unknown`, never harmless: a FunctionCall by OID, or an
 * Execute of a portal whose Bind the gateway did not see succeed.
 */
function unreadable(what: string): Analysis {
  return Object.freeze({
    normalized: `-- ${what}`,
    fingerprint: '0000000000000000',
    operations: Object.freeze([OperationClass.Unknown]),
    statementCount: 1,
    commands: Object.freeze([]),
  });
}
const FUNCTION_CALL = unreadable('function call by OID');
const UNKNOWN_PORTAL = unreadable('execute of an unknown portal');


const EMPTY = Buffer.alloc(0);
/** The portal name the gateway uses to make the server fail in place of a refused message. */
const REFUSED_PORTAL = 'sluice: statement refused by the gateway';
/** Sent in place of a refused extended-protocol message: fails with 34000, changes nothing. */
const REFUSED_EXECUTE = (() => {
  const name = Buffer.from(REFUSED_PORTAL, 'utf8');
  const b = Buffer.alloc(1 + 4 + name.length + 1 + 4);
  b[0] = 0x45;
  b.writeInt32BE(b.length - 1, 1);
  name.copy(b, 5);
  return b;
})();
/** Sent in place of a refused Query: a syntax error, so nothing runs. */
const REFUSED_QUERY = (() => {
  const text = Buffer.from('/* sluice: statement refused by the gateway */ )', 'utf8');
  const b = Buffer.alloc(1 + 4 + text.length + 1);
  b[0] = 0x51;
  b.writeInt32BE(b.length - 1, 1);
  text.copy(b, 5);
  return b;
})();
/** An ErrorResponse of the server longer than this is not one the gateway provoked. */
const MAX_PROVOKED_ERROR_BYTES = 4096;
/** A Flush message: asks the server for the answers it holds back until Sync. */
const FLUSH = Buffer.from([0x48, 0, 0, 0, 4]);

/** Largest startup packet (PostgreSQL's own limit is 10,000 bytes). */
const MAX_STARTUP_BYTES = 10_000;
/** Largest password message: a JWT with many claims fits easily. */
const MAX_PASSWORD_BYTES = 64 * 1024;
/** Prepared statements one session may hold (the upstream has no limit; memory does). */
const MAX_PREPARED = 10_000;
/** Requests in flight without an answer before a session is considered abusive. */
const MAX_IN_FLIGHT = 100_000;

/** The same refusal, but ending the session. */
function asFatal(err: ClientFacingError): ClientFacingError {
  if (err.fatal) return err;
  return new ClientFacingError(err.kind, err.message, { cause: err, detail: err.detail, hint: err.hint, fatal: true });
}

/** Bytes of Bind messages kept for statements that may be held for review, per session. */
const MAX_RETAINED_BIND_BYTES = 64 * 1024 * 1024;

/** TCP keep-alive on client connections, so a statement waiting for an approver keeps its session. */
const KEEPALIVE_MS = 30_000;

/** Bytes a client may send past a held statement before its socket is paused. */
const HOLD_BUFFER_BYTES = 256 * 1024;

const FORWARD = 0;
const DROP = 1;
type FrameVerdict = typeof FORWARD | typeof DROP | Promise<typeof FORWARD | typeof DROP>;

/**
 * One client connection: startup, TLS, authentication, the upstream connection, then the
 * relay. Client bytes are forwarded as they came unless a decision needs to hold them; the
 * upstream's bytes are forwarded chunk by chunk after a scan that reads only a few message
 * types.
 */
export class PostgresClientSession {
  state: SessionState = SessionState.Startup;
  #socket: Socket;
  readonly #deps: SessionDeps;
  #log: Logger;
  readonly #source: string;
  #tls = false;
  /** The client's verified certificate (mutual TLS). */
  #clientCert: ClientCertificateInfo | undefined;
  #frames: FrameBuffer;
  #params: ReadonlyMap<string, string> = new Map();
  #authTimer: NodeJS.Timeout | undefined;
  /** Idle timeouts and the graceful shutdown: told when the client sends and when all is answered. */
  readonly #activity: SessionActivity;

  #upstream: UpstreamConnection | undefined;
  #governed: GovernedSession | undefined;
  #cancelKey: { processId: number; secretKey: number } | undefined;
  readonly #ledger = new Ledger();
  readonly #scanner = new BackendScanner(COLLECTED);
  /** Statements and portals the server has accepted (ParseComplete, BindComplete). */
  readonly #statements = new Map<string, PreparedStatement>();
  readonly #portals = new Map<string, PreparedStatement>();
  /** The latest Parse / Bind of each name still waiting for the server's answer. */
  readonly #pendingStatements = new Map<string, PreparedStatement>();
  readonly #pendingPortals = new Map<string, PreparedStatement | undefined>();
  /** After an ErrorResponse in the extended protocol the server skips everything until Sync. */
  #skipping = false;
  /** The client is sending COPY data: its Sync and Flush are ignored by the server. */
  #clientInCopy = false;
  #txStatus: 'I' | 'T' | 'E' = 'I';
  /** DataRows since the last completion, for PortalSuspended. */
  #rowCount = 0;
  /**
   * The gateway refused an extended-protocol message: like the server after an error, it
   * discards everything up to the next Sync (which it forwards, so the server answers it).
   */
  #discarding = false;
  /** Refusals in flight (ledger entries of kind `refused`). */
  #refusalsPending = 0;
  /**
   * While a refusal is in flight: the first bytes of an upstream message that may be the
   * server's error the refusal replaces, kept back until it is complete.
   */
  #tail: Buffer | undefined;
  /** Gateway messages waiting for the upstream stream to reach a message boundary. */
  #deferred: Buffer[] = [];
  /**
   * SQL PREPARE / DEALLOCATE / DISCARD in flight (by name; `*` for ALL), applied when the
   * server completes them. While one is in flight, what its name refers to is not known.
   */
  readonly #sqlPending = new WeakMap<StatementHandle, SqlAnalysis>();
  #sqlPendingCount = 0;
  readonly #sqlInFlight = new Map<string, number>();
  /** For requests whose SQL EXECUTEs were resolved: what they run, for an approver. */
  readonly #sqlNotes = new WeakMap<Analysis, string>();
  #retainedBindBytes = 0;
  /** Waiting for everything forwarded so far to be answered (or for the server's error). */
  #settleWaiters: (() => void)[] = [];

  /** Client bytes queued for the upstream: closed ranges, and the range still growing. */
  #out: Buffer[] = [];
  #runBuffer: Buffer | undefined;
  #runStart = 0;
  #runEnd = 0;
  /** Set while a frame waits for a decision; client reads are paused. */
  #holding = false;
  #upstreamFull = false;
  #clientFull = false;
  #terminated = false;
  /** The upstream chunk being relayed and how much of it is already written. */
  #chunk: Buffer = EMPTY;
  #chunkWritten = 0;
  /** Set when results of this session may be masked. */
  #masking: SessionMasking | undefined;
  #target: PostgresTargetOptions | undefined;

  /** Starts masking this session's results when the configuration says some may need it. */
  #enableMasking(): void {
    if (this.#masking !== undefined || this.#target === undefined || !this.#governed?.masking) return;
    this.#masking = new SessionMasking(this.#governed, catalogFor(this.#target, this.#deps.context.logger), this.#log);
    for (const t of MASKING_COLLECTED) this.#scanner.collect(t);
    this.#scanner.collect(Backend.RowDescription, true);
    this.#scanner.collect(Backend.DataRow, true);
    this.#scanner.collect(Backend.CopyData, true);
  }
  /**
   * The bytes of the upstream message in progress are being dropped (not written): it is
   * rewritten when complete (a masked row, an error without sensitive values).
   */
  #dropping = false;
  /** Outcomes seen in the current upstream chunk, as handle, outcome pairs. */
  readonly #completions: (StatementHandle | StatementOutcome)[] = [];

  constructor(socket: Socket, deps: SessionDeps) {
    this.#socket = socket;
    this.#deps = deps;
    this.#source = socket.remoteAddress ?? 'unknown';
    this.#log = deps.context.logger.child({ client: `${this.#source}:${socket.remotePort ?? 0}` });
    // Before login a client gets small limits, as PostgreSQL does: nobody unauthenticated may
    // make the gateway buffer a large message.
    this.#frames = new FrameBuffer(startupFraming, MAX_STARTUP_BYTES);
    socket.setNoDelay(true);
    this.#attachClient(socket);
    this.#authTimer = setTimeout(() => this.#onAuthTimeout(), deps.context.limits.authTimeoutMs);
    this.#authTimer.unref();
    this.#activity = new SessionActivity(deps.context.limits, {
      onIdleTimeout: (err, reason) => this.#fail(err, reason),
      // After the upstream chunk being relayed (the last answer) has been written to the client.
      onDrained: () => setImmediate(() => this.shutdown()),
    });
  }

  /** A method, not a field read, so that TypeScript does not narrow it away across awaits. */
  #isClosed(): boolean {
    return this.state === SessionState.Closed;
  }

  get sessionId(): string | undefined {
    return this.#governed?.id;
  }

  #attachClient(socket: Socket): void {
    socket.on('data', this.#onClientData);
    socket.on('error', this.#onClientError);
    socket.on('close', this.#onClientClose);
    socket.on('drain', this.#onClientDrain);
  }

  #detachClient(socket: Socket): void {
    socket.off('data', this.#onClientData);
    socket.off('error', this.#onClientError);
    socket.off('close', this.#onClientClose);
    socket.off('drain', this.#onClientDrain);
  }

  // ---------------------------------------------------------------- client side

  readonly #onClientData = (chunk: Buffer): void => {
    this.#activity.busyNow();
    this.#frames.push(chunk);
    if (this.#holding) this.#updateClientFlow();
    this.#processClientFrames();
  };

  readonly #onClientError = (err: Error): void => {
    this.#log.debug({ err }, 'client socket error');
  };

  readonly #onClientClose = (): void => {
    this.#close(this.#terminated ? 'client' : 'client-lost');
  };

  readonly #onClientDrain = (): void => {
    this.#clientFull = false;
    this.#upstream?.socket.resume();
  };

  #processClientFrames(): void {
    if (this.#holding || this.#isClosed()) return;
    try {
      for (let f = this.#frames.next(); f; f = this.#frames.next()) {
        const frame = f.buffer.subarray(f.start, f.end);
        const verdict = this.#onClientFrame(frame);
        if (verdict === FORWARD) {
          this.#queue(f.buffer, f.start, f.end);
        } else if (verdict !== DROP) {
          this.#flushToUpstream();
          this.#hold(verdict, frame);
          return;
        }
        if (this.#isClosed()) return;
      }
      this.#flushToUpstream();
      // Messages that get no answer to wait for (a Flush, a Close) leave the session idle.
      if (this.#ledger.empty && this.state === SessionState.Ready) this.#activity.idle(this.#txStatus !== 'I');
    } catch (err) {
      this.#fail(this.#asClientError(err));
    }
  }

  /** Pauses client reads until a decision is made, then forwards or drops the frame. */
  #hold(decision: Promise<typeof FORWARD | typeof DROP>, frame: Buffer): void {
    this.#holding = true;
    this.#updateClientFlow();
    decision.then(
      (v) => {
        this.#holding = false;
        if (this.#isClosed()) return;
        if (v === FORWARD) this.#queue(frame, 0, frame.length);
        this.#updateClientFlow();
        this.#processClientFrames();
      },
      (err: unknown) => {
        // Whatever fails while a frame is held ends the session: the frames behind it cannot
        // be answered in order any more.
        this.#holding = false;
        this.#fail(asFatal(toClientFacing(err)));
      },
    );
  }

  /**
   * Reads from the client only while the upstream keeps up and nothing is held, except that
   * a held decision does not pause the socket until a little data has piled up behind it:
   * a client usually waits for the answer, and pausing and resuming the socket for every
   * privileged statement costs more than the statement's own relay.
   */
  #updateClientFlow(): void {
    if (this.#isClosed()) return;
    const stop = this.#upstreamFull || (this.#holding && this.#frames.buffered > HOLD_BUFFER_BYTES);
    if (stop) {
      if (!this.#socket.isPaused()) this.#socket.pause();
    } else if (this.#socket.isPaused()) {
      this.#socket.resume();
    }
  }

  #asClientError(err: unknown): ClientFacingError {
    if (ClientFacingError.is(err)) return err;
    if (err instanceof FrameTooLargeError) return clientErrors.messageTooLarge(err.size, err.limit);
    if (err instanceof InvalidFrameLengthError) return clientErrors.protocolViolation(`invalid message length ${err.length}`);
    if (err instanceof RangeError) return clientErrors.protocolViolation(`malformed message (${err.message})`);
    this.#log.error({ err }, 'unexpected error in client session');
    return clientErrors.internal({ cause: err });
  }

  #onClientFrame(frame: Buffer): FrameVerdict {
    switch (this.state) {
      case SessionState.Startup:
        this.#onStartupPacket(frame);
        return DROP;
      case SessionState.AwaitingPassword:
        if (frame[0] !== Frontend.Password) {
          throw clientErrors.protocolViolation('expected a password message');
        }
        this.#onPassword(decodePassword(frame));
        return DROP;
      case SessionState.Ready:
        return this.#onReadyFrame(frame);
      default:
        // Authenticating: the client must wait for AuthenticationOk.
        throw clientErrors.protocolViolation('message received before authentication completed');
    }
  }

  // ---------------------------------------------------------------- startup and authentication

  #onStartupPacket(frame: Buffer): void {
    const packet = decodeStartupPacket(frame);
    switch (packet.kind) {
      case 'ssl':
        this.#startTls();
        return;
      case 'gssenc':
        this.#socket.write(SSL_REFUSED);
        return;
      case 'cancel':
        this.#onCancelRequest(packet.processId, packet.secretKey);
        return;
      case 'unsupported':
        throw clientErrors.featureNotSupported(`protocol version ${packet.code >> 16}.${packet.code & 0xffff}`);
      case 'startup':
        break;
    }
    this.#params = packet.params;
    if (packet.params.has('replication') && packet.params.get('replication') !== 'false') {
      throw new ClientFacingError('feature_not_supported', 'replication connections are not supported by the gateway', { fatal: true });
    }
    if (!packet.params.get('user')) throw clientErrors.protocolViolation('the startup message names no user');
    if (this.#deps.context.requireTls && !this.#tls) {
      this.#refuseLogin(clientErrors.authFailed('this gateway requires TLS; connect with sslmode=require'));
      return;
    }
    const cert = checkClientCertificate(this.#tls ? (this.#socket as tls.TLSSocket) : undefined, this.#deps.context.clientCertificates);
    if (!cert.ok) {
      this.#log.warn({ reason: cert.reason }, 'client certificate refused');
      this.#refuseLogin(clientErrors.authFailed(cert.reason));
      return;
    }
    this.#clientCert = cert.certificate;
    this.#frames.setFraming(typedFraming);
    this.#frames.setMaxFrameBytes(MAX_PASSWORD_BYTES);
    this.state = SessionState.AwaitingPassword;
    this.#socket.write(AUTHENTICATION_CLEARTEXT_PASSWORD);
  }

  #startTls(): void {
    const context = this.#deps.context.tls;
    if (!context || this.#tls) {
      this.#socket.write(SSL_REFUSED);
      return;
    }
    if (this.#frames.buffered > 0) {
      // Bytes after SSLRequest would be plaintext the client sent before the handshake.
      throw clientErrors.protocolViolation('data received after SSLRequest before the TLS handshake');
    }
    const raw = this.#socket;
    this.#detachClient(raw);
    raw.write(SSL_ACCEPTED);
    const secure = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      ...clientCertificateSocketOptions(this.#deps.context.clientCertificates),
    });
    secure.on('error', (err) => {
      this.#log.debug({ err }, 'client TLS error');
      this.#close('client-lost');
    });
    this.#socket = secure;
    this.#tls = true;
    this.#attachClient(secure);
  }

  #loginAttempt(secret: string): LoginAttempt {
    return {
      dialect: 'postgres',
      credentials: { username: this.#params.get('user') ?? '', secret, sourceAddress: this.#source },
      tls: this.#tls,
      requestedTarget: this.#params.get('database') ?? this.#params.get('user') ?? '',
      ...(this.#params.get('application_name') ? { application: this.#params.get('application_name')! } : {}),
    };
  }

  #refuseLogin(err: ClientFacingError, identity?: Identity): void {
    void this.#deps.context.governor.refuseConnection(this.#loginAttempt(''), err.message, identity);
    this.#fail(err);
  }

  #onPassword(secret: string): void {
    this.state = SessionState.Authenticating;
    this.#holding = true;
    this.#updateClientFlow();
    this.#authenticate(secret).then(
      () => {
        this.#holding = false;
        this.#updateClientFlow();
        this.#processClientFrames();
      },
      (err: unknown) => this.#fail(toClientFacing(err)),
    );
  }

  async #authenticate(secret: string): Promise<void> {
    const { governor } = this.#deps.context;
    const attempt = this.#loginAttempt(secret);
    // Refusals are audited by the governor.
    const identity = await governor.authenticate(attempt);
    const withoutSecret = { ...attempt, credentials: { ...attempt.credentials, secret: '' } };
    if (this.#isClosed()) {
      await governor.refuseConnection(withoutSecret, 'the client was disconnected before the login completed', identity);
      return;
    }
    // Over a connection limit: refused before the database is asked for a connection.
    await governor.checkConnectionLimits(withoutSecret, identity);
    const targetName = attempt.requestedTarget ?? '';
    const target = this.#deps.context.resolveTarget(targetName);
    if (!target) {
      const err = clientErrors.targetNotFound(targetName, this.#deps.context.targetNames());
      await governor.refuseConnection(withoutSecret, err.message, identity);
      throw err;
    }
    let upstream: UpstreamConnection;
    try {
      upstream = await connectUpstream(target.options, this.#params);
    } catch (cause) {
      const upstreamMessage = cause instanceof UpstreamError ? cause.message : 'unexpected error';
      this.#log.warn({ err: cause, target: target.name }, 'upstream connection failed');
      // The upstream's own message (host, port, account) goes to the log and the audit, not to the client.
      const err = clientErrors.upstreamUnavailable(target.name, { cause });
      await governor.refuseConnection(withoutSecret, `${err.message}: ${upstreamMessage}`, identity);
      throw err;
    }
    if (this.#isClosed()) {
      upstream.socket.destroy();
      await governor.refuseConnection(withoutSecret, 'the client was disconnected before the login completed', identity);
      return;
    }
    this.#upstream = upstream;
    this.#attachUpstream(upstream);
    try {
      this.#governed = await governor.openSession({
        dialect: 'postgres',
        identity,
        username: attempt.credentials.username,
        target: target.name,
        sourceAddress: this.#source,
        tls: this.#tls,
        ...(attempt.application ? { application: attempt.application } : {}),
        ...(this.#clientCert ? { clientCert: this.#clientCert } : {}),
        database: target.options.upstream.database,
        server: { address: target.options.upstream.host, port: target.options.upstream.port },
      });
    } catch (err) {
      upstream.socket.destroy();
      throw err;
    }
    if (this.#isClosed()) {
      void this.#governed.end('client-lost');
      return;
    }
    clearTimeout(this.#authTimer);
    this.#log = this.#log.child({ sessionId: this.#governed.id, subject: identity.subject, target: target.name });
    const options = target.options;
    this.#cancelKey = this.#deps.cancels.register({
      sessionRef: this.#governed,
      // A statement held for review has not reached the database: the cancel withdraws it.
      // When something else is in flight too, the cancel also goes to the server.
      cancel: () =>
        this.#governed?.cancelReview() && this.#ledger.size <= 1
          ? Promise.resolve()
          : sendUpstreamCancel(options, upstream.processId, upstream.secretKey),
    });
    this.#txStatus = upstream.transactionStatus;
    for (const f of upstream.parameterStatus) {
      const problem = unfollowableSetting(f);
      if (problem !== undefined) {
        upstream.socket.destroy();
        const err = clientErrors.featureNotSupported(problem);
        void this.#governed.end('refused');
        throw err;
      }
    }
    const greeting = [
      AUTHENTICATION_OK,
      ...upstream.parameterStatus,
      ...upstream.notices,
      encodeBackendKeyData(this.#cancelKey.processId, this.#cancelKey.secretKey),
      encodeReadyForQuery(upstream.transactionStatus),
    ];
    this.#socket.write(Buffer.concat(greeting));
    this.#frames.setMaxFrameBytes(this.#deps.context.limits.maxMessageBytes);
    this.#socket.setKeepAlive(true, KEEPALIVE_MS);
    upstream.socket.setKeepAlive(true, KEEPALIVE_MS);
    this.#target = options;
    this.#enableMasking();
    this.state = SessionState.Ready;
    this.#log.debug('session ready');
    this.#activity.idle(upstream.transactionStatus !== 'I');
    if (upstream.leftover.length > 0) this.#onUpstreamData(upstream.leftover);
    upstream.socket.resume();
  }

  #onAuthTimeout(): void {
    if (this.state === SessionState.Ready || this.#isClosed()) return;
    const err = clientErrors.authFailed(`authentication did not complete within ${this.#deps.context.limits.authTimeoutMs} ms`);
    // Before a startup packet there is nobody to record; while the login is being verified,
    // its own continuation records the outcome (so a login is never both refused and accepted).
    if ((this.state === SessionState.Startup && this.#params.size === 0) || this.state === SessionState.Authenticating) {
      this.#fail(err);
      return;
    }
    this.#refuseLogin(err);
  }

  #onCancelRequest(processId: number, secretKey: number): void {
    const target = this.#deps.cancels.lookup(processId, secretKey);
    const { governor } = this.#deps.context;
    void governor.recordCancel('postgres', this.#source, target?.sessionRef as GovernedSession | undefined);
    if (target) {
      void target.cancel().catch((err: unknown) => this.#log.warn({ err }, 'forwarding a cancel request failed'));
    }
    // The protocol gives no answer to a CancelRequest: close the connection.
    this.#close('cancel-request');
  }

  // ---------------------------------------------------------------- relay: client → upstream

  #onReadyFrame(frame: Buffer): FrameVerdict {
    const type = frame[0];
    if (this.#discarding) {
      if (type === Frontend.Sync) {
        this.#discarding = false;
        this.#track({ kind: 'sync' });
        return FORWARD;
      }
      // A Flush makes the server send what it holds back: the refusal's error among it.
      if (type === Frontend.Flush) return FORWARD;
      if (type === Frontend.Terminate) {
        this.#terminated = true;
        return FORWARD;
      }
      // Not forwarded, as the server would have skipped it: it never happened.
      return DROP;
    }
    switch (type) {
      case Frontend.Query: {
        const text = decodeQuery(frame);
        return this.#withCatalog((refusal) => this.#beginSimple(text, 'simple', refusal));
      }
      case Frontend.Parse: {
        const { name, text } = decodeParse(frame);
        if (this.#statements.size + this.#pendingStatements.size >= MAX_PREPARED) {
          throw clientErrors.protocolViolation(`more than ${MAX_PREPARED} prepared statements in one session`);
        }
        // What a stored `EXECUTE name` runs is looked up when it runs, not now: the name may be
        // prepared again in between. The resolved analysis only refuses it early.
        const raw = this.#deps.analyze(text);
        const analysis = this.#resolveSql(raw);
        if (this.#governed!.decide(analysis).effect === 'deny') {
          // Refused before it exists: recorded (and its error made) by the governor.
          try {
            this.#governed!.beginRequest({ analysis, protocol: 'extended', text });
          } catch (err) {
            const e = toClientFacing(err);
            if (e.fatal) throw e;
            return this.#refuseExtended(e);
          }
        }
        const prepared: PreparedStatement = { text, analysis: raw };
        // It counts only once the server accepts it: a Parse of a name already in use fails
        // (42P05) and leaves the old statement in place.
        this.#pendingStatements.set(name, prepared);
        this.#track({ kind: 'parse', name, prepared });
        return FORWARD;
      }
      case Frontend.Bind: {
        const { portal, statement } = decodeBindNames(frame);
        if (portal === REFUSED_PORTAL) throw clientErrors.protocolViolation(`the portal name "${REFUSED_PORTAL}" is reserved by the gateway`);
        let prepared = this.#sqlUncertain(statement) ? undefined : (this.#pendingStatements.get(statement) ?? this.#statements.get(statement));
        // A statement that may be held for review (or whose decision depends on grants, which
        // come and go) keeps its parameters: the approver sees them and the approval is bound
        // to them.
        if (prepared) {
          const d = this.#governed!.decide(this.#resolveSql(prepared.analysis));
          if (d.effect === 'review' || d.volatile) {
            const keep = this.#retainedBindBytes + frame.length <= MAX_RETAINED_BIND_BYTES;
            if (keep) this.#retainedBindBytes += frame.length;
            prepared = {
              text: prepared.text,
              analysis: prepared.analysis,
              ...(keep ? { bind: Buffer.from(frame) } : {}),
              reviewable: keep,
            };
          }
        }
        if (this.#masking && prepared) {
          // A portal of its own: the description the server gives it (with its result formats).
          const statementOf = this.#pendingStatements.get(statement) ?? this.#statements.get(statement);
          prepared = {
            text: prepared.text,
            analysis: prepared.analysis,
            ...(prepared.bind ? { bind: prepared.bind } : {}),
            ...(prepared.reviewable !== undefined ? { reviewable: prepared.reviewable } : {}),
            ...(statementOf ? { statement: statementOf } : {}),
          };
        }
        this.#forgetPortal(this.#pendingPortals.get(portal));
        this.#pendingPortals.set(portal, prepared);
        this.#track({ kind: 'bind', portal, prepared });
        return FORWARD;
      }
      case Frontend.Execute: {
        const { portal } = decodeExecute(frame);
        // After its own error the server skips everything up to the next Sync: an Execute there
        // never runs, so it is neither decided nor held for review.
        if (this.#skipping && !this.#ledger.hasSync()) return DROP;
        const prepared = this.#pendingPortals.has(portal) ? this.#pendingPortals.get(portal) : this.#portals.get(portal);
        if (this.#masking === undefined) this.#enableMasking();
        if (this.#masking === undefined) return this.#beginExecute(prepared, portal);
        return this.#withCatalog((refusal) => this.#beginExecute(prepared, portal, refusal));
      }
      case Frontend.Close: {
        const { kind, name } = decodeClose(frame);
        if (kind === 'S') {
          this.#statements.delete(name);
          this.#pendingStatements.delete(name);
        } else {
          this.#forgetPortal(this.#portals.get(name));
          this.#forgetPortal(this.#pendingPortals.get(name));
          this.#portals.delete(name);
          this.#pendingPortals.delete(name);
        }
        return FORWARD;
      }
      case Frontend.Sync:
        if (!this.#clientInCopy) this.#track({ kind: 'sync' });
        return FORWARD;
      case Frontend.FunctionCall:
        // A direct function call by OID: nothing to analyse, so it is classed unknown.
        return this.#beginFunctionCall(frame);
      case Frontend.Terminate:
        this.#terminated = true;
        return FORWARD;
      case Frontend.CopyDone:
      case Frontend.CopyFail:
        // Before the server's CopyInResponse the gateway cannot tell yet which Syncs it ignores.
        if (this.#clientInCopy) this.#clientInCopy = false;
        else this.#track({ kind: 'copy-end' });
        return FORWARD;
      case Frontend.Describe:
        if (this.#masking) this.#trackDescribe(frame);
        return FORWARD;
      case Frontend.Flush:
      case Frontend.CopyData:
        return FORWARD;
      default:
        throw clientErrors.protocolViolation(`unexpected message type 0x${(type ?? 0).toString(16)}`);
    }
  }

  #beginSimple(text: string, protocol: 'simple', refusal: string | undefined): FrameVerdict {
    const analysis = this.#resolveSql(this.#deps.analyze(text));
    return this.#beginQuery(analysis, protocol, this.#reviewText(text, analysis), undefined, refusal);
  }

  /**
   * Runs `next` once the masking catalog is current (at once when it is, or without masking).
   * When it cannot be read, `next` gets the reason to refuse the statement: results that
   * cannot be masked do not leave.
   */
  #withCatalog(next: (refusal: string | undefined) => FrameVerdict): FrameVerdict {
    // A reload may have switched masking on (or a policy mask rule may now cover this identity).
    if (this.#masking === undefined) this.#enableMasking();
    const wait = this.#masking?.catalogReady();
    if (wait === undefined) return next(undefined);
    return wait.then(
      () => next(undefined),
      (err: unknown) => {
        this.#log.error({ err }, 'the masking catalog could not be read');
        return next('the gateway cannot read the database catalog it needs to mask results; the statement was refused');
      },
    ) as Promise<typeof FORWARD | typeof DROP>;
  }

  #beginFunctionCall(frame: Buffer): FrameVerdict {
    const call = decodeFunctionCall(frame);
    return this.#beginQuery(FUNCTION_CALL, 'function-call', `-- function call: OID ${call.oid}`, () => call.args);
  }

  /** A simple Query or a FunctionCall: decided as one request, answered by ReadyForQuery. */
  #beginQuery(
    analysis: Analysis,
    protocol: 'simple' | 'function-call',
    text: string,
    parameters: (() => readonly (string | null)[]) | undefined,
    maskingRefusal?: string,
  ): FrameVerdict {
    // After its own error in the extended protocol the server ignores a Query until Sync.
    if (this.#skipping && !this.#ledger.hasSync()) return DROP;
    const refusal = maskingRefusal ?? this.#masking?.refusal(analysis);
    if (refusal === undefined && !this.#ledger.empty && this.#governed!.decide(analysis).effect === 'review') {
      return this.#afterInFlight(() => this.#beginQuery(analysis, protocol, text, parameters));
    }
    // Each statement of a query string is recorded on its own; the string is decided as one.
    let request;
    try {
      request = this.#governed!.beginRequest({
        analysis,
        protocol,
        text,
        ...(parameters ? { parameters } : {}),
        ...(refusal !== undefined ? { refuse: { rule: 'masking', reason: refusal } } : {}),
        onHeld: (held) => this.#tellHeld(held),
      });
    } catch (err) {
      const e = toClientFacing(err);
      if (e.fatal) throw e;
      return this.#refuseSimple(e);
    }
    const { handles, ready } = request;
    const tracked: LedgerEntry = { kind: 'query' as const, handles, next: 0 };
    this.#track(tracked);
    const forward = (): typeof FORWARD => {
      this.#noteSqlPrepares(analysis, handles);
      return FORWARD;
    };
    if (ready === undefined) return forward();
    return ready.then(forward, (err: unknown) => {
      const e = toClientFacing(err);
      if (e.fatal) throw e;
      for (const h of handles) h.complete({ outcome: 'not-executed', ...(e.kind === 'governance_unavailable' ? { errorCode: '58000' } : {}) });
      this.#ledger.remove((x) => x === tracked);
      return this.#refuseSimple(e);
    });
  }

  /** True while a SQL PREPARE / DEALLOCATE / DISCARD that may change `name` is in flight. */
  #sqlUncertain(name: string): boolean {
    if (this.#sqlInFlight.size === 0) return false;
    return (this.#sqlInFlight.get(name) ?? 0) > 0 || (this.#sqlInFlight.get('*') ?? 0) > 0;
  }

  /**
   * Replaces each SQL-level EXECUTE by the statement it runs, when the session knows it for
   * sure (a statement prepared earlier in the same string, or one the server has accepted and
   * that nothing in flight may change); otherwise it stays `unknown`. Names are shared with the
   * extended protocol's named statements, as in PostgreSQL. `notes` tell an approver what the
   * EXECUTEs run.
   */
  #resolveSql(analysis: Analysis): Analysis {
    const parts = (analysis.parts ?? [analysis]) as readonly SqlAnalysis[];
    let any = false;
    for (let i = 0; i < parts.length; i++) if (parts[i]!.execute !== undefined) any = true;
    // The common case costs no allocation: this runs for every Parse, Bind and Execute.
    if (!any) return analysis;
    const provisional = new Map<string, { analysis: Analysis; text: string } | null>();
    let allGone = false;
    let notes = '';
    const resolved = parts.map((p) => {
      if (p.prepare) provisional.set(p.prepare.name, { analysis: p.prepare.statement, text: p.normalized });
      if (p.deallocate === '*') {
        provisional.clear();
        allGone = true;
      } else if (p.deallocate !== undefined) provisional.set(p.deallocate, null);
      if (p.execute === undefined) return p;
      const name = p.execute;
      let known: { analysis: Analysis; text: string } | null | undefined = provisional.get(name);
      if (known === undefined && !allGone && !this.#sqlUncertain(name) && !this.#pendingStatements.has(name)) {
        const st = this.#statements.get(name);
        if (st) known = { analysis: st.analysis, text: st.text };
      }
      if (!known) return p;
      notes += `\n-- ${name} is: ${known.text.replace(/\s+/g, ' ').slice(0, 2000)}`;
      return executionOf(p, known.analysis as PostgresAnalysis, ['declare', 'copy']);
    });
    const result = parts.length === 1 ? resolved[0]! : combineAnalyses(analysis.normalized, resolved);
    if (notes) this.#sqlNotes.set(result, notes);
    else this.#sqlNotes.delete(result);
    return result;
  }

  /** The exact text an approver sees: with what its SQL EXECUTEs run, when it has any. */
  #reviewText(text: string, resolved: Analysis): string {
    const notes = this.#sqlNotes.get(resolved);
    return notes ? `${text}${notes}` : text;
  }

  /**
   * Runs `next` once everything forwarded so far has been answered, or the server has reported
   * an error: a Flush goes upstream (after the frames queued before it) so that the server does
   * not hold its answers back until a Sync that is itself waiting behind the held frame.
   */
  #afterInFlight(next: () => FrameVerdict): Promise<typeof FORWARD | typeof DROP> {
    this.#closeRun();
    this.#out.push(FLUSH);
    const waited = new Promise<void>((resolve) => this.#settleWaiters.push(resolve));
    this.#releaseSettleWaiters();
    return waited.then(next);
  }

  #releaseSettleWaiters(): void {
    // Everything answered, or the server is skipping what is queued (the statement with it).
    if (this.#settleWaiters.length === 0 || !(this.#ledger.empty || (this.#skipping && !this.#ledger.hasSync()))) return;
    const waiters = this.#settleWaiters;
    this.#settleWaiters = [];
    for (const w of waiters) w();
  }

  /** Notes the SQL PREPARE / DEALLOCATE / DISCARD being forwarded; applied on completion. */
  #noteSqlPrepares(analysis: Analysis, handles: readonly StatementHandle[]): void {
    const parts = (analysis.parts ?? [analysis]) as readonly SqlAnalysis[];
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      const name = p.prepare?.name ?? p.deallocate;
      if (name === undefined) continue;
      this.#sqlPending.set(handles[i]!, p);
      this.#sqlPendingCount++;
      this.#sqlInFlight.set(name, (this.#sqlInFlight.get(name) ?? 0) + 1);
    }
  }

  /** A SQL PREPARE / DEALLOCATE / DISCARD ended: applied if it succeeded. */
  #settleSql(handle: StatementHandle, ok: boolean): void {
    const p = this.#sqlPending.get(handle);
    if (p === undefined) return;
    this.#sqlPending.delete(handle);
    this.#sqlPendingCount--;
    const name = (p.prepare?.name ?? p.deallocate)!;
    const left = (this.#sqlInFlight.get(name) ?? 1) - 1;
    if (left > 0) this.#sqlInFlight.set(name, left);
    else this.#sqlInFlight.delete(name);
    if (!ok) return;
    if (p.prepare) {
      this.#statements.set(p.prepare.name, { text: p.normalized, analysis: p.prepare.statement });
    } else if (p.deallocate === '*') {
      const unnamed = this.#statements.get('');
      this.#statements.clear();
      if (unnamed) this.#statements.set('', unnamed);
      if (p.commands[0] === 'DISCARD') {
        for (const v of this.#portals.values()) this.#forgetPortal(v);
        this.#portals.clear();
      }
    } else {
      this.#statements.delete(p.deallocate!);
    }
  }

  /** Releases the parameters a portal kept for review. */
  #forgetPortal(prepared: PreparedStatement | undefined): void {
    if (prepared?.bind) this.#retainedBindBytes = Math.max(0, this.#retainedBindBytes - prepared.bind.length);
  }

  /** With masking: a Describe's answer says what a statement's or portal's rows are. */
  #trackDescribe(frame: Buffer): void {
    const { kind, name } = decodeClose(frame);
    let target: PreparedStatement | undefined;
    if (kind === 'S') target = this.#pendingStatements.get(name) ?? this.#statements.get(name);
    else {
      target = this.#pendingPortals.has(name) ? this.#pendingPortals.get(name) : this.#portals.get(name);
      if (target) target.describing = (target.describing ?? 0) + 1;
    }
    this.#track({ kind: 'describe', target, portal: kind === 'P' });
  }

  #beginExecute(prepared: PreparedStatement | undefined, portal: string, maskingRefusal?: string): FrameVerdict {
    const analysis = prepared ? this.#resolveSql(prepared.analysis) : UNKNOWN_PORTAL;
    // Before asking anyone to review a statement, make sure the server will run it: what was
    // sent before it in the batch may fail, and then the server skips it.
    if (this.#skipping && !this.#ledger.hasSync()) return DROP;
    const refusal = maskingRefusal ?? this.#masking?.refusal(analysis);
    if (refusal !== undefined) {
      try {
        this.#governed!.beginStatement({ analysis, protocol: 'extended', refuse: { rule: 'masking', reason: refusal } });
      } catch (err) {
        const e = toClientFacing(err);
        if (e.fatal) throw e;
        return this.#refuseExtended(e);
      }
    }
    if (!prepared?.approved && !this.#ledger.empty && this.#governed!.decide(analysis).effect === 'review') {
      return this.#afterInFlight(() => this.#beginExecute(prepared, portal));
    }
    // A portal bound while its decision was a plain allow kept no parameters; if the decision
    // is now a review (a reload, an expired grant), the approver could not see what runs.
    if (prepared && !prepared.reviewable && !prepared.approved && this.#governed!.decide(analysis).effect === 'review') {
      return this.#refuseExtended(
        clientErrors.accessDenied('the policy changed between Bind and Execute and this statement now needs a review; run it again'),
      );
    }
    let handle: StatementHandle;
    try {
      const bind = prepared?.bind;
      const text = prepared ? this.#reviewText(prepared.text, analysis) : undefined;
      handle = this.#governed!.beginStatement({
        analysis,
        protocol: 'extended',
        ...(text !== undefined ? { text } : {}),
        ...(bind ? { parameters: () => decodeBindParameters(bind) } : {}),
        ...(prepared?.approved ? { approved: prepared.approved } : {}),
        onHeld: (held) => this.#tellHeld(held),
      });
    } catch (err) {
      const e = toClientFacing(err);
      if (e.fatal) throw e;
      return this.#refuseExtended(e);
    }
    const tracked: LedgerEntry = { kind: 'execute', handle };
    // With masking, a portal the gateway does not know (its statement was uncertain when it was
    // bound) still gets a description, so that its rows are masked by what the server says.
    const portalInfo: PreparedStatement | undefined = this.#masking ? (prepared ?? { text: '', analysis }) : undefined;
    if (portalInfo) tracked.portal = portalInfo;
    this.#track(tracked);
    const forward = (): typeof FORWARD => {
      this.#noteSqlPrepares(analysis, [handle]);
      // A statement's own description is not enough: FETCH, EXECUTE and CALL are described when
      // parsed but return what the cursor or prepared statement returns when they run.
      if (portalInfo && portalInfo.fields === undefined && !(portalInfo.describing! > 0)) {
        // The gateway has not seen what this portal returns: it asks, just before the Execute,
        // and keeps the answer to itself.
        this.#closeRun();
        this.#out.push(describePortal(portal));
        tracked.describe = true;
      }
      // Later Executes of the same portal (fetching more rows) continue the approved statement.
      if (handle.approval && prepared?.reviewable) prepared.approved = handle.approval;
      return FORWARD;
    };
    if (!handle.ready) return forward();
    return handle.ready.then(forward, (err: unknown) => {
      const e = toClientFacing(err);
      if (e.fatal) throw e;
      handle.complete({ outcome: 'not-executed', ...(e.kind === 'governance_unavailable' ? { errorCode: '58000' } : {}) });
      this.#ledger.remove((x) => x === tracked);
      return this.#refuseExtended(e);
    });
  }

  /**
   * Refuses an extended-protocol message in place. The server gets, instead of it, an Execute
   * of a portal that cannot exist: it fails there (34000), which places the error exactly where
   * PostgreSQL would have put one, aborts the transaction (and rolls back the batch's implicit
   * one) and makes the server skip to Sync, as after any error. The gateway sends its own
   * refusal instead of that error, and discards the client's messages up to the Sync, which it
   * forwards (a Flush too).
   */
  #refuseExtended(err: ClientFacingError): typeof DROP {
    if (!this.#discarding) this.#provokeRefusal(err, false);
    this.#discarding = true;
    return DROP;
  }

  /** Refuses a Query (or FunctionCall) in place, through the server as above (a syntax error). */
  #refuseSimple(err: ClientFacingError): typeof DROP {
    this.#provokeRefusal(err, true);
    return DROP;
  }

  #provokeRefusal(err: ClientFacingError, simple: boolean): void {
    this.#closeRun();
    this.#out.push(simple ? REFUSED_QUERY : REFUSED_EXECUTE);
    this.#refusalsPending++;
    this.#track({ kind: 'refused', error: encodeClientError(err), simple });
  }

  /** Tells the client that its statement waits for an approver (a NoticeResponse). */
  #tellHeld(held: HeldInfo): void {
    if (this.#isClosed()) return;
    const who = [...held.approvers.groups.map((g) => `group ${g}`), ...held.approvers.subjects].join(', ');
    const notice = encodeErrorResponse(
      {
        severity: 'NOTICE',
        code: '01000',
        message: `statement held for approval as request ${held.requestId}: ${held.reason}`,
        detail: `the session waits up to ${Math.round(held.timeoutMs / 1000)} s for an approver${who ? ` (${who})` : ''}; nobody approves their own request`,
        hint: `an approver runs: sluice approvals approve ${held.requestId}`,
      },
      Backend.NoticeResponse,
    );
    // A notice may come at any message boundary; the answers before it may be far away (the
    // server answers an extended-protocol batch only at its Sync, which waits behind the held
    // Execute).
    this.#writeAtBoundary(notice);
  }

  /** Writes a gateway message now if the upstream stream is between messages, else as soon as it is. */
  #writeAtBoundary(bytes: Buffer): void {
    if (this.#scanner.atBoundary && this.#tail === undefined && this.#deferred.length === 0) this.#writeClient(bytes);
    else this.#deferred.push(bytes);
  }

  #track(entry: Parameters<Ledger['push']>[0]): void {
    if (this.#ledger.size >= MAX_IN_FLIGHT) {
      throw clientErrors.protocolViolation(`more than ${MAX_IN_FLIGHT} requests in flight without an answer`);
    }
    this.#ledger.push(entry);
  }

  /** Sends a gateway-made error (and ReadyForQuery) now, or after everything in flight is answered. */
  #respond(error: Buffer): void {
    if (!this.#ledger.empty) this.#ledger.push({ kind: 'synthetic', bytes: error, ready: true });
    // After its own error in the extended protocol the server ignores a Query until Sync: so
    // does the gateway (the refusal is recorded, not answered).
    else if (!this.#skipping) this.#writeAtBoundary(Buffer.concat([error, encodeReadyForQuery(this.#txStatus)]));
  }

  /**
   * Queues bytes for the upstream. Consecutive frames of one received buffer are kept as one
   * range and sent as one view of it, whatever their number.
   */
  #queue(buffer: Buffer, start: number, end: number): void {
    if (this.#runBuffer === buffer && this.#runEnd === start) {
      this.#runEnd = end;
      return;
    }
    this.#closeRun();
    this.#runBuffer = buffer;
    this.#runStart = start;
    this.#runEnd = end;
  }

  #closeRun(): void {
    if (this.#runBuffer === undefined) return;
    this.#out.push(this.#runBuffer.subarray(this.#runStart, this.#runEnd));
    this.#runBuffer = undefined;
  }

  #flushToUpstream(): void {
    this.#closeRun();
    const out = this.#out;
    if (out.length === 0) return;
    this.#out = [];
    const upstream = this.#upstream?.socket;
    if (!upstream) return;
    let ok = true;
    if (out.length === 1) ok = upstream.write(out[0]!);
    else {
      upstream.cork();
      for (const b of out) ok = upstream.write(b);
      upstream.uncork();
    }
    if (!ok && !this.#upstreamFull) {
      this.#upstreamFull = true;
      this.#updateClientFlow();
    }
    if (this.#terminated) upstream.end();
  }

  // ---------------------------------------------------------------- relay: upstream → client

  #attachUpstream(upstream: UpstreamConnection): void {
    const s = upstream.socket;
    s.on('data', this.#onUpstreamData);
    s.on('drain', () => {
      this.#upstreamFull = false;
      this.#updateClientFlow();
    });
    s.on('error', (err) => this.#log.debug({ err }, 'upstream socket error'));
    s.on('close', () => {
      if (this.#isClosed()) return;
      if (this.#terminated) {
        this.#close('client');
        return;
      }
      this.#log.warn('upstream connection lost');
      const err = clientErrors.upstreamUnavailable(this.#governed?.target ?? 'unknown', {
        detail: 'the connection to the database was lost',
      });
      this.#fail(err, 'upstream-lost');
    });
  }

  readonly #scanHandler: BackendScanHandler = {
    onDataRow: () => {
      this.#rowCount++;
    },
    onMessage: (type, frame, endInChunk) => this.#onBackendMessage(type, frame, endInChunk),
  };

  /**
   * With masking, what one upstream chunk becomes for the client (kept parts of the chunk and
   * rewritten messages), written at once at the end of the chunk.
   */
  #batch: Buffer[] | undefined;
  /** Rewritten rows of the current chunk, written one after the other (see `#writeRow`). */
  #arena: OutBuffer | undefined;

  #flushBatch(): void {
    const batch = this.#batch;
    if (batch === undefined) return;
    this.#closeArenaRun();
    this.#batch = undefined;
    this.#arena = undefined;
    if (batch.length === 1) this.#writeClient(batch[0]!);
    else if (batch.length > 1) {
      // A few pieces (rows rewritten in a run are one piece): written together, not copied.
      this.#socket.cork();
      for (const b of batch) this.#writeClient(b);
      this.#socket.uncork();
    }
  }

  /** Start of the rewritten rows in the arena not yet made a piece of the batch (-1: none). */
  #arenaRun = -1;

  /** Makes the pending run of rewritten rows one piece of the batch. */
  #closeArenaRun(): void {
    if (this.#arenaRun < 0) return;
    const arena = this.#arena!;
    this.#batch!.push(arena.buf.subarray(this.#arenaRun, arena.at));
    this.#arenaRun = -1;
  }

  /** Writes a DataRow rewritten by `rows` into the chunk's arena: consecutive rows make one piece. */
  #writeRow(rows: RowMasker, frame: Buffer): void {
    if (this.#batch === undefined) {
      // Not inside a chunk (cannot happen: rows come from upstream chunks); written on its own.
      const out = new OutBuffer(frame.length + 64);
      rows.maskRowInto(frame, out);
      this.#writeClient(out.bytes());
      return;
    }
    const arena = (this.#arena ??= new OutBuffer(this.#chunk.length + 1024));
    // When the arena grows, what it held is copied to the same offsets: the run stays valid;
    // pieces already in the batch keep the old buffer.
    if (this.#arenaRun < 0) this.#arenaRun = arena.at;
    rows.maskRowInto(frame, arena);
  }

  /** Replaces the DataRow that ends at `endInChunk` with its rewrite. */
  #emitRow(rows: RowMasker, frame: Buffer, endInChunk: number, length: number): void {
    const start = endInChunk - length;
    if (start >= this.#chunkWritten && start >= 0) this.#writeChunkTo(start);
    else if (this.#dropping || this.#tail !== undefined) this.#tail = undefined;
    else throw new Error('a row to mask was partly relayed already');
    this.#dropping = false;
    this.#writeRow(rows, frame);
    this.#chunkWritten = endInChunk;
  }

  readonly #onUpstreamData = (chunk: Buffer): void => {
    if (this.state !== SessionState.Ready) return;
    if (this.#masking !== undefined) {
      this.#batch = [];
      try {
        this.#relayChunk(chunk);
      } finally {
        this.#flushBatch();
      }
      this.#recordCompletions();
      this.#releaseSettleWaiters();
      return;
    }
    if (this.#relayChunk(chunk)) {
      this.#recordCompletions();
      this.#releaseSettleWaiters();
    }
  };

  /** Scans one upstream chunk and writes it on; false when the session failed. */
  #relayChunk(chunk: Buffer): boolean {
    this.#chunk = chunk;
    this.#chunkWritten = 0;
    try {
      this.#scanner.scan(chunk, this.#scanHandler);
      if (!this.#scanner.atBoundary) {
        if (this.#masking !== undefined) this.#holdForRewrite(chunk);
        else if (this.#refusalsPending > 0) this.#holdBackError(chunk);
      }
    } catch (err) {
      this.#log.error({ err }, 'upstream sent an unreadable message, or a result could not be masked');
      // Nothing more of this chunk goes out (a row may be half rewritten): the session ends.
      this.#batch = undefined;
      this.#arena = undefined;
      this.#arenaRun = -1;
      this.#fail(asFatal(ClientFacingError.is(err) ? err : clientErrors.internal({ cause: err })), 'error');
      return false;
    }
    if (this.#chunkWritten < chunk.length) {
      if (this.#tail === undefined && this.#chunkWritten === 0) {
        this.#writeClient(chunk);
        this.#chunkWritten = chunk.length;
      } else {
        this.#writeChunkTo(chunk.length);
      }
    }
    this.#chunk = EMPTY;
    if (this.#deferred.length > 0 && this.#scanner.atBoundary && this.#tail === undefined) {
      const deferred = this.#deferred;
      this.#deferred = [];
      for (const b of deferred) this.#writeClient(b);
    }
    return true;
  }

  /**
   * The chunk ends inside a message that may be the server's error a refusal replaces (its
   * header is incomplete, or it is a short ErrorResponse): its first bytes are kept back until
   * it is complete.
   */
  #holdBackError(chunk: Buffer): void {
    const type = this.#scanner.pendingType;
    if (type !== -1 && type !== Backend.ErrorResponse) return;
    const start = this.#scanner.pendingStart;
    if (start >= this.#chunkWritten) {
      this.#writeChunkTo(start);
      this.#tail = Buffer.from(chunk.subarray(start));
      this.#chunkWritten = chunk.length;
    } else if (start === -1 && this.#tail !== undefined) {
      if (this.#tail.length + chunk.length - this.#chunkWritten > MAX_PROVOKED_ERROR_BYTES) return;
      this.#tail = Buffer.concat([this.#tail, chunk.subarray(this.#chunkWritten)]);
      this.#chunkWritten = chunk.length;
    }
  }

  /**
   * With masking: the chunk ends inside a message the gateway may rewrite (a row of a masked
   * result, an error or notice). Its bytes are dropped; the scanner keeps a copy and the
   * rewrite is written when the message is complete. A header cut short is kept back until
   * its type is known.
   */
  #holdForRewrite(chunk: Buffer): void {
    const type = this.#scanner.pendingType;
    if (type === -1) {
      this.#holdBackError(chunk);
      return;
    }
    if (!this.#rewrites(type)) {
      if (this.#refusalsPending > 0) this.#holdBackError(chunk);
      return;
    }
    const start = this.#scanner.pendingStart;
    if (start >= 0) this.#writeChunkTo(start);
    // Otherwise its first bytes were kept back (the tail) or dropped already.
    else this.#tail = undefined;
    this.#dropping = true;
    this.#chunkWritten = chunk.length;
  }

  /** True when a message of this type, now, may have to be rewritten. */
  #rewrites(type: number): boolean {
    switch (type) {
      case Backend.ErrorResponse:
      case Backend.NoticeResponse:
        return true;
      case Backend.RowDescription:
      case Backend.NoData: {
        // The answer to the gateway's own Describe is kept from the client.
        const head = this.#ledger.peek();
        return head?.kind === 'execute' && head.describe === true;
      }
      case Backend.DataRow:
        return this.#resultMasking()?.rows !== undefined;
      case Backend.CopyData:
        return this.#resultMasking()?.copy !== undefined;
      default:
        return false;
    }
  }

  /** The masking of the result in progress (the statement at the head of the ledger). */
  #resultMasking(): ResultMasking | undefined {
    const head = this.#ledger.peek();
    if (head?.kind === 'query') return head.masking;
    if (head?.kind === 'execute') {
      if (head.masking === undefined && !head.describe) head.masking = { rows: this.#planExecute(head) };
      return head.masking;
    }
    return undefined;
  }

  /** The row masker of an Execute, from the description of its portal (or statement). */
  #planExecute(entry: { handle: StatementHandle; portal?: PreparedStatement }): RowMasker | undefined {
    const portal = entry.portal;
    if (portal === undefined || this.#masking === undefined) return undefined;
    if (!portal.fields || portal.description === undefined) return undefined;
    const fields = portal.fields;
    // Plans are cached by the portal's own RowDescription, which carries its result formats.
    return this.#masking.rowMasker(entry.handle.analysis, portal.description, () => fields, true);
  }



  /**
   * Writes `bytes` in place of the upstream message that ends at `endInChunk` (of `length`
   * bytes), or the message itself (`frame`, whole) when `bytes` is undefined and its first
   * bytes were dropped. Nothing is written for a message left unchanged that was not dropped.
   */
  #emitInstead(bytes: Buffer | undefined, frame: Buffer, endInChunk: number, length: number): void {
    const start = endInChunk - length;
    if (start >= this.#chunkWritten && start >= 0) {
      if (bytes === undefined) return;
      this.#writeChunkTo(start);
    } else if (this.#dropping || this.#tail !== undefined) {
      this.#tail = undefined;
    } else {
      // Its first bytes are already with the client: it cannot be changed any more.
      throw new Error('a message to rewrite was partly relayed already');
    }
    this.#dropping = false;
    const out = bytes ?? frame;
    if (out.length > 0) this.#writeClient(out);
    this.#chunkWritten = endInChunk;
  }

  /** Writes the kept-back bytes, then the current chunk up to `end`. */
  #writeChunkTo(end: number): void {
    if (this.#tail !== undefined) {
      const tail = this.#tail;
      this.#tail = undefined;
      this.#writeClient(tail);
    }
    if (end > this.#chunkWritten) {
      this.#writeClient(this.#chunk.subarray(this.#chunkWritten, end));
      this.#chunkWritten = end;
    }
  }

  /** Sends a refusal instead of the server's error that ends at `endInChunk` (of `length` bytes). */
  #replaceError(refusal: Buffer, endInChunk: number, length: number): void {
    const start = endInChunk - length;
    if (start >= this.#chunkWritten) {
      this.#writeChunkTo(start);
    } else if (this.#tail !== undefined || this.#dropping) {
      // The error began in an earlier chunk: its first bytes are the kept-back tail (or were dropped).
      this.#tail = undefined;
      this.#dropping = false;
    } else {
      // Its first bytes are already with the client (cannot happen while a refusal is pending).
      this.#log.error('a refusal could not replace the error it provoked; the server error was relayed');
      return;
    }
    this.#writeClient(refusal);
    this.#chunkWritten = endInChunk;
  }

  /**
   * Notes a statement's outcome; it is recorded right before the next bytes go to the client
   * (those that carry the outcome), or at the end of the upstream chunk.
   */
  #completed(handle: StatementHandle, outcome: StatementOutcome): void {
    if (this.#sqlPendingCount > 0) this.#settleSql(handle, outcome.outcome === 'ok');
    this.#masking?.completed(handle.analysis, outcome.outcome === 'ok');
    this.#completions.push(handle, outcome);
  }

  #recordCompletions(): void {
    const c = this.#completions;
    if (c.length === 0) return;
    for (let i = 0; i < c.length; i += 2) (c[i] as StatementHandle).complete(c[i + 1] as StatementOutcome);
    c.length = 0;
  }

  #writeClient(bytes: Buffer): void {
    // Outcomes seen so far are recorded before the bytes that tell the client: a result the
    // client saw has its audit record, even if the gateway dies the moment after.
    if (this.#completions.length > 0) this.#recordCompletions();
    if (this.#batch !== undefined) {
      if (this.#arenaRun >= 0) this.#closeArenaRun();
      this.#batch.push(bytes);
      return;
    }
    if (this.#isClosed()) return;
    if (!this.#socket.write(bytes) && !this.#clientFull) {
      // Backpressure: stop reading the upstream until the client catches up.
      this.#clientFull = true;
      this.#upstream?.socket.pause();
    }
  }

  #onBackendMessage(type: number, frame: Buffer, endInChunk: number): void {
    if (type === Backend.ParameterStatus) {
      const problem = unfollowableSetting(frame);
      // Statements after this one would be analysed wrongly: the session ends (the setting was
      // changed by a statement that was allowed, e.g. SET client_encoding).
      if (problem !== undefined) throw clientErrors.featureNotSupported(problem);
      return;
    }
    let head = this.#ledger.peek();
    while (head?.kind === 'copy-end') {
      this.#ledger.shift();
      head = this.#ledger.peek();
    }
    if (this.#masking !== undefined && this.#onMaskedMessage(type, frame, endInChunk, head)) return;
    switch (type) {
      case Backend.ParseComplete:
        if (head?.kind === 'parse') {
          this.#statements.set(head.name, head.prepared);
          if (this.#pendingStatements.get(head.name) === head.prepared) this.#pendingStatements.delete(head.name);
          this.#ledger.shift();
          this.#releaseSynthetic(endInChunk);
        }
        return;
      case Backend.BindComplete:
        if (head?.kind === 'bind') {
          const replaced = this.#portals.get(head.portal);
          if (replaced !== head.prepared) this.#forgetPortal(replaced);
          if (head.prepared) this.#portals.set(head.portal, head.prepared);
          else this.#portals.delete(head.portal);
          if (this.#pendingPortals.get(head.portal) === head.prepared) this.#pendingPortals.delete(head.portal);
          this.#ledger.shift();
          this.#releaseSynthetic(endInChunk);
        }
        return;
      case Backend.CopyInResponse:
        // The server now ignores Sync and Flush until the client ends the copy.
        this.#clientInCopy = !this.#ledger.enterCopyIn();
        return;
      case Backend.CommandComplete: {
        const tag = decodeCommandTag(frame);
        const rows = rowsFromTag(tag) ?? this.#rowCount;
        this.#rowCount = 0;
        if (head?.kind === 'query') {
          const h = head.handles[head.next];
          if (h) {
            this.#completed(h, { outcome: 'ok', rows, command: tag.split(' ', 1)[0] ?? tag, ...this.#maskedOf(head.masking) });
            head.next++;
          }
          head.masking = undefined;
        } else if (head?.kind === 'execute') {
          this.#completed(head.handle, { outcome: 'ok', rows, command: tag.split(' ', 1)[0] ?? tag, ...this.#maskedOf(head.masking) });
          this.#ledger.shift();
          this.#releaseSynthetic(endInChunk);
        }
        return;
      }
      case Backend.FunctionCallResponse:
        if (head?.kind === 'query') {
          const h = head.handles[head.next];
          if (h) {
            this.#completed(h, { outcome: 'ok', rows: 1 });
            head.next++;
          }
        }
        return;
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended:
        if (head?.kind === 'query' && type === Backend.EmptyQueryResponse) {
          const h = head.handles[head.next];
          if (h) {
            this.#completed(h, { outcome: 'ok', rows: 0 });
            head.next++;
          }
        } else if (head?.kind === 'execute') {
          this.#completed(head.handle, { outcome: 'ok', rows: this.#rowCount, ...this.#maskedOf(head.masking) });
          this.#ledger.shift();
          this.#releaseSynthetic(endInChunk);
        }
        this.#rowCount = 0;
        return;
      case Backend.ErrorResponse: {
        if (head?.kind === 'refused') {
          this.#refusalsPending--;
          this.#replaceError(head.error, endInChunk, 1 + frame.readInt32BE(1));
          this.#rowCount = 0;
          // A refused Query keeps its place until its ReadyForQuery; after an extended-protocol
          // error the server skips everything until Sync.
          if (!head.simple) {
            this.#skipping = true;
            this.#ledger.shift();
          } else {
            this.#ledger.shift();
            this.#ledger.unshift({ kind: 'query', handles: [], next: 0 });
          }
          return;
        }
        const code = readErrorCode(frame);
        this.#rowCount = 0;
        if (head?.kind === 'query') {
          // The failing statement; the rest of the query string does not run.
          const h = head.handles[head.next];
          if (h) {
            this.#completed(h, { outcome: code === '57014' ? 'cancelled' : 'error', ...(code ? { errorCode: code } : {}) });
            // The statements after it get no answer; ReadyForQuery marks them not executed.
            head.next++;
          }
          return;
        }
        // Nothing in flight (an asynchronous FATAL, for instance): nothing to attribute.
        if (head === undefined) return;
        // An error in the extended protocol: the server skips everything until Sync.
        this.#skipping = true;
        if (head?.kind === 'execute') {
          this.#completed(head.handle, { outcome: code === '57014' ? 'cancelled' : 'error', ...(code ? { errorCode: code } : {}) });
          this.#ledger.shift();
        } else if (head?.kind === 'parse' || head?.kind === 'bind') {
          this.#forget(head);
          this.#ledger.shift();
        }
        return;
      }
      case Backend.ReadyForQuery: {
        this.#txStatus = String.fromCharCode(frame[5] ?? 0x49) as 'I' | 'T' | 'E';
        if (this.#txStatus === 'I') this.#masking?.transactionEnded();
        this.#onReadyForQuery(endInChunk);
        // Everything the client sent is answered (nothing in flight, nothing held): it is idle.
        if (this.#ledger.empty && !this.#holding) this.#activity.idle(this.#txStatus !== 'I');
        if (this.#txStatus === 'I' && (this.#portals.size > 0 || this.#retainedBindBytes > 0)) {
          // Portals end with their transaction; what is kept for review is what later batches bound.
          this.#portals.clear();
          let kept = 0;
          for (const v of this.#pendingPortals.values()) kept += v?.bind?.length ?? 0;
          this.#retainedBindBytes = kept;
        }
        return;
      }
    }
  }

  /** The analysis of the statement whose answers are coming (the head of the ledger). */
  #currentAnalysis(head: LedgerEntry | undefined): Analysis | undefined {
    if (head?.kind === 'query') return head.handles[head.next]?.analysis;
    if (head?.kind === 'execute') return head.handle.analysis;
    return undefined;
  }

  /**
   * With masking: reads result descriptions and rewrites rows, COPY data, errors and notices.
   * True when the message is fully handled here.
   */
  #onMaskedMessage(type: number, frame: Buffer, endInChunk: number, head: LedgerEntry | undefined): boolean {
    const masking = this.#masking!;
    const length = 1 + frame.readInt32BE(1);
    switch (type) {
      case Backend.DataRow: {
        const rows = this.#resultMasking()?.rows;
        if (rows === undefined) this.#checkUnplannedRows(head);
        if (rows !== undefined) this.#emitRow(rows, frame, endInChunk, length);
        else if (this.#dropping) this.#emitInstead(undefined, frame, endInChunk, length);
        return true;
      }
      case Backend.CopyData: {
        const copy = this.#resultMasking()?.copy;
        if (copy !== undefined) {
          const out = copy.maskData(frame);
          this.#emitInstead(out === frame ? undefined : out, frame, endInChunk, length);
        } else if (this.#dropping) this.#emitInstead(undefined, frame, endInChunk, length);
        return true;
      }
      case Backend.RowDescription:
      case Backend.NoData: {
        if (head?.kind === 'describe') {
          if (head.target) {
            this.#noteDescription(head.target, type === Backend.RowDescription ? frame : undefined);
            if (head.portal) head.target.describing = Math.max(0, (head.target.describing ?? 1) - 1);
          }
          this.#ledger.shift();
          this.#releaseSynthetic(endInChunk);
          return true;
        }
        if (head?.kind === 'execute' && head.describe) {
          // The answer to the gateway's own Describe: kept from the client.
          head.describe = false;
          if (head.portal) this.#noteDescription(head.portal, type === Backend.RowDescription ? frame : undefined);
          this.#emitInstead(EMPTY, frame, endInChunk, length);
          return true;
        }
        if (head?.kind === 'query' && type === Backend.RowDescription) {
          const h = head.handles[head.next];
          // The server runs a statement the gateway did not see in the text (it split the
          // string differently): its rows cannot be judged, the session ends.
          if (!h) throw new Error('the server returned rows for a statement the gateway did not see in the query');
          head.masking = { rows: masking.rowMasker(h.analysis, frame, () => decodeRowDescription(frame)) };
        }
        return true;
      }
      case Backend.CopyOutResponse: {
        const analysis = this.#currentAnalysis(head);
        if (analysis !== undefined && (head?.kind === 'query' || head?.kind === 'execute')) {
          const copy = masking.copyMasker(analysis, frame.readInt16BE(6), frame[5] === 1);
          head.masking = { ...(head.masking ?? {}), copy };
        }
        return true;
      }
      case Backend.NoticeResponse: {
        const out = masking.maskError(frame, this.#currentAnalysis(head), frame.length < length);
        if (out !== undefined || this.#dropping) this.#emitInstead(out, frame, endInChunk, length);
        return true;
      }
      case Backend.ErrorResponse: {
        // A refusal's provoked error is replaced whole by the session (below).
        if (head?.kind === 'refused') return false;
        const out = masking.maskError(frame, this.#currentAnalysis(head), frame.length < length);
        if (out !== undefined || this.#dropping) this.#emitInstead(out, frame, endInChunk, length);
        if (head?.kind === 'describe') {
          // The Describe failed; the server now skips to Sync.
          if (head.portal && head.target) head.target.describing = Math.max(0, (head.target.describing ?? 1) - 1);
          this.#ledger.shift();
          this.#skipping = true;
          this.#rowCount = 0;
          return true;
        }
        if (head?.kind === 'query') head.masking = undefined;
        return false;
      }
      default:
        return false;
    }
  }

  /**
   * Keeps what a Describe said a statement or portal returns. A portal described like the last
   * portal of its statement (every execution of a prepared statement) reuses that description.
   */
  #noteDescription(target: PreparedStatement, frame: Buffer | undefined): void {
    if (frame === undefined) {
      target.fields = null;
      return;
    }
    const statement = target.statement;
    const last = statement?.portalDescription;
    if (last !== undefined && last.equals(frame)) {
      target.fields = statement!.portalFields!;
      target.description = last;
      return;
    }
    target.fields = decodeRowDescription(frame);
    target.description = Buffer.from(frame);
    if (statement) {
      statement.portalDescription = target.description;
      statement.portalFields = target.fields;
    }
  }

  /**
   * Rows with no plan: fine when nothing of the result is masked, but rows the gateway never
   * saw described (or of a statement it did not see) cannot be judged: the session ends.
   */
  #checkUnplannedRows(head: LedgerEntry | undefined): void {
    if (head?.kind === 'execute') {
      const portal = head.portal;
      if (portal !== undefined && portal.fields) return;
      if (this.#masking!.rulesFor(head.handle.analysis) === undefined) return;
      throw new Error('rows arrived for a portal the gateway did not see described');
    }
    if (head?.kind === 'query' && head.masking === undefined && head.handles[head.next] === undefined) {
      throw new Error('rows arrived for a statement the gateway did not see');
    }
  }

  /** Masked columns of the result that just ended, for its audit record. */
  #maskedOf(masking: ResultMasking | undefined): { masked?: MaskedColumn[] } {
    if (masking === undefined) return {};
    const masked = [...(masking.rows?.masked() ?? []), ...(masking.copy?.rows.masked() ?? [])];
    return masked.length > 0 ? { masked } : {};
  }

  /** A Parse or Bind the server rejected or skipped: it never existed. */
  #forget(entry: { kind: 'parse'; name: string; prepared: PreparedStatement } | { kind: 'bind'; portal: string; prepared: PreparedStatement | undefined }): void {
    if (entry.kind === 'parse') {
      if (this.#pendingStatements.get(entry.name) === entry.prepared) this.#pendingStatements.delete(entry.name);
    } else if (this.#pendingPortals.get(entry.portal) === entry.prepared) {
      this.#pendingPortals.delete(entry.portal);
    }
  }

  /**
   * Closes the ledger up to the request this ReadyForQuery answers: after an extended-protocol
   * error, through the next Sync (a Query or FunctionCall in between was skipped); otherwise
   * through the next Query, FunctionCall or Sync.
   */
  #onReadyForQuery(endInChunk: number): void {
    const skipping = this.#skipping;
    this.#skipping = false;
    for (let e = this.#ledger.shift(); e; e = this.#ledger.shift()) {
      if (e.kind === 'parse' || e.kind === 'bind') {
        this.#forget(e);
        continue;
      }
      if (e.kind === 'describe') {
        if (e.portal && e.target) e.target.describing = Math.max(0, (e.target.describing ?? 1) - 1);
        continue;
      }
      if (e.kind === 'execute') {
        this.#completed(e.handle, { outcome: 'not-executed' });
        continue;
      }
      if (e.kind === 'query') {
        // Statements with no answer of their own did not run (skipped after an extended-protocol
        // error, or after an earlier statement of the same string failed).
        for (let i = e.next; i < e.handles.length; i++) this.#completed(e.handles[i]!, { outcome: 'not-executed' });
        if (skipping) continue;
        break;
      }
      if (e.kind === 'refused') {
        // The server skipped it after its own error: as from PostgreSQL, only the first error
        // is reported. A refused Query still ends at its ReadyForQuery.
        this.#refusalsPending--;
        if (e.simple && !skipping) break;
        continue;
      }
      if (e.kind === 'sync') break;
      if (e.kind === 'copy-end') continue;
      // A gateway answer queued before the request this ReadyForQuery answers. After a server
      // error the server skipped everything up to the Sync, so the client gets no second error
      // (as from the server itself); otherwise (defensive: answers are released as soon as they
      // reach the head) it is sent now.
      if (skipping) continue;
      this.#writeChunkTo(endInChunk - 6 >= this.#chunkWritten ? endInChunk - 6 : this.#chunkWritten);
      this.#writeClient(e.ready ? Buffer.concat([e.bytes, encodeReadyForQuery(this.#txStatus)]) : e.bytes);
    }
    this.#releaseSynthetic(endInChunk);
  }

  /**
   * Sends the gateway's own responses that have reached the head of the ledger, right after
   * the upstream message that ends at `endInChunk` (the chunk is split there).
   */
  #releaseSynthetic(endInChunk: number): void {
    let next = this.#ledger.peek();
    if (next?.kind !== 'synthetic') return;
    this.#writeChunkTo(endInChunk);
    while (next?.kind === 'synthetic') {
      this.#writeClient(next.ready ? Buffer.concat([next.bytes, encodeReadyForQuery(this.#txStatus)]) : next.bytes);
      this.#ledger.shift();
      next = this.#ledger.peek();
    }
  }

  // ---------------------------------------------------------------- ending

  /** Sends an error to the client; a fatal one (or any before Ready) closes the session. */
  #fail(err: ClientFacingError, reason = 'error'): void {
    if (this.#isClosed()) return;
    const fatal = err.fatal || this.state !== SessionState.Ready;
    const bytes = fatal
      ? encodeErrorResponse({ severity: 'FATAL', code: sqlstateOf(err.kind), message: err.message, detail: err.detail, hint: err.hint })
      : encodeClientError(err);
    this.#log.info({ kind: err.kind, message: err.message }, fatal ? 'session refused or ended with an error' : 'request refused');
    if (!fatal) {
      this.#respond(bytes);
      return;
    }
    const socket = this.#socket;
    if (!socket.destroyed && socket.writable) socket.end(bytes);
    this.#close(reason);
  }

  #close(reason: string): void {
    if (this.#isClosed()) return;
    this.state = SessionState.Closed;
    clearTimeout(this.#authTimer);
    this.#activity.stop();
    this.#recordCompletions();
    for (const e of this.#ledger.clear()) {
      if (e.kind === 'execute') e.handle.complete({ outcome: 'aborted' });
      else if (e.kind === 'query') for (let i = e.next; i < e.handles.length; i++) e.handles[i]!.complete({ outcome: 'aborted' });
    }
    if (this.#cancelKey) this.#deps.cancels.unregister(this.#cancelKey);
    const upstream = this.#upstream?.socket;
    if (upstream && !upstream.destroyed) {
      if (this.#terminated) upstream.end();
      else upstream.destroy();
    }
    // Give a closing socket a moment to flush a final error, then make sure it is gone.
    const socket = this.#socket;
    if (!socket.destroyed) {
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    }
    const ended = this.#governed?.end(reason) ?? Promise.resolve();
    void ended.finally(() => this.#deps.onClosed(this));
  }

  /** Ends the session because the gateway is shutting down. */
  shutdown(): void {
    this.#fail(clientErrors.shuttingDown(), 'shutdown');
  }

  /**
   * The gateway is shutting down gracefully: ends the session now when it is idle, not yet
   * logged in, or waiting for an approver (its review is abandoned); otherwise once everything
   * in flight is answered.
   */
  drain(): void {
    if (this.state !== SessionState.Ready || this.#governed?.reviewing === true) {
      this.shutdown();
      return;
    }
    this.#activity.drain();
  }
}

import { randomBytes } from 'node:crypto';
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
  type Identity,
  type ListenerContext,
  type Logger,
  type LoginAttempt,
  type MaskedColumn,
  OperationClass,
  SessionActivity,
  type StatementHandle,
  type StatementMasking,
  maskDetected,
  toClientFacing,
} from '@sluice/core';
import { FrameTooLargeError, InvalidFrameLengthError } from '@sluice/wire';
import { sharedMySqlAnalyzer, type MySqlAnalysis, type MySqlAnalyzer } from '../analyze/index.js';
import type { MysqlTargetOptions } from '../config.js';
import { encodeClientError } from '../errors.js';
import { AuthPlugin } from '../protocol/auth.js';
import {
  CLIENT_CONNECT_ATTRS,
  CLIENT_CONNECT_WITH_DB,
  CLIENT_DEPRECATE_EOF,
  CLIENT_FOUND_ROWS,
  CLIENT_LOCAL_FILES,
  CLIENT_LONG_PASSWORD,
  CLIENT_MULTI_RESULTS,
  CLIENT_MULTI_STATEMENTS,
  CLIENT_PROTOCOL_41,
  CLIENT_PS_MULTI_RESULTS,
  CLIENT_SESSION_TRACK,
  CLIENT_SSL,
  CLIENT_TRANSACTIONS,
  Collation,
  Command,
  CursorType,
  ResponseHeader,
  ServerStatus,
} from '../protocol/constants.js';
import {
  type ColumnDefinition41,
  decodeClientHandshake,
  decodeColumnCount,
  decodeColumnDefinition41,
  decodeComChangeUser,
  decodeComFieldList,
  decodeComInitDb,
  decodeComProcessKill,
  decodeComQuery,
  decodeComStmtExecute,
  decodeComStmtPrepare,
  decodeComStmtSendLongData,
  decodeEof,
  decodeErr,
  decodeOk,
  decodeStatementId,
  decodeStmtPrepareOk,
  encodeAuthSwitchRequest,
  encodeErr,
  encodeHandshakeV10,
  encodeOk,
  formatBinaryValue,
  type ParamType,
  rowValue,
} from '../protocol/messages.js';
import { encodePacket, MAX_PACKET_PAYLOAD, MessageReader, packetCount, PacketSequenceError, type PacketMessage } from '../protocol/packets.js';
import { BASE_CAPABILITIES, connectUpstream, REQUESTABLE_CAPABILITIES, isLoopback, type MysqlUpstreamConnection, sendKill, UpstreamError } from '../protocol/upstream.js';
import { commandUpstream, queryUpstream } from '../server/query.js';
import { type ConnectionRegistry, parseKill } from './registry.js';
import type { ResultMasking, RowMask } from './masking.js';

/** What the session needs from its listener. */
export interface SessionDeps {
  readonly context: ListenerContext<MysqlTargetOptions>;
  readonly connections: ConnectionRegistry;
  /** The version string the greeting announces (the last upstream's, as clients check it). */
  readonly serverVersion: () => string;
  /** Remembers the upstream's version for the next greetings. */
  readonly sawServerVersion: (version: string) => void;
  /** Result masking for a target (views catalog and row rewriting); undefined when not built in. */
  readonly masking?: ResultMasking;
  readonly onClosed: (session: MysqlClientSession) => void;
}

/**
 * Capabilities the gateway offers clients: the protocol its relay understands. Never
 * compression (CLIENT_COMPRESS: a client asking for it is simply not offered it), query
 * attributes, optional metadata or MariaDB's extended capabilities (CLIENT_LONG_PASSWORD,
 * alias CLIENT_MYSQL, is set, so MariaDB clients see a MySQL-style server). The same set the
 * gateway may ask its upstream for, plus what only the client side uses: a schema in the
 * handshake and connection attributes.
 */
const OFFERED_CAPABILITIES = (BASE_CAPABILITIES | REQUESTABLE_CAPABILITIES | CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS) >>> 0;

/** Capabilities that change what travels on the wire: client and upstream must agree on them. */
const WIRE_CAPABILITIES =
  (CLIENT_PROTOCOL_41 |
    CLIENT_DEPRECATE_EOF |
    CLIENT_SESSION_TRACK |
    CLIENT_MULTI_RESULTS |
    CLIENT_PS_MULTI_RESULTS |
    CLIENT_MULTI_STATEMENTS |
    CLIENT_LOCAL_FILES |
    CLIENT_TRANSACTIONS |
    CLIENT_FOUND_ROWS) >>>
  0;

/**
 * Character sets in which a byte of a multi-byte character can be 0x5C (backslash) or a quote:
 * the server would split the text differently from the gateway's analysis. Refused.
 */
const UNSAFE_CHARSETS = new Set(['big5', 'sjis', 'gbk', 'cp932', 'gb18030']);

/** Largest client message before login (a HandshakeResponse with a long token fits easily). */
const MAX_LOGIN_MESSAGE = 64 * 1024;
/** Prepared statements one session may hold. */
const MAX_PREPARED = 10_000;
/** Client bytes buffered behind a command in flight before the socket is paused. */
const CLIENT_BUFFER_BYTES = 256 * 1024;
const KEEPALIVE_MS = 30_000;
const EMPTY = Buffer.alloc(0);
/** Returned for an upstream message the client must not get. */
const DROP = Buffer.alloc(0);

/** An ERR the server sends when a LOAD DATA LOCAL was not allowed (ER_NOT_ALLOWED_COMMAND). */
const INFILE_REFUSED_ERRNO = 1148;

export const SessionState = {
  /** Greeting sent, waiting for the client's HandshakeResponse (or SSLRequest). */
  Handshake: 'handshake',
  /** Asked for the token in clear (mysql_clear_password), waiting for it. */
  AwaitingPassword: 'awaiting-password',
  /** Verifying the identity and opening the upstream. */
  Authenticating: 'authenticating',
  Ready: 'ready',
  Closed: 'closed',
} as const;
export type SessionState = (typeof SessionState)[keyof typeof SessionState];

/** A statement prepared with COM_STMT_PREPARE (server id), as the gateway knows it. */
interface Prepared {
  readonly text: string;
  readonly analysis: MySqlAnalysis;
  readonly paramCount: number;
  paramTypes: readonly ParamType[] | undefined;
  /** Parameters sent with COM_STMT_SEND_LONG_DATA since the last execute. */
  longData: Set<number> | undefined;
  /** An open cursor (COM_STMT_EXECUTE with a cursor, rows fetched with COM_STMT_FETCH). */
  cursor: Cursor | undefined;
}

interface Cursor {
  readonly handle: StatementHandle | undefined;
  readonly mask: RowMask | undefined;
  rows: number;
}

type Phase =
  | 'first'
  | 'columns'
  | 'columns-eof'
  | 'rows'
  | 'prepare'
  | 'prepare-params'
  | 'prepare-params-eof'
  | 'prepare-columns'
  | 'prepare-columns-eof'
  | 'single'
  | 'field-list';

/** The response the gateway is reading for the command in flight. */
interface Response {
  phase: Phase;
  /** One per statement of the request (none for commands that are not statements). */
  readonly handles: readonly StatementHandle[];
  /** The statements' analyses, in order (for masking, LOCAL INFILE and settings). */
  readonly parts: readonly MySqlAnalysis[];
  /** Index of the statement the current result belongs to. */
  index: number;
  rows: number;
  readonly binary: boolean;
  columnCount: number;
  columnsLeft: number;
  /** Column definitions, collected when the result may be masked. */
  columns: ColumnDefinition41[] | undefined;
  mask: RowMask | undefined;
  /** What earlier results of the current statement masked (a CALL answers with several). */
  masked: MaskedColumn[];
  /** The prepared statement executed or fetched. */
  readonly prepared: Prepared | undefined;
  /** COM_STMT_PREPARE: its text and analysis, registered when the server accepts it. */
  readonly preparing: { readonly text: string; readonly analysis: MySqlAnalysis } | undefined;
  paramsLeft: number;
  /** COM_STMT_FETCH of this cursor. */
  readonly fetching: Cursor | undefined;
  /** The server asked for a local file the gateway refused: its answer becomes this error. */
  infileRefused: boolean;
  /** After a replaced error: the rest of the response is not forwarded. */
  discard: boolean;
  /**
   * Called once the whole response has arrived, with how many of the request's statements ran
   * (all of them, or those before the one that failed): what they prepared, deallocated or set
   * is in force on the server.
   */
  readonly onDone: ((ran: number) => void) | undefined;
  /** Statements of the request that ran before one failed (the failing one's index). */
  ran: number;
}

/** A command's own packet, as received (one packet), or re-encoded (a long one). */
function rawPacket(m: PacketMessage): Buffer {
  return m.packet ?? encodePacket(m.payload, m.sequenceId);
}

/** An analysis for a request the gateway cannot read: `unknown`, never harmless. */
function unreadable(what: string): MySqlAnalysis {
  return Object.freeze({
    normalized: `-- ${what}`,
    fingerprint: '0000000000000000',
    operations: Object.freeze([OperationClass.Unknown]),
    statementCount: 1,
    commands: Object.freeze([]),
    unanalysable: what,
  });
}
const UNKNOWN_STATEMENT = unreadable('execute of a prepared statement the gateway did not see prepared');

/** `quoted values` in a server error message (a duplicate key's value, a bad cast's input). */
const QUOTED = /'(?:[^'\\]|\\.|'')*'/g;

/**
 * A KILL the gateway does not handle itself would reach the upstream, where ids are threads of
 * the gateway's shared account (and `KILL USER` would end every session): refused, also when
 * prepared.
 */
function isUpstreamKill(a: MySqlAnalysis): boolean {
  return a.commands[0] === 'KILL' || a.prepare?.statement.commands[0] === 'KILL';
}
const KILL_REFUSAL = {
  rule: 'kill',
  reason: 'the gateway accepts KILL only on its own, as KILL [CONNECTION | QUERY] <id> with the connection id the gateway gave the client',
} as const;

/** Settings that change how the gateway must read the session's text. */
function changesReading(a: MySqlAnalysis): boolean {
  return (a.settings ?? []).some((s) => s === 'sql_mode' || s === 'names' || s === 'character set' || s.startsWith('character_set') || s === 'charset');
}

/**
 * One client connection: the greeting, TLS, the token in clear (mysql_clear_password), the
 * upstream login with the gateway's own account, then the relay. Commands are relayed one at a
 * time, as the protocol has them: each is decided (and held for an approval when the policy
 * says so) before its bytes go upstream; the response's packets are forwarded chunk by chunk
 * after a scan of their headers, and rewritten only when a result is masked.
 */
export class MysqlClientSession {
  state: SessionState = SessionState.Handshake;
  #socket: Socket;
  readonly #deps: SessionDeps;
  #log: Logger;
  readonly #source: string;
  readonly #connectionId: number;
  readonly #scramble = randomBytes(20).map((b) => (b % 94) + 33);
  #tls = false;
  /** The client's verified certificate (mutual TLS). */
  #clientCert: ClientCertificateInfo | undefined;
  #reader = new MessageReader({ maxMessageBytes: MAX_LOGIN_MESSAGE });
  #authTimer: NodeJS.Timeout | undefined;
  /** Idle timeouts and the graceful shutdown: told when the client sends and when all is answered. */
  readonly #activity: SessionActivity;
  /** The upstream's last word on the transaction (SERVER_STATUS_IN_TRANS of its OK / EOF). */
  #inTransaction = false;
  /** Sequence id the next packet the gateway sends to the client carries (login phase). */
  #seq = 0;

  /** What the client said at login. */
  #capabilities = 0;
  #charset: number = Collation.UTF8MB4_GENERAL_CI;
  #username = '';
  #database: string | undefined;
  #attributes: ReadonlyMap<string, string> | undefined;
  /** Set while a COM_CHANGE_USER waits for the token. */
  #changeUser: { database: string; charset: number | undefined; attributes: ReadonlyMap<string, string> | undefined } | undefined;

  #upstream: MysqlUpstreamConnection | undefined;
  #target: { name: string; options: MysqlTargetOptions } | undefined;
  #governed: GovernedSession | undefined;
  #identity: Identity | undefined;
  #analyzer: MySqlAnalyzer | undefined;
  #mariadb = false;
  /** The upstream's current default schema (USE, COM_INIT_DB). */
  #schema: string | undefined;

  #deprecateEof = false;
  /** The command in flight and its response; undefined between commands. */
  #response: Response | undefined;
  /** A decision, a login step or the gateway's own query is pending: client messages wait. */
  #holding = false;
  /** The client is sending a local file's content (LOAD DATA LOCAL INFILE). */
  #clientInfile = false;
  readonly #prepared = new Map<number, Prepared>();
  /** SQL prepared statements (PREPARE name FROM ...), by lower-case name. */
  readonly #sqlPrepared = new Map<string, MySqlAnalysis>();
  /** HANDLER names (alias or table) and the tables they were opened on. */
  readonly #handlers = new Map<string, MySqlAnalysis>();
  #terminated = false;
  #upstreamFull = false;
  #clientFull = false;

  // Upstream scanning state (see #scan).
  /** Bytes of the current packet that pass without being looked at. */
  #passLeft = 0;
  /** A packet being collected across chunks: its bytes so far, and its total length. */
  #collect: Buffer[] | undefined;
  #collected = 0;
  #collectTotal = -1;
  /** Whether the packet being collected was already found not to pass unread. */
  #collectDecided = false;
  /** The packets of a multi-packet message being joined (header included). */
  #parts: Buffer[] | undefined;
  /** The current message continues in the next packet (a 0xFFFFFF-byte packet was passed). */
  #continuation = false;
  /** Added to the sequence id of every following packet of the response (a rewritten long row). */
  #seqShift = 0;
  /** The message being read is one packet and keeps its sequence id: a rewrite may be sent whole. */
  #plainPacket = true;
  /** A rewrite that is already a whole packet (header included), returned by #onMessage. */
  #readyPacket: Buffer | undefined;

  constructor(socket: Socket, deps: SessionDeps) {
    this.#socket = socket;
    this.#deps = deps;
    this.#source = socket.remoteAddress ?? 'unknown';
    this.#log = deps.context.logger.child({ client: `${this.#source}:${socket.remotePort ?? 0}` });
    this.#connectionId = deps.connections.register({
      subject: () => this.#identity?.subject,
      sessionRef: () => this.#governed,
      killQuery: () => this.#killQuery(),
      killConnection: () => {
        // The server would go on with a running statement after the gateway hangs up.
        this.#killQuery().catch((err: unknown) => this.#log.warn({ err }, 'stopping the statement of a killed connection failed'));
        this.#fail(new ClientFacingError('cancelled', 'the connection was killed', { fatal: true }));
      },
    });
    socket.setNoDelay(true);
    this.#attachClient(socket);
    this.#authTimer = setTimeout(() => this.#onAuthTimeout(), deps.context.limits.authTimeoutMs);
    this.#authTimer.unref();
    this.#activity = new SessionActivity(deps.context.limits, {
      onIdleTimeout: (err, reason) => this.#fail(err, reason),
      // After the upstream chunk being relayed (the last answer) has been written to the client.
      onDrained: () => setImmediate(() => this.shutdown()),
    });
    this.#sendGreeting();
  }

  get connectionId(): number {
    return this.#connectionId;
  }

  get sessionId(): string | undefined {
    return this.#governed?.id;
  }

  #isClosed(): boolean {
    return this.state === SessionState.Closed;
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

  // ---------------------------------------------------------------- writing to the client

  /** Sends a packet of the login phase with the next sequence id. */
  #sendLogin(payload: Buffer): void {
    this.#socket.write(encodePacket(payload, this.#seq));
    this.#seq = (this.#seq + 1) & 0xff;
  }

  #writeClient(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (!this.#socket.write(bytes) && !this.#clientFull) {
      this.#clientFull = true;
      this.#upstream?.socket.pause();
    }
  }

  // ---------------------------------------------------------------- client side

  readonly #onClientData = (chunk: Buffer): void => {
    this.#activity.busyNow();
    try {
      this.#reader.push(chunk);
    } catch (err) {
      this.#fail(this.#asClientError(err));
      return;
    }
    this.#pumpClient();
  };

  readonly #onClientError = (err: Error): void => {
    this.#log.debug({ err }, 'client socket error');
  };

  readonly #onClientClose = (): void => {
    this.#close(this.#terminated ? 'client' : 'client-lost');
  };

  readonly #onClientDrain = (): void => {
    this.#clientFull = false;
    if (this.#upstream && this.state === SessionState.Ready) this.#upstream.socket.resume();
  };

  readonly #onUpstreamDrain = (): void => {
    this.#upstreamFull = false;
    this.#updateClientFlow();
  };

  /** Reads from the client only while the upstream keeps up and little waits behind a command. */
  #updateClientFlow(): void {
    if (this.#isClosed()) return;
    const stop = this.#upstreamFull || ((this.#holding || this.#response !== undefined) && this.#reader.buffered > CLIENT_BUFFER_BYTES);
    if (stop) {
      if (!this.#socket.isPaused()) this.#socket.pause();
    } else if (this.#socket.isPaused()) {
      this.#socket.resume();
    }
  }

  #asClientError(err: unknown): ClientFacingError {
    if (ClientFacingError.is(err)) return err;
    if (err instanceof FrameTooLargeError) return clientErrors.messageTooLarge(err.size, err.limit);
    if (err instanceof InvalidFrameLengthError) return clientErrors.protocolViolation(`invalid packet length ${err.length}`);
    if (err instanceof PacketSequenceError) return clientErrors.protocolViolation(err.message);
    if (err instanceof RangeError) return clientErrors.protocolViolation(`malformed packet (${err.message})`);
    this.#log.error({ err }, 'unexpected error in client session');
    return clientErrors.internal({ cause: err });
  }

  /** Handles client messages until one must wait (a command in flight, a decision, a login step). */
  #pumpClient(): void {
    try {
      while (!this.#isClosed() && !this.#holding) {
        if (this.#response !== undefined && !this.#clientInfile) break;
        const m = this.#reader.next();
        if (!m) break;
        this.#onClientMessage(m);
      }
    } catch (err) {
      this.#fail(this.#asClientError(err));
      return;
    }
    // Every command is answered and nothing is held for an approver: the client is idle.
    if (this.#response === undefined && !this.#holding && !this.#clientInfile && this.state === SessionState.Ready) this.#activity.idle(this.#inTransaction);
    this.#updateClientFlow();
  }

  #onClientMessage(m: PacketMessage): void {
    switch (this.state) {
      case SessionState.Handshake:
        this.#expectSeq(m);
        this.#onHandshakeResponse(m.payload);
        return;
      case SessionState.AwaitingPassword:
        this.#expectSeq(m);
        this.#onPassword(m.payload);
        return;
      case SessionState.Ready:
        if (this.#clientInfile) {
          this.#writeUpstream(rawPacket(m));
          if (m.payload.length === 0) this.#clientInfile = false;
          return;
        }
        if (m.sequenceId !== 0) throw clientErrors.protocolViolation(`a command must start with sequence id 0, got ${m.sequenceId}`);
        this.#onCommand(m);
        return;
      default:
        throw clientErrors.protocolViolation('packet received before authentication completed');
    }
  }

  #expectSeq(m: PacketMessage): void {
    if (m.sequenceId !== this.#seq) throw clientErrors.protocolViolation(`expected packet ${this.#seq}, got ${m.sequenceId}`);
    this.#seq = (m.lastSequenceId + 1) & 0xff;
  }

  // ---------------------------------------------------------------- handshake and authentication

  #sendGreeting(): void {
    const caps = (OFFERED_CAPABILITIES | (this.#deps.context.tls ? CLIENT_SSL : 0)) >>> 0;
    this.#sendLogin(
      encodeHandshakeV10({
        serverVersion: this.#deps.serverVersion(),
        connectionId: this.#connectionId,
        authPluginData: Buffer.from(this.#scramble),
        capabilities: caps,
        mariadbCapabilities: 0,
        charset: Collation.UTF8MB4_GENERAL_CI,
        statusFlags: ServerStatus.AUTOCOMMIT,
        authPluginName: AuthPlugin.NATIVE_PASSWORD,
      }),
    );
  }

  #onHandshakeResponse(payload: Buffer): void {
    const h = decodeClientHandshake(payload);
    if (h.kind === 'unsupported') {
      this.#refuseLogin(clientErrors.featureNotSupported('the pre-4.1 client protocol', {}), 0);
      return;
    }
    if (h.kind === 'ssl') {
      this.#startTls();
      return;
    }
    this.#capabilities = (h.capabilities & OFFERED_CAPABILITIES) >>> 0;
    this.#charset = h.charset;
    this.#username = h.username;
    this.#database = h.database || undefined;
    this.#attributes = h.connectAttributes;
    if (!h.username) {
      this.#refuseLogin(clientErrors.authFailed('the client named no user'));
      return;
    }
    if (!this.#cleartextAllowed()) return;
    const cert = checkClientCertificate(this.#tls ? (this.#socket as tls.TLSSocket) : undefined, this.#deps.context.clientCertificates);
    if (!cert.ok) {
      this.#log.warn({ reason: cert.reason }, 'client certificate refused');
      this.#refuseLogin(clientErrors.authFailed(cert.reason));
      return;
    }
    this.#clientCert = cert.certificate;
    if (h.authPluginName === AuthPlugin.CLEAR_PASSWORD && h.authResponse.length > 0) {
      this.#onPassword(h.authResponse);
      return;
    }
    // Whatever the client answered the greeting with, the gateway needs the token itself.
    this.state = SessionState.AwaitingPassword;
    this.#reader.setMaxMessageBytes(MAX_LOGIN_MESSAGE);
    this.#sendLogin(encodeAuthSwitchRequest(AuthPlugin.CLEAR_PASSWORD, EMPTY));
  }

  /**
   * The token travels in clear: only over TLS, or on loopback when the config allows it.
   * Refuses the login (audited) and returns false otherwise.
   */
  #cleartextAllowed(): boolean {
    const { context } = this.#deps;
    if (this.#tls) return true;
    if (context.requireTls) {
      this.#refuseLogin(clientErrors.authFailed('this gateway requires TLS; connect with --ssl (mysql) or ssl options (drivers)'));
      return false;
    }
    if (context.allowPlaintextLoopback === true && isLoopback(this.#source.replace(/^::ffff:/, ''))) return true;
    const hint = context.tls
      ? 'connect with TLS (mysql --ssl, or the driver\'s ssl option)'
      : 'the gateway has no TLS certificate configured (tls.certFile, tls.keyFile); on loopback, allowPlaintextLoopback: true allows plaintext';
    this.#refuseLogin(clientErrors.authFailed(`the token is sent in clear (mysql_clear_password) and this connection is not encrypted; ${hint}`));
    return false;
  }

  #startTls(): void {
    const context = this.#deps.context.tls;
    if (!context || this.#tls) throw clientErrors.protocolViolation('SSL requested but not offered');
    // The client starts its TLS handshake right after the SSL request, without an answer: what
    // arrived with it already is the handshake's first bytes, for the TLS socket to read.
    const raw = this.#socket;
    raw.pause();
    this.#detachClient(raw);
    const early = this.#reader.drain();
    this.#reader = new MessageReader({ maxMessageBytes: MAX_LOGIN_MESSAGE });
    if (early.length > 0) raw.unshift(early);
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
    const application = this.#attributes?.get('program_name') ?? this.#attributes?.get('_program_name');
    return {
      dialect: 'mysql',
      credentials: { username: this.#username, secret, sourceAddress: this.#source },
      tls: this.#tls,
      requestedTarget: this.#changeUser?.database ?? this.#database ?? '',
      ...(application ? { application } : {}),
    };
  }

  /** Refuses the login: audited, a native error, the connection closed. */
  #refuseLogin(err: ClientFacingError, capabilities = this.#capabilities || CLIENT_PROTOCOL_41, identity?: Identity): void {
    void this.#deps.context.governor.refuseConnection(this.#loginAttempt(''), err.message, identity);
    this.#sendLogin(encodeClientError(err, capabilities));
    this.#close('refused');
  }

  #onPassword(payload: Buffer): void {
    // mysql_clear_password sends the token NUL-terminated.
    const end = payload.length > 0 && payload[payload.length - 1] === 0 ? payload.length - 1 : payload.length;
    const secret = payload.toString('utf8', 0, end);
    this.state = SessionState.Authenticating;
    this.#holding = true;
    const login = this.#changeUser ? this.#reauthenticate(secret) : this.#authenticate(secret);
    login.then(
      () => {
        this.#holding = false;
        this.#pumpClient();
      },
      (err: unknown) => {
        const e = toClientFacing(err);
        if (this.#isClosed()) return;
        this.#sendLogin(encodeClientError(e, this.#capabilities || CLIENT_PROTOCOL_41));
        this.#close('refused');
      },
    );
  }

  /** The target a login names: its database, or the only MySQL target when it names none. */
  #resolveTarget(name: string): { name: string; options: MysqlTargetOptions } {
    const { context } = this.#deps;
    if (name === '') {
      const names = context.targetNames();
      if (names.length === 1) name = names[0]!;
    }
    const target = context.resolveTarget(name);
    if (!target) {
      throw name === ''
        ? new ClientFacingError('target_not_found', 'no target named: connect with a database name that is a gateway target', {
            hint: `targets: ${context.targetNames().join(', ')}`,
            fatal: true,
          })
        : clientErrors.targetNotFound(name, context.targetNames());
    }
    return { name: target.name, options: target.options };
  }

  /** Connects to the target's upstream with the gateway's account; a native error otherwise. */
  async #openUpstream(target: { name: string; options: MysqlTargetOptions }, attempt: LoginAttempt, identity: Identity): Promise<MysqlUpstreamConnection> {
    const { governor } = this.#deps.context;
    const withoutSecret = { ...attempt, credentials: { ...attempt.credentials, secret: '' } };
    let upstream: MysqlUpstreamConnection;
    try {
      upstream = await connectUpstream({
        ...target.options.upstream,
        capabilities: this.#capabilities,
        charset: this.#charset,
        ...(this.#attributes ? { connectAttributes: this.#attributes } : {}),
      });
    } catch (cause) {
      const upstreamMessage = cause instanceof UpstreamError ? cause.message : 'unexpected error';
      this.#log.warn({ err: cause, target: target.name }, 'upstream connection failed');
      const err = clientErrors.upstreamUnavailable(target.name, { cause });
      await governor.refuseConnection(withoutSecret, `${err.message}: ${upstreamMessage}`, identity);
      throw err;
    }
    // Logged for as long as the socket lives: between the login's awaits, the gateway's own
    // queries and the relay, no error may go unhandled (it would end the process).
    upstream.socket.on('error', this.#onUpstreamError);
    // The relay forwards bytes as they are: both sides must have agreed on the same format.
    const want = this.#capabilities & WIRE_CAPABILITIES;
    const got = upstream.capabilities & WIRE_CAPABILITIES;
    if (want !== got) {
      upstream.socket.destroy();
      const err = clientErrors.featureNotSupported(
        `a client asking for capabilities 0x${want.toString(16)} in front of a server agreeing to 0x${got.toString(16)}`,
      );
      await governor.refuseConnection(withoutSecret, err.message, identity);
      throw new ClientFacingError(err.kind, err.message, { fatal: true });
    }
    this.#deps.sawServerVersion(upstream.serverVersion);
    return upstream;
  }

  /** Reads the session settings the analysis depends on; refuses what it cannot follow. */
  async #readSettings(upstream: MysqlUpstreamConnection, leftover?: Buffer): Promise<void> {
    const { rows } = await queryUpstream(
      upstream.socket,
      upstream.capabilities,
      'SELECT @@SESSION.sql_mode, @@SESSION.character_set_client, DATABASE()',
      leftover,
    );
    const [sqlMode, charset, schema] = rows[0] ?? [];
    if (charset && UNSAFE_CHARSETS.has(charset.toLowerCase())) {
      throw clientErrors.featureNotSupported(`the character set ${charset} (a byte of one of its characters can look like a quote or a backslash; use utf8mb4)`);
    }
    this.#schema = schema ?? undefined;
    // Lineage names unqualified tables in the session's current schema.
    if (this.#governed !== undefined && this.#schema !== undefined) this.#governed.database = this.#schema;
    this.#mariadb = /mariadb/i.test(upstream.serverVersion);
    // Shared by the sessions with the same settings: its caches are bounded for the process.
    this.#analyzer = sharedMySqlAnalyzer({ dialect: this.#mariadb ? 'mariadb' : 'mysql', sqlMode: sqlMode ?? '' });
  }

  /**
   * Opens the governed session of a verified login on a ready upstream: undefined when the
   * client left meanwhile. The upstream is closed when either fails.
   */
  async #openGoverned(identity: Identity, attempt: LoginAttempt, target: { readonly name: string; readonly options: MysqlTargetOptions }, upstream: MysqlUpstreamConnection): Promise<GovernedSession | undefined> {
    let governed: GovernedSession;
    try {
      governed = await this.#deps.context.governor.openSession({
        dialect: 'mysql',
        identity,
        username: attempt.credentials.username,
        target: target.name,
        sourceAddress: this.#source,
        tls: this.#tls,
        ...(attempt.application ? { application: attempt.application } : {}),
        ...(this.#clientCert ? { clientCert: this.#clientCert } : {}),
        ...(this.#schema !== undefined ? { database: this.#schema } : {}),
        server: { address: target.options.upstream.host, port: target.options.upstream.port },
        system: this.#mariadb ? 'mariadb' : 'mysql',
        ...(this.#attributes !== undefined ? { attributes: Object.fromEntries(this.#attributes) } : {}),
      });
    } catch (err) {
      upstream.socket.destroy();
      throw err;
    }
    if (this.#isClosed()) {
      upstream.socket.destroy();
      void governed.end('client-lost');
      return undefined;
    }
    return governed;
  }

  async #authenticate(secret: string): Promise<void> {
    const { governor } = this.#deps.context;
    const attempt = this.#loginAttempt(secret);
    const identity = await governor.authenticate(attempt);
    const withoutSecret = { ...attempt, credentials: { ...attempt.credentials, secret: '' } };
    if (this.#isClosed()) {
      await governor.refuseConnection(withoutSecret, 'the client was disconnected before the login completed', identity);
      return;
    }
    // Over a connection limit: refused before the database is asked for a connection.
    await governor.checkConnectionLimits(withoutSecret, identity);
    let target: { name: string; options: MysqlTargetOptions };
    try {
      target = this.#resolveTarget(attempt.requestedTarget ?? '');
    } catch (err) {
      await governor.refuseConnection(withoutSecret, toClientFacing(err).message, identity);
      throw err;
    }
    const upstream = await this.#openUpstream(target, attempt, identity);
    if (this.#isClosed()) {
      upstream.socket.destroy();
      await governor.refuseConnection(withoutSecret, 'the client was disconnected before the login completed', identity);
      return;
    }
    try {
      await this.#readSettings(upstream, upstream.leftover);
    } catch (err) {
      upstream.socket.destroy();
      const e = ClientFacingError.is(err) ? new ClientFacingError(err.kind, err.message, { fatal: true }) : clientErrors.upstreamUnavailable(target.name, { cause: err });
      await governor.refuseConnection(withoutSecret, e.message, identity);
      throw e;
    }
    const governed = await this.#openGoverned(identity, attempt, target, upstream);
    if (governed === undefined) return;
    clearTimeout(this.#authTimer);
    this.#governed = governed;
    this.#identity = identity;
    this.#target = target;
    this.#attachUpstream(upstream);
    this.#log = this.#log.child({ sessionId: governed.id, subject: identity.subject, target: target.name });
    this.#deprecateEof = (this.#capabilities & CLIENT_DEPRECATE_EOF) !== 0;
    this.#inTransaction = (upstream.status & ServerStatus.IN_TRANS) !== 0;
    this.#sendLogin(encodeOk({ statusFlags: upstream.status }, this.#capabilities));
    this.#reader.setMaxMessageBytes(this.#deps.context.limits.maxMessageBytes);
    this.#socket.setKeepAlive(true, KEEPALIVE_MS);
    upstream.socket.setKeepAlive(true, KEEPALIVE_MS);
    this.state = SessionState.Ready;
    this.#log.debug('session ready');
    upstream.socket.resume();
  }

  #attachUpstream(upstream: MysqlUpstreamConnection): void {
    this.#upstream = upstream;
    const s = upstream.socket;
    s.on('data', this.#onUpstreamData);
    s.on('close', this.#onUpstreamClose);
    s.on('drain', this.#onUpstreamDrain);
  }

  #detachUpstream(): MysqlUpstreamConnection | undefined {
    const upstream = this.#upstream;
    if (!upstream) return undefined;
    const s = upstream.socket;
    s.off('data', this.#onUpstreamData);
    s.off('close', this.#onUpstreamClose);
    s.off('drain', this.#onUpstreamDrain);
    s.pause();
    this.#upstream = undefined;
    return upstream;
  }

  #onAuthTimeout(): void {
    if (this.state === SessionState.Ready || this.#isClosed()) return;
    const err = clientErrors.authFailed(`authentication did not complete within ${this.#deps.context.limits.authTimeoutMs} ms`);
    if (this.state === SessionState.Authenticating) {
      // The login's own continuation records its outcome.
      this.#fail(err);
      return;
    }
    if (this.#username === '') {
      this.#fail(err);
      return;
    }
    this.#refuseLogin(err);
  }

  // ---------------------------------------------------------------- COM_CHANGE_USER

  #onChangeUser(payload: Buffer): void {
    const c = decodeComChangeUser(payload, this.#capabilities);
    this.#changeUser = { database: c.database, charset: c.charset, attributes: c.connectAttributes };
    this.#username = c.username;
    this.#seq = 1;
    this.state = SessionState.AwaitingPassword;
    this.#sendLogin(encodeAuthSwitchRequest(AuthPlugin.CLEAR_PASSWORD, EMPTY));
  }

  /**
   * A new identity on the same client connection: verified like a login, then the old governed
   * session ends and a new one starts. The upstream is reset (COM_RESET_CONNECTION), or
   * replaced when the new login names another target.
   */
  async #reauthenticate(secret: string): Promise<void> {
    const { governor } = this.#deps.context;
    const change = this.#changeUser!;
    const attempt = this.#loginAttempt(secret);
    const identity = await governor.authenticate(attempt);
    let target: { name: string; options: MysqlTargetOptions };
    try {
      target = this.#resolveTarget(change.database || this.#target!.name);
    } catch (err) {
      await governor.refuseConnection({ ...attempt, credentials: { ...attempt.credentials, secret: '' } }, toClientFacing(err).message, identity);
      throw err;
    }
    const old = this.#governed;
    this.#governed = undefined;
    if (old) await old.end('change-user');
    this.#forgetStatements();
    let upstream = this.#upstream!;
    try {
      if (target.name !== this.#target!.name) {
        if (change.charset !== undefined) this.#charset = change.charset & 0xff;
        if (change.attributes) this.#attributes = change.attributes;
        const fresh = await this.#openUpstream(target, attempt, identity);
        this.#detachUpstream()?.socket.destroy();
        upstream = fresh;
        await this.#readSettings(upstream, upstream.leftover);
      } else {
        this.#detachUpstream();
        // Session state back to a fresh login's.
        await commandUpstream(upstream.socket, upstream.capabilities, Buffer.from([Command.RESET_CONNECTION]));
        await this.#readSettings(upstream);
      }
    } catch (err) {
      // The connection ends with the failed change: no upstream is left behind.
      this.#detachUpstream();
      upstream.socket.destroy();
      throw err;
    }
    this.#changeUser = undefined;
    const governed = await this.#openGoverned(identity, attempt, target, upstream);
    if (governed === undefined) return;
    this.#governed = governed;
    this.#identity = identity;
    this.#target = target;
    this.#attachUpstream(upstream);
    this.#log = this.#deps.context.logger.child({ sessionId: governed.id, subject: identity.subject, target: target.name });
    this.state = SessionState.Ready;
    this.#sendLogin(encodeOk({ statusFlags: ServerStatus.AUTOCOMMIT }, this.#capabilities));
    upstream.socket.resume();
  }

  // ---------------------------------------------------------------- commands

  #forgetStatements(): void {
    for (const p of this.#prepared.values()) this.#closeCursor(p);
    this.#prepared.clear();
    this.#sqlPrepared.clear();
    this.#handlers.clear();
  }

  /** Sends a command's bytes upstream. */
  #writeUpstream(bytes: Buffer): void {
    const s = this.#upstream?.socket;
    if (!s) return;
    if (!s.write(bytes)) {
      this.#upstreamFull = true;
      this.#updateClientFlow();
    }
  }

  /** Answers a command without the upstream (sequence id 1). */
  #reply(payload: Buffer): void {
    this.#writeClient(encodePacket(payload, 1));
  }

  #replyError(err: ClientFacingError): void {
    this.#reply(encodeClientError(err, this.#capabilities));
    if (err.fatal) this.#close('refused');
  }

  #newResponse(init: Partial<Response> & { phase: Phase }): Response {
    return {
      handles: [],
      parts: [],
      index: 0,
      rows: 0,
      binary: false,
      columnCount: 0,
      columnsLeft: 0,
      columns: undefined,
      mask: undefined,
      masked: [],
      prepared: undefined,
      preparing: undefined,
      paramsLeft: 0,
      fetching: undefined,
      infileRefused: false,
      discard: false,
      onDone: undefined,
      ran: -1,
      ...init,
    };
  }

  #onCommand(m: PacketMessage): void {
    const payload = m.payload;
    if (payload.length === 0) throw clientErrors.protocolViolation('empty command packet');
    const command = payload[0]!;
    switch (command) {
      case Command.QUIT:
        this.#terminated = true;
        this.#close('client');
        return;
      case Command.QUERY:
        return this.#onQuery(m, decodeComQuery(payload));
      case Command.STMT_PREPARE:
        return this.#onPrepare(m, decodeComStmtPrepare(payload));
      case Command.STMT_EXECUTE:
        return this.#onExecute(m);
      case Command.STMT_FETCH: {
        const p = this.#prepared.get(decodeStatementId(payload));
        this.#forward(m, this.#newResponse({ phase: 'rows', binary: true, prepared: p, fetching: p?.cursor, mask: p?.cursor?.mask }));
        return;
      }
      case Command.STMT_SEND_LONG_DATA: {
        const d = decodeComStmtSendLongData(payload);
        const p = this.#prepared.get(d.statementId);
        if (p) (p.longData ??= new Set()).add(d.param);
        this.#writeUpstream(rawPacket(m));
        return;
      }
      case Command.STMT_CLOSE: {
        const id = decodeStatementId(payload);
        const p = this.#prepared.get(id);
        if (p) this.#closeCursor(p);
        this.#prepared.delete(id);
        this.#writeUpstream(rawPacket(m));
        return;
      }
      case Command.STMT_RESET: {
        const p = this.#prepared.get(decodeStatementId(payload));
        if (p) {
          this.#closeCursor(p);
          p.longData = undefined;
        }
        this.#forward(m, this.#newResponse({ phase: 'single' }));
        return;
      }
      case Command.INIT_DB: {
        const schema = decodeComInitDb(payload);
        // Governed as the USE statement it is.
        return this.#asStatement(m, `USE \`${schema.replace(/`/g, '``')}\``, 'init-db', () => {
          this.#schema = schema;
          if (this.#governed !== undefined) this.#governed.database = schema;
        });
      }
      case Command.FIELD_LIST: {
        const { table } = decodeComFieldList(payload);
        return this.#asStatement(m, `SHOW COLUMNS FROM \`${table.replace(/`/g, '``')}\``, 'field-list');
      }
      case Command.PROCESS_INFO:
        return this.#asStatement(m, 'SHOW PROCESSLIST', 'process-info');
      case Command.PROCESS_KILL:
        return this.#onKill({ query: false, id: decodeComProcessKill(payload) }, `KILL ${decodeComProcessKill(payload)}`);
      case Command.PING:
      case Command.SET_OPTION:
      case Command.STATISTICS:
        this.#forward(m, this.#newResponse({ phase: 'single' }));
        return;
      case Command.RESET_CONNECTION:
        this.#forgetStatements();
        this.#forward(m, this.#newResponse({ phase: 'single', onDone: (ran) => ran > 0 && this.#refreshSettings() }));
        return;
      case Command.CHANGE_USER:
        this.#onChangeUser(payload);
        return;
      default:
        // Replication, debug and long-deprecated commands: a native "unknown command" error.
        this.#replyError(clientErrors.featureNotSupported(`command 0x${command.toString(16).padStart(2, '0')}`));
        return;
    }
  }

  /** A protocol command governed as the SQL statement it stands for. */
  #asStatement(m: PacketMessage, sql: string, protocol: string, onSuccess?: () => void): void {
    const onDone = onSuccess === undefined ? undefined : (ran: number) => ran > 0 && onSuccess();
    const analysis = this.#analyzer!.analyze(sql);
    this.#begin(m, analysis, protocol, sql, undefined, (handles) =>
      this.#newResponse({ phase: protocol === 'field-list' ? 'field-list' : 'single', handles, parts: [analysis], onDone }),
    );
  }

  /** Forwards a command and starts reading its response. */
  #forward(m: PacketMessage, response: Response): void {
    this.#response = response;
    this.#writeUpstream(rawPacket(m));
  }

  /**
   * Decides a request (refusing it natively, holding it for an approval, or recording its
   * intent first), then forwards it.
   */
  #begin(
    m: PacketMessage,
    analysis: MySqlAnalysis,
    protocol: string,
    text: string,
    parameters: (() => readonly (string | null)[]) | undefined,
    response: (handles: readonly StatementHandle[]) => Response,
    refusal?: { readonly rule: string; readonly reason: string },
  ): void {
    const governed = this.#governed!;
    let request;
    try {
      request = governed.beginRequest({
        analysis,
        protocol,
        text,
        ...(parameters ? { parameters } : {}),
        ...(refusal !== undefined ? { refuse: refusal } : {}),
        // MySQL has no message to tell a waiting client why: the log says it.
        onHeld: (held) => this.#log.info({ requestId: held.requestId, reason: held.reason }, 'statement held for approval; the client waits'),
      });
    } catch (err) {
      this.#replyError(toClientFacing(err));
      return;
    }
    const { handles, ready } = request;
    const bytes = rawPacket(m);
    if (ready === undefined) {
      this.#response = response(handles);
      this.#writeUpstream(bytes);
      return;
    }
    // Held: the client waits for the answer, as it would for a slow statement.
    this.#holding = true;
    this.#response = response(handles);
    ready.then(
      () => {
        this.#holding = false;
        if (this.#isClosed()) return;
        this.#writeUpstream(bytes);
        this.#pumpClient();
      },
      (err: unknown) => {
        this.#holding = false;
        this.#response = undefined;
        const e = toClientFacing(err);
        for (const h of handles) h.complete({ outcome: 'not-executed', ...(e.kind === 'governance_unavailable' ? { errorCode: '1105' } : {}) });
        if (this.#isClosed()) return;
        this.#replyError(e);
        this.#pumpClient();
      },
    );
  }

  /** What a SQL-level EXECUTE, HANDLER READ runs, as far as the session knows. */
  #resolve(a: MySqlAnalysis): MySqlAnalysis {
    if (a.execute !== undefined) {
      const statement = this.#sqlPrepared.get(a.execute.toLowerCase());
      return statement === undefined ? a : executionOf(a, statement, ['assignsVariables', 'settings']);
    }
    if (a.handler?.read !== undefined) {
      const opened = this.#handlers.get(a.handler.read.toLowerCase());
      return opened === undefined ? a : executionOf(a, opened, ['assignsVariables', 'settings']);
    }
    return a;
  }

  #resolveRequest(a: MySqlAnalysis): MySqlAnalysis {
    const parts = a.parts;
    if (parts === undefined) return this.#resolve(a);
    let changed = false;
    const resolved = parts.map((p) => {
      const r = this.#resolve(p);
      if (r !== p) changed = true;
      return r;
    });
    return changed ? (combineAnalyses(a.normalized, resolved) as MySqlAnalysis) : a;
  }

  /** After a request succeeded: what its PREPAREs, DEALLOCATEs, HANDLERs and USE changed. */
  #afterStatements(parts: readonly MySqlAnalysis[]): void {
    for (const p of parts) {
      if (p.prepare) this.#sqlPrepared.set(p.prepare.name.toLowerCase(), p.prepare.statement as MySqlAnalysis);
      if (p.deallocate !== undefined) this.#sqlPrepared.delete(p.deallocate.toLowerCase());
      if (p.handler?.open !== undefined) this.#handlers.set(p.handler.open.toLowerCase(), p);
      if (p.handler?.close !== undefined) this.#handlers.delete(p.handler.close.toLowerCase());
    }
  }

  #onQuery(m: PacketMessage, text: string): void {
    const kill = parseKill(text);
    if (kill) return this.#onKill(kill, text);
    const raw = this.#analyzer!.analyze(text);
    const analysis = this.#resolveRequest(raw);
    const parts = (analysis.parts ?? [analysis]) as readonly MySqlAnalysis[];
    const rawParts = (raw.parts ?? [raw]) as readonly MySqlAnalysis[];
    if (rawParts.some(isUpstreamKill)) {
      return this.#begin(m, analysis, 'query', text, undefined, () => this.#newResponse({ phase: 'first' }), KILL_REFUSAL);
    }
    // A setting that changes how text is read, followed by more statements in the same
    // request: those would be read by the server differently from the gateway's analysis.
    const readingChange = parts.findIndex(changesReading);
    if (readingChange >= 0 && readingChange < parts.length - 1) {
      return this.#begin(m, analysis, 'query', text, undefined, () => this.#newResponse({ phase: 'first' }), {
        rule: 'analysis',
        reason: 'a statement changing sql_mode or the character set must be sent on its own, not followed by others in the same request',
      });
    }
    const useSchema = rawParts.find((p) => p.commands[0] === 'USE');
    const ddl = parts.some((p) => p.operations.includes(OperationClass.Ddl) || p.operations.includes(OperationClass.Unknown));
    // What the statements that ran changed is in force, also when a later one failed.
    const onDone = (ran: number): void => {
      if (ran === 0) return;
      this.#afterStatements(rawParts.slice(0, ran));
      if (ddl && this.#target !== undefined) this.#deps.masking?.invalidate(this.#target.options.upstream);
      if (useSchema !== undefined) this.#schema = undefined;
      if ((readingChange >= 0 && readingChange < ran) || useSchema !== undefined) this.#refreshSettings();
    };
    const variables = this.#variableRefusal(parts);
    const masking = this.#maskingRefusal(analysis);
    const start = (refusal: string | undefined): void =>
      this.#begin(
        m,
        analysis,
        'query',
        text,
        undefined,
        (handles) => this.#newResponse({ phase: 'first', handles, parts, onDone }),
        refusal === undefined ? variables : { rule: 'masking', reason: refusal },
      );
    if (masking === undefined) return start(undefined);
    this.#waitFor(masking, start);
  }

  /**
   * Waits for the masking catalog when the statement's results may be masked: undefined when
   * nothing needs waiting, else a promise of the refusal reason (undefined when ready).
   */
  #maskingRefusal(analysis: Analysis): Promise<string | undefined> | undefined {
    const masking = this.#deps.masking;
    if (!this.#governed?.masking || this.#target === undefined) return undefined;
    // Masking is configured but this build cannot apply it: nothing leaves unexamined.
    if (masking === undefined) return Promise.resolve('result masking is not available in this gateway build; the statement was refused');
    const wait = masking.catalogReady(this.#target.options.upstream, analysis, this.#schema);
    if (wait === undefined) return undefined;
    return wait.then(
      () => undefined,
      (err: unknown) => {
        this.#log.error({ err }, 'the masking catalog could not be read');
        return 'the gateway cannot read the database catalog it needs to mask results; the statement was refused';
      },
    );
  }

  #waitFor(p: Promise<string | undefined>, next: (refusal: string | undefined) => void): void {
    this.#holding = true;
    void p.then((refusal) => {
      this.#holding = false;
      if (this.#isClosed()) return;
      try {
        next(refusal);
      } catch (err) {
        this.#fail(this.#asClientError(err));
        return;
      }
      this.#pumpClient();
    });
  }

  /**
   * A statement storing values of a table with masked columns in user variables is refused: a
   * later `SELECT @v` names no table, so nothing would mask what the variable holds.
   */
  #variableRefusal(parts: readonly MySqlAnalysis[]): { rule: string; reason: string } | undefined {
    if (!this.#governed?.masking) return undefined;
    for (const p of parts) {
      if (p.assignsVariables !== true) continue;
      const masking = this.#governed.maskingFor(p);
      if (masking === undefined) continue;
      const objects = p.objects ?? [];
      // A procedure's body cannot be seen: what it stores in an OUT variable is unknown.
      const unresolved = p.operations.includes(OperationClass.Unknown) || p.commands[0] === 'CALL';
      if (unresolved || objects.some((o) => o.access === 'read' && masking.sensitiveTable(o.schema, o.name))) {
        return {
          rule: 'masking',
          reason: 'the statement stores values of a table with masked columns in user variables, where they could not be masked; select the columns instead',
        };
      }
    }
    return undefined;
  }

  #touchesSensitive(analysis: Analysis): boolean {
    const masking = this.#governed?.masking ? this.#governed.maskingFor(analysis) : undefined;
    if (masking === undefined) return false;
    if (this.#deps.masking === undefined || this.#target === undefined) return true;
    return this.#deps.masking.touchesSensitive(this.#target.options.upstream, analysis, masking, this.#schema);
  }

  #onPrepare(m: PacketMessage, text: string): void {
    if (this.#prepared.size >= MAX_PREPARED) throw clientErrors.protocolViolation(`more than ${MAX_PREPARED} prepared statements in one session`);
    const raw = this.#analyzer!.analyze(text);
    const analysis = this.#resolveRequest(raw);
    if (((raw.parts ?? [raw]) as readonly MySqlAnalysis[]).some(isUpstreamKill)) {
      try {
        this.#governed!.beginRequest({ analysis, protocol: 'prepare', text, refuse: KILL_REFUSAL });
      } catch (err) {
        this.#replyError(toClientFacing(err));
      }
      return;
    }
    if (this.#governed!.decide(analysis).effect === 'deny') {
      // Refused before it exists: recorded (and its error made) by the governor.
      try {
        this.#governed!.beginRequest({ analysis, protocol: 'prepare', text });
      } catch (err) {
        this.#replyError(toClientFacing(err));
        return;
      }
    }
    this.#forward(m, this.#newResponse({ phase: 'prepare', preparing: { text, analysis: raw } }));
  }

  #onExecute(m: PacketMessage): void {
    const payload = m.payload;
    const id = decodeStatementId(payload);
    const p = this.#prepared.get(id);
    if (p === undefined) {
      this.#begin(m, UNKNOWN_STATEMENT, 'execute', `-- execute of statement ${id}`, undefined, (handles) => this.#newResponse({ phase: 'first', handles, binary: true }));
      return;
    }
    // Executing again closes the statement's cursor.
    this.#closeCursor(p);
    const longData = p.longData;
    p.longData = undefined;
    // Only the types are read now (a client sends them once, then executes without them);
    // the values are decoded when someone needs to see them (an approver).
    const previousTypes = p.paramTypes;
    const typesAt = 10 + ((p.paramCount + 7) >> 3);
    if (p.paramCount > 0 && payload[typesAt] === 1 && payload.length >= typesAt + 1 + 2 * p.paramCount) {
      const types: ParamType[] = [];
      for (let i = 0; i < p.paramCount; i++) types.push({ type: payload[typesAt + 1 + 2 * i]!, unsigned: (payload[typesAt + 2 + 2 * i]! & 0x80) !== 0 });
      p.paramTypes = types;
    }
    const analysis = this.#resolveRequest(p.analysis);
    const parameters = (): readonly (string | null)[] => {
      try {
        const d = decodeComStmtExecute(payload, p.paramCount, previousTypes, longData);
        const { values, paramTypes } = d;
        if (!values || !paramTypes) return [];
        return paramTypes.map((t, i) => {
          if (longData?.has(i)) return '[long data]';
          const v = rowValue(payload, values, i);
          return v === null ? null : formatBinaryValue(t.type, v, t.unsigned);
        });
      } catch {
        return ['[parameters could not be decoded]'];
      }
    };
    const cursor = payload.length > 5 && (payload[5]! & CursorType.READ_ONLY) !== 0;
    const start = (refusal: string | undefined): void =>
      this.#begin(
        m,
        analysis,
        'execute',
        p.text,
        parameters,
        (handles) =>
          this.#newResponse({
            phase: 'first',
            handles,
            parts: [analysis],
            binary: true,
            prepared: cursor ? p : undefined,
            onDone: (ran) => {
              if (ran === 0) return;
              this.#afterStatements([p.analysis]);
              if (changesReading(analysis)) this.#refreshSettings();
            },
          }),
        refusal === undefined ? this.#variableRefusal([analysis]) : { rule: 'masking', reason: refusal },
      );
    const masking = this.#maskingRefusal(analysis);
    if (masking === undefined) return start(undefined);
    this.#waitFor(masking, start);
  }

  #closeCursor(p: Prepared): void {
    const c = p.cursor;
    if (c === undefined) return;
    p.cursor = undefined;
    c.handle?.complete({ outcome: 'ok', rows: c.rows, ...(c.mask && c.mask.masked.length > 0 ? { masked: c.mask.masked } : {}) });
  }

  // ---------------------------------------------------------------- KILL

  /**
   * `KILL [QUERY] n` names a gateway connection id. Its own identity's sessions may always be
   * cancelled (as a PostgreSQL cancel request would); another identity's only when the policy
   * allows the KILL statement. The statement stops upstream (KILL QUERY on the upstream thread)
   * or, when held for an approval, is withdrawn.
   */
  #onKill(kill: { query: boolean; id: number }, text: string): void {
    const target = this.#deps.connections.lookup(kill.id);
    const { governor } = this.#deps.context;
    const act = (): void => {
      if (!target) {
        this.#reply(encodeErr(1094, 'HY000', `Unknown thread id: ${kill.id}`, this.#capabilities));
        return;
      }
      void governor.recordCancel('mysql', this.#source, target.sessionRef() as GovernedSession | undefined);
      if (kill.query) {
        target.killQuery().then(
          () => this.#reply(encodeOk({ statusFlags: ServerStatus.AUTOCOMMIT }, this.#capabilities)),
          (err: unknown) => {
            this.#log.warn({ err }, 'KILL QUERY failed upstream');
            this.#reply(encodeErr(1094, 'HY000', `Unknown thread id: ${kill.id}`, this.#capabilities));
          },
        );
      } else {
        target.killConnection();
        this.#reply(encodeOk({ statusFlags: ServerStatus.AUTOCOMMIT }, this.#capabilities));
      }
    };
    const own = target !== undefined && target.subject() !== undefined && target.subject() === this.#identity?.subject;
    if (own) return act();
    const analysis = this.#analyzer!.analyze(text);
    let request;
    try {
      request = this.#governed!.beginRequest({ analysis, protocol: 'query', text });
    } catch (err) {
      this.#replyError(toClientFacing(err));
      return;
    }
    const done = (): void => {
      for (const h of request.handles) h.complete({ outcome: target ? 'ok' : 'error', ...(target ? {} : { errorCode: '1094' }) });
      act();
    };
    if (request.ready === undefined) return done();
    this.#holding = true;
    request.ready.then(
      () => {
        this.#holding = false;
        done();
        this.#pumpClient();
      },
      (err: unknown) => {
        this.#holding = false;
        for (const h of request.handles) h.complete({ outcome: 'not-executed' });
        this.#replyError(toClientFacing(err));
        this.#pumpClient();
      },
    );
  }

  /** KILL QUERY aimed at this session: withdraw a held statement, or stop it upstream. */
  async #killQuery(): Promise<void> {
    if (this.#governed?.cancelReview()) return;
    const upstream = this.#upstream;
    if (!upstream || !this.#target) return;
    await sendKill(this.#target.options.upstream, upstream.connectionId);
  }

  // ---------------------------------------------------------------- settings

  /**
   * After a statement changed sql_mode, the character set or the schema: reads them again
   * before the next command, so the next statement is analysed as the server will read it.
   */
  #refreshSettings(): void {
    const upstream = this.#upstream;
    if (!upstream) return;
    this.#holding = true;
    this.#detachUpstream();
    this.#readSettings(upstream).then(
      () => {
        // The client may have gone while the settings were read: the upstream is no longer
        // attached, so close could not end it; end it here.
        if (this.#isClosed()) return quitUpstream(upstream);
        this.#attachUpstream(upstream);
        upstream.socket.resume();
        this.#holding = false;
        this.#pumpClient();
      },
      (err: unknown) => {
        this.#holding = false;
        if (this.#isClosed()) return quitUpstream(upstream);
        this.#attachUpstream(upstream);
        this.#fail(ClientFacingError.is(err) ? new ClientFacingError(err.kind, err.message, { fatal: true }) : clientErrors.upstreamUnavailable(this.#target?.name ?? '', { cause: err }));
      },
    );
  }

  // ---------------------------------------------------------------- relay: upstream → client

  readonly #onUpstreamData = (chunk: Buffer): void => {
    if (this.#isClosed()) return;
    try {
      this.#scan(chunk);
    } catch (err) {
      if (ClientFacingError.is(err)) {
        this.#fail(err);
        return;
      }
      this.#log.error({ err }, 'unexpected data from the upstream');
      this.#fail(clientErrors.upstreamUnavailable(this.#target?.name ?? '', { cause: err }));
      return;
    }
    if (this.#clientFull) this.#upstream?.socket.pause();
  };

  readonly #onUpstreamError = (err: Error): void => {
    this.#log.warn({ err }, 'upstream connection error');
  };

  readonly #onUpstreamClose = (): void => {
    if (this.#isClosed()) return;
    this.#fail(clientErrors.upstreamUnavailable(this.#target?.name ?? '', {}));
  };

  /**
   * Walks the packets of an upstream chunk. Packets the relay must read whole (everything but
   * rows that are not masked) are read in place, or collected when they straddle chunks; rows
   * pass after a look at their first byte. Untouched bytes are written in as few pieces as
   * possible: usually the chunk itself.
   */
  /** What one upstream chunk sends the client: written at once at the end of the chunk. */
  #emitted: Buffer[] = [];

  #emit(piece: Buffer): void {
    if (piece.length > 0) this.#emitted.push(piece);
  }

  /**
   * Writes the chunk's pieces: the chunk itself when nothing was rewritten, else one buffer
   * (a write per masked row would cost more than masking it).
   */
  #flushEmitted(): void {
    const pieces = this.#emitted;
    if (pieces.length === 0) return;
    this.#emitted = [];
    this.#writeClient(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces));
  }

  #scan(chunk: Buffer): void {
    const n = chunk.length;
    let at = 0;
    let passFrom = 0;
    while (at < n) {
      if (this.#passLeft > 0) {
        const k = Math.min(this.#passLeft, n - at);
        at += k;
        this.#passLeft -= k;
        continue;
      }
      if (this.#collect !== undefined) {
        // Completing a packet begun in an earlier chunk.
        if (!this.#collectDecided) {
          // Its header and first payload byte came split: they decide, as for a packet read in
          // one piece, whether it passes unread (a row of a result with nothing to mask).
          const need = this.#collected < 4 ? 4 : 5;
          const take = Math.min(need - this.#collected, n - at);
          this.#collect.push(chunk.subarray(at, at + take));
          this.#collected += take;
          at += take;
          passFrom = at;
          if (this.#collected < 4) break;
          const head = Buffer.concat(this.#collect);
          this.#collect = [head];
          const len = head.readUIntLE(0, 3);
          if (len > 0 && this.#collected < 5) continue;
          this.#collectDecided = true;
          this.#collectTotal = 4 + len;
          if (this.#passes(len, head[4])) {
            this.#emit(head);
            this.#passLeft = len - (this.#collected - 4);
            this.#collect = undefined;
            this.#collectTotal = -1;
            this.#collected = 0;
            this.#collectDecided = false;
            continue;
          }
        }
        const take = Math.min(this.#collectTotal - this.#collected, n - at);
        if (take > 0) {
          this.#collect.push(chunk.subarray(at, at + take));
          this.#collected += take;
          at += take;
          passFrom = at;
        }
        if (this.#collected < this.#collectTotal) break;
        const packet = Buffer.concat(this.#collect, this.#collectTotal);
        this.#collect = undefined;
        this.#collectTotal = -1;
        this.#collected = 0;
        this.#collectDecided = false;
        const out = this.#onWholePacket(packet.subarray(4), packet[3]!, packet, 0);
        this.#emit(out === undefined ? packet : out);
        continue;
      }
      if (n - at < 5) {
        if (n - at >= 4 && chunk.readUIntLE(at, 3) === 0) {
          // An empty packet (the end of a long message) fits in its header.
        } else {
          this.#emit(chunk.subarray(passFrom, at));
          this.#startCollect(chunk, at, n, false);
          this.#flushEmitted();
          return;
        }
      }
      const len = chunk.readUIntLE(at, 3);
      const seq = chunk[at + 3]!;
      if (this.#passes(len, chunk[at + 4])) {
        at += 4;
        this.#passLeft = len;
        continue;
      }
      const end = at + 4 + len;
      if (end > n) {
        this.#emit(chunk.subarray(passFrom, at));
        this.#startCollect(chunk, at, n, true);
        this.#flushEmitted();
        return;
      }
      const out = this.#onWholePacket(chunk.subarray(at + 4, end), seq, chunk, at);
      if (out !== undefined) {
        this.#emit(chunk.subarray(passFrom, at));
        this.#emit(out);
        passFrom = end;
      }
      at = end;
    }
    if (passFrom === 0 && at === n) this.#emit(chunk);
    else this.#emit(chunk.subarray(passFrom, at));
    this.#flushEmitted();
  }

  /** `decided`: whether the packet was already found not to pass (its first payload byte was seen). */
  #startCollect(chunk: Buffer, at: number, n: number, decided: boolean): void {
    // Copied: the socket's chunk is not kept past this call.
    this.#collect = [Buffer.from(chunk.subarray(at, n))];
    this.#collected = n - at;
    this.#collectDecided = decided;
    this.#collectTotal = decided ? 4 + chunk.readUIntLE(at, 3) : -1;
  }

  /**
   * Whether a packet passes without being read whole: a row of a result that is not masked, or
   * the continuation of one. Counts it.
   */
  #passes(len: number, first: number | undefined): boolean {
    if (this.#seqShift !== 0) return false;
    if (this.#continuation) {
      if (this.#parts !== undefined) return false;
      if (len < MAX_PACKET_PAYLOAD) this.#continuation = false;
      return true;
    }
    const r = this.#response;
    if (r === undefined || r.phase !== 'rows' || r.mask !== undefined || r.discard) return false;
    if (first === ResponseHeader.ERR) return false;
    if (first === ResponseHeader.EOF && (this.#deprecateEof ? len < MAX_PACKET_PAYLOAD : len < 9)) return false;
    r.rows++;
    if (len === MAX_PACKET_PAYLOAD) this.#continuation = true;
    return true;
  }

  /**
   * A packet read whole: returns what to send instead (DROP to drop it), or undefined to
   * forward it as it came. Joins long messages first.
   */
  #onWholePacket(payload: Buffer, seq: number, source: Buffer, from: number): Buffer | undefined {
    let firstSeq = seq;
    let packets = 1;
    let message = payload;
    if (this.#parts !== undefined || payload.length === MAX_PACKET_PAYLOAD) {
      // A message longer than one packet (a long row to mask): joined, then sent again.
      this.#parts ??= [];
      this.#parts.push(Buffer.from(source.subarray(from, from + 4 + payload.length)));
      // A row is joined only to be masked: one longer than the message limit cannot be, and
      // does not leave unexamined.
      if (this.#parts.length * MAX_PACKET_PAYLOAD > this.#deps.context.limits.maxMessageBytes) {
        throw new ClientFacingError('message_too_large', `a result row longer than ${this.#deps.context.limits.maxMessageBytes} bytes cannot be masked`, {
          hint: 'raise limits.maxMessageBytes in the gateway config if this is expected',
          fatal: true,
        });
      }
      if (payload.length === MAX_PACKET_PAYLOAD) {
        this.#continuation = true;
        return DROP;
      }
      this.#continuation = false;
      const parts = this.#parts;
      this.#parts = undefined;
      message = Buffer.concat(parts.map((p) => p.subarray(4)));
      firstSeq = parts[0]![3]!;
      packets = parts.length;
    }
    const shift = this.#seqShift;
    this.#plainPacket = shift === 0 && packets === 1;
    const out = this.#onMessage(message, firstSeq);
    if (out !== undefined && out === this.#readyPacket) {
      this.#readyPacket = undefined;
      return out;
    }
    if (out === DROP) {
      this.#seqShift -= packets;
      return DROP;
    }
    if (out === undefined && shift === 0 && packets === 1) return undefined;
    const body = out ?? message;
    this.#seqShift += packetCount(body.length) - packets;
    return encodePacket(body, (firstSeq + shift) & 0xff);
  }

  /** One upstream message (joined when long), by the response's phase. */
  #onMessage(payload: Buffer, seq: number): Buffer | undefined {
    const r = this.#response;
    if (r === undefined) {
      // Unsolicited (an ERR before the server closes the connection): passed on.
      return undefined;
    }
    if (r.discard) {
      if (this.#endsResponse(r, payload)) this.#finishResponse(r, false);
      return DROP;
    }
    const first = payload[0];
    switch (r.phase) {
      case 'first': {
        if (first === ResponseHeader.ERR) return this.#onError(r, payload);
        if (first === ResponseHeader.OK && payload.length >= 7) {
          const ok = decodeOk(payload, this.#capabilities);
          if (r.infileRefused) {
            this.#completeCurrent(r, { outcome: 'not-executed' });
            r.discard = (ok.statusFlags & ServerStatus.MORE_RESULTS_EXISTS) !== 0;
            if (!r.discard) this.#finishResponse(r, false);
            return encodeErr(
              INFILE_REFUSED_ERRNO,
              '42000',
              'LOAD DATA LOCAL INFILE was refused by the gateway: the statement was not allowed to read a client file',
              this.#capabilities,
            );
          }
          r.rows += Number(ok.affectedRows);
          this.#resultDone(r, ok.statusFlags, true);
          return undefined;
        }
        if (first === ResponseHeader.LOCAL_INFILE) return this.#onInfileRequest(r, seq);
        const count = decodeColumnCount(payload);
        r.columnCount = count;
        r.columnsLeft = count;
        r.mask = undefined;
        r.columns = this.#maskingFor(r) !== undefined ? [] : undefined;
        r.phase = count === 0 ? 'rows' : 'columns';
        return undefined;
      }
      case 'columns':
        if (r.columns !== undefined) r.columns.push(decodeColumnDefinition41(payload));
        if (--r.columnsLeft === 0) {
          if (this.#deprecateEof) this.#startRows(r);
          else r.phase = 'columns-eof';
        }
        return undefined;
      case 'columns-eof': {
        const eof = decodeEof(payload, this.#capabilities);
        if (eof.statusFlags & ServerStatus.CURSOR_EXISTS) return this.#cursorOpened(r);
        this.#startRows(r);
        return undefined;
      }
      case 'rows': {
        if (first === ResponseHeader.ERR) return this.#onError(r, payload);
        if (this.#endsRows(payload)) {
          const status = this.#deprecateEof ? decodeOk(payload, this.#capabilities).statusFlags : decodeEof(payload, this.#capabilities).statusFlags;
          if (r.fetching !== undefined) {
            this.#inTransaction = (status & ServerStatus.IN_TRANS) !== 0;
            r.fetching.rows += r.rows;
            r.rows = 0;
            this.#finishResponse(r, true);
            if (status & ServerStatus.LAST_ROW_SENT && r.prepared !== undefined) this.#closeCursor(r.prepared);
            return undefined;
          }
          if (status & ServerStatus.CURSOR_EXISTS && r.columnCount > 0 && r.rows === 0) return this.#cursorOpened(r);
          this.#resultDone(r, status, false);
          return undefined;
        }
        r.rows++;
        if (r.mask === undefined) return undefined;
        if (!this.#plainPacket) return r.mask.maskRow(payload);
        // The common case: a one-packet row rewritten with room for its header, sent as is.
        const packet = r.mask.maskRow(payload, 4);
        if (packet === undefined) return undefined;
        const len = packet.length - 4;
        if (len >= MAX_PACKET_PAYLOAD) return packet.subarray(4);
        packet[0] = len & 0xff;
        packet[1] = (len >>> 8) & 0xff;
        packet[2] = len >>> 16;
        packet[3] = seq;
        this.#readyPacket = packet;
        return packet;
      }
      case 'prepare': {
        if (first === ResponseHeader.ERR) {
          this.#finishResponse(r, false);
          return undefined;
        }
        const ok = decodeStmtPrepareOk(payload);
        const preparing = r.preparing!;
        this.#prepared.set(ok.statementId, {
          text: preparing.text,
          analysis: preparing.analysis,
          paramCount: ok.paramCount,
          paramTypes: undefined,
          longData: undefined,
          cursor: undefined,
        });
        r.paramsLeft = ok.paramCount;
        r.columnsLeft = ok.columnCount;
        this.#prepareNext(r);
        return undefined;
      }
      case 'prepare-params':
        if (--r.paramsLeft === 0) r.phase = this.#deprecateEof ? 'prepare-columns' : 'prepare-params-eof';
        if (r.phase === 'prepare-columns' && r.columnsLeft === 0) this.#finishResponse(r, true);
        return undefined;
      case 'prepare-params-eof':
        r.phase = 'prepare-columns';
        if (r.columnsLeft === 0) this.#finishResponse(r, true);
        return undefined;
      case 'prepare-columns':
        if (--r.columnsLeft === 0) {
          if (this.#deprecateEof) this.#finishResponse(r, true);
          else r.phase = 'prepare-columns-eof';
        }
        return undefined;
      case 'prepare-columns-eof':
        this.#finishResponse(r, true);
        return undefined;
      case 'single':
        if (first === ResponseHeader.ERR) return this.#onError(r, payload);
        this.#completeCurrent(r, { outcome: 'ok', rows: 0 });
        this.#finishResponse(r, true);
        return undefined;
      case 'field-list':
        if (first === ResponseHeader.ERR) return this.#onError(r, payload);
        if (this.#endsRows(payload)) {
          this.#completeCurrent(r, { outcome: 'ok', rows: r.rows });
          this.#finishResponse(r, true);
        } else r.rows++;
        return undefined;
    }
  }

  #endsRows(payload: Buffer): boolean {
    if (payload[0] !== ResponseHeader.EOF) return false;
    return this.#deprecateEof ? payload.length < MAX_PACKET_PAYLOAD : payload.length < 9;
  }

  /** Whether a discarded packet ends the response (the last result's end, or an error). */
  #endsResponse(r: Response, payload: Buffer): boolean {
    const first = payload[0];
    if (first === ResponseHeader.ERR) return true;
    if (first === ResponseHeader.OK && payload.length >= 7 && (r.phase === 'first' || r.phase === 'single')) {
      return (decodeOk(payload, this.#capabilities).statusFlags & ServerStatus.MORE_RESULTS_EXISTS) === 0;
    }
    return false;
  }

  #prepareNext(r: Response): void {
    if (r.paramsLeft > 0) r.phase = 'prepare-params';
    else if (r.columnsLeft > 0) r.phase = 'prepare-columns';
    else this.#finishResponse(r, true);
  }

  /** The masking in force for the current statement's results, if any. */
  #maskingFor(r: Response): StatementMasking | undefined {
    if (this.#deps.masking === undefined || !this.#governed?.masking) return undefined;
    const part = r.parts[Math.min(r.index, r.parts.length - 1)];
    if (part === undefined) return this.#governed.maskingFor(UNKNOWN_STATEMENT);
    return this.#governed.maskingFor(part);
  }

  #startRows(r: Response): void {
    r.phase = 'rows';
    if (r.columns === undefined) return;
    const masking = this.#maskingFor(r);
    const part = r.parts[Math.min(r.index, r.parts.length - 1)];
    r.mask =
      masking === undefined || this.#target === undefined
        ? undefined
        : this.#deps.masking!.planResult(
            this.#target.options.upstream,
            r.columns,
            part?.lineage,
            this.#schema,
            masking,
            r.binary,
            part?.commands[0] === 'CALL' ? part.functions?.[0] : undefined,
          );
    r.columns = undefined;
  }

  /** The execute opened a cursor: its rows come with COM_STMT_FETCH; the statement stays open. */
  #cursorOpened(r: Response): undefined {
    const p = r.prepared;
    const handle = r.handles[0];
    if (p !== undefined) {
      this.#startRows(r);
      p.cursor = { handle, mask: r.mask, rows: 0 };
    } else {
      handle?.complete({ outcome: 'ok', rows: 0 });
    }
    this.#finishResponse(r, true, true);
    return undefined;
  }

  /** One result of the request is complete: its statement's outcome, and what comes next. */
  #resultDone(r: Response, status: number, ok: boolean): void {
    const more = (status & ServerStatus.MORE_RESULTS_EXISTS) !== 0;
    this.#inTransaction = (status & ServerStatus.IN_TRANS) !== 0;
    if (r.mask !== undefined) {
      for (const m of r.mask.masked) if (!r.masked.some((x) => x.column === m.column && x.by === m.by)) r.masked.push(m);
      r.mask = undefined;
    }
    // A CALL answers with the result sets of its procedure, then its own OK: the statements
    // after it start only then.
    const call = r.parts[r.index]?.commands[0] === 'CALL' && !ok;
    if (!more || (r.index < r.handles.length - 1 && !call)) {
      this.#completeCurrent(r, { outcome: 'ok', rows: r.rows });
      r.index++;
      r.rows = 0;
      r.masked = [];
    }
    if (more) {
      r.phase = 'first';
      return;
    }
    this.#finishResponse(r, true);
  }

  #completeCurrent(r: Response, outcome: { outcome: 'ok' | 'error' | 'not-executed'; rows?: number; errorCode?: string }): void {
    const h = r.handles[r.index];
    if (h === undefined) return;
    const masked = [...r.masked];
    for (const m of r.mask?.masked ?? []) if (!masked.some((x) => x.column === m.column && x.by === m.by)) masked.push(m);
    h.complete({ ...outcome, ...(r.parts[r.index]?.commands[0] ? { command: r.parts[r.index]!.commands[0]! } : {}), ...(masked.length > 0 ? { masked } : {}) });
  }

  #onError(r: Response, payload: Buffer): Buffer | undefined {
    const err = decodeErr(payload, this.#capabilities);
    r.ran = r.index;
    this.#completeCurrent(r, { outcome: 'error', errorCode: String(err.errno) });
    r.index++;
    this.#finishResponse(r, false);
    return this.#redactError(r, payload, err);
  }

  /**
   * Server errors can quote values (a duplicate key, a bad cast): for statements on sensitive
   * tables quoted values are redacted, and content detectors run over every error.
   */
  #redactError(r: Response, payload: Buffer, err: { errno: number; sqlstate?: string | undefined; message: string }): Buffer | undefined {
    const masking = this.#governed?.masking ? this.#governed.maskingFor(r.parts[0] ?? UNKNOWN_STATEMENT) : undefined;
    if (masking === undefined) return undefined;
    // Decided here, not per statement: only a statement that fails pays for the catalog lookup.
    const redact = r.parts.some((p) => this.#touchesSensitive(p));
    let message = redact ? err.message.replace(QUOTED, "'[redacted]'") : err.message;
    if (masking.detectors.size > 0) message = maskDetected(message, masking.detectors, masking.detectorStrategy, masking.hashKey)?.text ?? message;
    if (message === err.message) return undefined;
    return encodeErr(err.errno, err.sqlstate ?? 'HY000', message, this.#capabilities);
  }

  /**
   * The server asks for a client file (LOAD DATA LOCAL INFILE). Passed on only when the
   * statement is one the gateway decided as such (copy-in); otherwise the gateway answers with
   * an empty file and the client gets a refusal.
   */
  #onInfileRequest(r: Response, seq: number): Buffer | undefined {
    const part = r.parts[Math.min(r.index, r.parts.length - 1)];
    const allowed = part !== undefined && part.operations.includes(OperationClass.CopyIn) && (this.#capabilities & CLIENT_LOCAL_FILES) !== 0;
    if (allowed) {
      this.#clientInfile = true;
      this.#pumpClientSoon();
      return undefined;
    }
    this.#log.warn('the upstream asked for a local file for a statement not decided as LOAD DATA LOCAL; refused');
    r.infileRefused = true;
    this.#writeUpstream(encodePacket(EMPTY, (seq + 1) & 0xff));
    // Neither the request nor the gateway's empty file reach the client: what follows moves
    // back by both.
    this.#seqShift -= 1;
    return DROP;
  }

  #pumpClientSoon(): void {
    queueMicrotask(() => this.#pumpClient());
  }

  /**
   * The response is complete. `succeeded`: the command did what it was asked (for settings,
   * prepared statements and schema tracking). `keepHandles`: a cursor keeps its statement open.
   */
  #finishResponse(r: Response, succeeded: boolean, keepHandles = false): void {
    if (!keepHandles) {
      for (let i = r.index; i < r.handles.length; i++) r.handles[i]!.complete({ outcome: succeeded ? 'ok' : 'not-executed' });
    }
    this.#response = undefined;
    this.#seqShift = 0;
    r.onDone?.(succeeded ? Math.max(r.parts.length, 1) : Math.max(r.ran, 0));
    if (!this.#holding) this.#pumpClientSoon();
  }

  // ---------------------------------------------------------------- ending

  /** Sends a native error and closes (fatal), or just sends it. */
  #fail(err: ClientFacingError, reason?: string): void {
    if (this.#isClosed()) return;
    if (!this.#socket.destroyed) {
      const seq = this.state === SessionState.Ready ? (this.#response ? 1 : 0) : this.#seq;
      this.#socket.write(encodePacket(encodeClientError(err, this.#capabilities || CLIENT_PROTOCOL_41), seq));
    }
    this.#close(reason ?? (err.kind === 'upstream_unavailable' ? 'upstream-lost' : err.kind === 'cancelled' ? 'killed' : 'error'));
  }

  /** Ends the session: the shutdown of the gateway (1053 ER_SERVER_SHUTDOWN). */
  shutdown(): void {
    this.#fail(clientErrors.shuttingDown(), 'shutdown');
  }

  /**
   * The gateway is shutting down gracefully: ends the session now when it is idle, not yet
   * logged in, or waiting for an approver (its review is abandoned); otherwise once the command
   * in flight is answered.
   */
  drain(): void {
    if (this.state !== SessionState.Ready || this.#governed?.reviewing === true) {
      this.shutdown();
      return;
    }
    this.#activity.drain();
  }

  #close(reason: string): void {
    if (this.#isClosed()) return;
    this.state = SessionState.Closed;
    clearTimeout(this.#authTimer);
    this.#activity.stop();
    this.#deps.connections.unregister(this.#connectionId);
    const r = this.#response;
    this.#response = undefined;
    if (r) for (let i = r.index; i < r.handles.length; i++) r.handles[i]!.complete({ outcome: 'aborted' });
    for (const p of this.#prepared.values()) {
      const c = p.cursor;
      p.cursor = undefined;
      c?.handle?.complete({ outcome: 'aborted', rows: c.rows });
    }
    this.#prepared.clear();
    const upstream = this.#detachUpstream();
    if (upstream) quitUpstream(upstream);
    this.#socket.end();
    this.#socket.setTimeout(1000, () => this.#socket.destroy());
    const governed = this.#governed;
    this.#governed = undefined;
    const ended = governed ? governed.end(reason) : Promise.resolve();
    void ended.finally(() => this.#deps.onClosed(this));
  }
}

/** Ends an upstream connection: COM_QUIT, then close (the server ends the thread at once). */
function quitUpstream(upstream: MysqlUpstreamConnection): void {
  upstream.socket.on('error', () => undefined);
  upstream.socket.end(encodePacket(Buffer.from([Command.QUIT]), 0));
  upstream.socket.setTimeout(1000, () => upstream.socket.destroy());
}

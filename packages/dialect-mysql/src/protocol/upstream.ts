import { connectTcp } from '@sluice/wire';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { AuthClient, AuthPlugin, AuthRefusedError } from './auth.js';
import {
  CLIENT_CONNECT_ATTRS,
  CLIENT_CONNECT_WITH_DB,
  CLIENT_DEPRECATE_EOF,
  CLIENT_FOUND_ROWS,
  CLIENT_IGNORE_SIGPIPE,
  CLIENT_IGNORE_SPACE,
  CLIENT_INTERACTIVE,
  CLIENT_LOCAL_FILES,
  CLIENT_LONG_FLAG,
  CLIENT_LONG_PASSWORD,
  CLIENT_MULTI_RESULTS,
  CLIENT_MULTI_STATEMENTS,
  CLIENT_NO_SCHEMA,
  CLIENT_PLUGIN_AUTH,
  CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA,
  CLIENT_PROTOCOL_41,
  CLIENT_PS_MULTI_RESULTS,
  CLIENT_SECURE_CONNECTION,
  CLIENT_SESSION_TRACK,
  CLIENT_SSL,
  CLIENT_TRANSACTIONS,
  Collation,
  Command,
  ResponseHeader,
} from './constants.js';
import {
  decodeAuthMoreData,
  decodeAuthSwitchRequest,
  decodeErr,
  decodeHandshakeV10,
  decodeOk,
  encodeComQuery,
  encodeHandshakeResponse41,
  encodeSimpleCommand,
  encodeSslRequest,
  type ErrPacket,
  type HandshakeV10,
} from './messages.js';
import { MessageReader, PacketSequence, type PacketMessage } from './packets.js';

/** Upstream TLS modes, named as the PostgreSQL dialect (and libpq) names them. */
export const upstreamTlsModes = ['disable', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type UpstreamTlsMode = (typeof upstreamTlsModes)[number];

export interface MysqlUpstreamOptions {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string | undefined;
  /** Schema to select at login (CLIENT_CONNECT_WITH_DB). */
  readonly database?: string | undefined;
  readonly tls?:
    | {
        readonly mode: UpstreamTlsMode;
        /** CA bundle (PEM) for verify-ca / verify-full. */
        readonly caFile?: string | undefined;
        /** Name checked against the certificate (verify-full) and sent as SNI; defaults to `host`. */
        readonly serverName?: string | undefined;
      }
    | undefined;
  /** Limit on the whole connection phase (TCP, TLS, authentication). Default 10 s. */
  readonly connectTimeoutMs?: number | undefined;
  /**
   * Capabilities to ask for, typically the ones the client asked the gateway for, since the
   * gateway relays its traffic; only those in REQUESTABLE_CAPABILITIES are kept, and of those
   * only what the server offers. CLIENT_DEPRECATE_EOF, CLIENT_SESSION_TRACK,
   * CLIENT_MULTI_STATEMENTS and the like are sent only when listed here.
   * Default: DEFAULT_CLIENT_CAPABILITIES.
   */
  readonly capabilities?: number | undefined;
  /** Collation id for the connection. Default utf8mb4_general_ci (45). */
  readonly charset?: number | undefined;
  readonly maxPacketSize?: number | undefined;
  /** Sent when the server takes connection attributes (CLIENT_CONNECT_ATTRS). */
  readonly connectAttributes?: ReadonlyMap<string, string> | undefined;
  /**
   * Plugin to answer the greeting with, instead of the server's default (a server whose
   * default is caching_sha2_password but whose user is on mysql_native_password, say). The
   * server switches plugins when it is not the user's.
   */
  readonly initialAuthPlugin?: string | undefined;
  /** The server's RSA public key (PEM) for caching_sha2_password full authentication without TLS. */
  readonly serverPublicKey?: string | Buffer | undefined;
  /**
   * Without TLS and without `serverPublicKey`, whether the server may be asked for its RSA
   * key. A man in the middle could hand over its own key and read the password, so the
   * default allows it only toward a loopback address.
   */
  readonly allowPublicKeyRetrieval?: boolean | undefined;
}

/** Always asked for (when the server offers them): the protocol the codec speaks. */
export const BASE_CAPABILITIES =
  CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;

/** Capabilities a caller may ask for. Never: compression, query attributes, optional metadata, zstd, MFA. */
export const REQUESTABLE_CAPABILITIES =
  (CLIENT_FOUND_ROWS |
    CLIENT_LONG_FLAG |
    CLIENT_NO_SCHEMA |
    CLIENT_LOCAL_FILES |
    CLIENT_IGNORE_SPACE |
    CLIENT_INTERACTIVE |
    CLIENT_IGNORE_SIGPIPE |
    CLIENT_TRANSACTIONS |
    CLIENT_MULTI_STATEMENTS |
    CLIENT_MULTI_RESULTS |
    CLIENT_PS_MULTI_RESULTS |
    CLIENT_SESSION_TRACK |
    CLIENT_DEPRECATE_EOF) >>>
  0;

export const DEFAULT_CLIENT_CAPABILITIES = (CLIENT_LONG_FLAG | CLIENT_TRANSACTIONS | CLIENT_MULTI_RESULTS | CLIENT_PS_MULTI_RESULTS) >>> 0;

/** An upstream connection that finished its connection phase and is ready for commands. */
export interface MysqlUpstreamConnection {
  /** The connection (a TLSSocket when TLS is on), paused, with no listeners of ours. */
  readonly socket: net.Socket;
  readonly connectionId: number;
  /** The capabilities agreed (what was sent in the HandshakeResponse41). */
  readonly capabilities: number;
  /** What the server offered in its greeting. */
  readonly serverCapabilities: number;
  readonly serverVersion: string;
  /** Server status flags from the final OK. */
  readonly status: number;
  /** Collation id sent to the server. */
  readonly charset: number;
  /** The plugin that authenticated the gateway. */
  readonly authPluginName: string;
  readonly tls: boolean;
  /** Bytes received after the OK (normally none), for the relay to read first. */
  readonly leftover: Buffer;
}

/** The upstream refused or failed; errno, SQLSTATE and message are set when it sent an ERR. */
export class UpstreamError extends Error {
  readonly errno: number | undefined;
  readonly sqlstate: string | undefined;
  readonly serverMessage: string | undefined;

  constructor(message: string, server?: ErrPacket, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UpstreamError';
    this.errno = server?.errno;
    this.sqlstate = server?.sqlstate;
    this.serverMessage = server?.message;
  }
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Largest message accepted during the connection phase (a greeting, an RSA key, an ERR). */
const HANDSHAKE_MAX_MESSAGE = 1 << 20;

/**
 * Reads packets from a socket one logical message at a time and writes them with the
 * conversation's sequence ids. Used only during the connection phase (and by sendKill).
 */
class Channel {
  readonly messages = new MessageReader({ maxMessageBytes: HANDSHAKE_MAX_MESSAGE });
  readonly sequence = new PacketSequence();
  #socket: net.Socket;
  readonly #signal: AbortSignal;
  #waiter: { resolve: (m: PacketMessage) => void; reject: (e: Error) => void } | undefined;
  #failure: Error | undefined;

  constructor(socket: net.Socket, signal: AbortSignal) {
    this.#socket = socket;
    this.#signal = signal;
    signal.addEventListener('abort', this.#onAbort, { once: true });
    this.#attach();
  }

  get socket(): net.Socket {
    return this.#socket;
  }

  #onData = (chunk: Buffer): void => {
    try {
      this.messages.push(chunk);
    } catch (err) {
      this.#fail(new UpstreamError(`bad data from the upstream: ${(err as Error).message}`, undefined, { cause: err }));
      return;
    }
    this.#pump();
  };
  #onError = (err: Error): void => this.#fail(new UpstreamError(`upstream connection failed: ${err.message}`, undefined, { cause: err }));
  #onClose = (): void => this.#fail(new UpstreamError('the upstream closed the connection during the handshake'));
  #onAbort = (): void => this.#fail(new UpstreamError('upstream connection timed out'));

  #attach(): void {
    this.#socket.on('data', this.#onData);
    this.#socket.on('error', this.#onError);
    this.#socket.on('close', this.#onClose);
  }

  #detachSocket(): void {
    this.#socket.off('data', this.#onData);
    this.#socket.off('error', this.#onError);
    this.#socket.off('close', this.#onClose);
    this.#socket.pause();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(this.#failure);
  }

  #pump(): void {
    const w = this.#waiter;
    if (!w) return;
    let m: PacketMessage | undefined;
    try {
      m = this.messages.next();
      if (!m) return;
      this.sequence.received(m);
    } catch (err) {
      this.#fail(new UpstreamError(`bad packet from the upstream: ${(err as Error).message}`, undefined, { cause: err }));
      return;
    }
    this.#waiter = undefined;
    w.resolve(m);
  }

  read(): Promise<PacketMessage> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#pump();
      if (this.#waiter) this.#socket.resume();
    });
  }

  write(payload: Uint8Array): void {
    this.#socket.write(this.sequence.encode(payload));
  }

  /** Hands the stream to a TLS socket wrapping the current one. */
  async upgrade(connect: (socket: net.Socket) => tls.TLSSocket): Promise<void> {
    if (this.messages.buffered > 0) throw new UpstreamError('the upstream sent data before the TLS handshake');
    this.#detachSocket();
    const secure = connect(this.#socket);
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        this.#signal.removeEventListener('abort', onAbort);
        secure.off('secureConnect', onSecure);
        secure.off('error', onError);
        if (err) reject(err);
        else resolve();
      };
      const onSecure = () => done();
      const onError = (err: Error) => done(new UpstreamError(`upstream TLS handshake failed: ${err.message}`, undefined, { cause: err }));
      const onAbort = () => done(new UpstreamError('upstream TLS handshake timed out'));
      if (this.#signal.aborted) return onAbort();
      this.#signal.addEventListener('abort', onAbort, { once: true });
      secure.once('secureConnect', onSecure);
      secure.once('error', onError);
    }).catch((err: unknown) => {
      secure.destroy();
      throw err;
    });
    this.#socket = secure;
    this.#attach();
  }

  /** Stops reading; returns the bytes received and not yet read as messages. */
  detach(): Buffer {
    this.#signal.removeEventListener('abort', this.#onAbort);
    this.#detachSocket();
    return Buffer.from(this.messages.drain());
  }

  destroy(): void {
    this.#signal.removeEventListener('abort', this.#onAbort);
    this.#socket.destroy();
  }
}

function openSocket(host: string, port: number, signal: AbortSignal): Promise<net.Socket> {
  return connectTcp(host, port, signal, (message, cause) => new UpstreamError(message, undefined, cause === undefined ? undefined : { cause }));
}

function tlsConnector(options: MysqlUpstreamOptions): (socket: net.Socket) => tls.TLSSocket {
  const { mode, caFile, serverName } = options.tls ?? { mode: 'disable' as const };
  const verify = mode === 'verify-ca' || mode === 'verify-full';
  const name = serverName ?? options.host;
  return (socket) =>
    tls.connect({
      socket,
      servername: net.isIP(name) ? undefined : name,
      rejectUnauthorized: verify,
      ...(caFile ? { ca: readFileSync(caFile) } : {}),
      // verify-ca checks the chain but not the name.
      ...(mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
      ...(mode === 'verify-full' ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(name, cert) } : {}),
    });
}

/** The capabilities to send, given the greeting. */
export function negotiateCapabilities(options: MysqlUpstreamOptions, server: number, useTls: boolean): number {
  const requested = ((options.capabilities ?? DEFAULT_CLIENT_CAPABILITIES) & REQUESTABLE_CAPABILITIES) | BASE_CAPABILITIES;
  let caps = (requested & server) >>> 0;
  if (useTls) caps |= CLIENT_SSL;
  if (options.database && server & CLIENT_CONNECT_WITH_DB) caps |= CLIENT_CONNECT_WITH_DB;
  if (options.connectAttributes && server & CLIENT_CONNECT_ATTRS) caps |= CLIENT_CONNECT_ATTRS;
  return caps >>> 0;
}

interface Opened {
  readonly channel: Channel;
  readonly greeting: HandshakeV10;
  readonly capabilities: number;
  readonly charset: number;
  readonly status: number;
  readonly authPluginName: string;
  readonly tls: boolean;
}

async function open(options: MysqlUpstreamOptions, signal: AbortSignal): Promise<Opened> {
  const socket = await openSocket(options.host, options.port, signal);
  const channel = new Channel(socket, signal);
  try {
    return await handshake(channel, options);
  } catch (err) {
    channel.destroy();
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError(`upstream handshake failed: ${(err as Error).message}`, undefined, { cause: err });
  }
}

function refused(err: ErrPacket): UpstreamError {
  return new UpstreamError(`the upstream refused the gateway: ${err.message} (${err.errno}${err.sqlstate ? `/${err.sqlstate}` : ''})`, err);
}

async function handshake(channel: Channel, options: MysqlUpstreamOptions): Promise<Opened> {
  const first = await channel.read();
  // A server refusing before the handshake (too many connections, blocked host) sends an ERR.
  if (first.payload[0] === ResponseHeader.ERR) throw refused(decodeErr(first.payload));
  const greeting = decodeHandshakeV10(first.payload);
  const server = greeting.capabilities;
  if (!(server & CLIENT_PROTOCOL_41) || !(server & CLIENT_SECURE_CONNECTION)) {
    throw new UpstreamError(`the upstream (${greeting.serverVersion}) does not speak the 4.1 protocol`);
  }

  const mode = options.tls?.mode ?? 'disable';
  let useTls = false;
  if (mode !== 'disable') {
    if (server & CLIENT_SSL) useTls = true;
    else if (mode !== 'prefer') throw new UpstreamError(`the upstream does not offer TLS but the TLS mode is "${mode}"`);
  }
  const capabilities = negotiateCapabilities(options, server, useTls);
  const charset = options.charset ?? Collation.UTF8MB4_GENERAL_CI;
  const prefix = { capabilities, maxPacketSize: options.maxPacketSize ?? 0x1000000, charset, mariadbCapabilities: 0 };
  if (useTls) {
    channel.write(encodeSslRequest(prefix));
    await channel.upgrade(tlsConnector(options));
  }

  const auth = new AuthClient({
    password: options.password,
    secure: useTls,
    cleartextAllowed: isLoopback(options.host),
    serverPublicKey: options.serverPublicKey,
    allowPublicKeyRetrieval: options.allowPublicKeyRetrieval ?? isLoopback(options.host),
  });
  // Answer with the server's default plugin when it is one the gateway speaks (the server
  // switches to the user's own plugin if it differs); otherwise start with native password.
  let plugin = options.initialAuthPlugin ?? greeting.authPluginName;
  if (!AuthClient.supports(plugin) || plugin === AuthPlugin.CLEAR_PASSWORD) plugin = AuthPlugin.NATIVE_PASSWORD;
  channel.write(
    encodeHandshakeResponse41({
      ...prefix,
      username: options.user,
      authResponse: auth.respond(plugin, greeting.authPluginData),
      database: options.database,
      authPluginName: plugin,
      connectAttributes: options.connectAttributes,
    }),
  );

  for (;;) {
    const { payload } = await channel.read();
    switch (payload[0]) {
      case ResponseHeader.OK: {
        const ok = decodeOk(payload, capabilities);
        return { channel, greeting, capabilities, charset, status: ok.statusFlags, authPluginName: auth.plugin, tls: useTls };
      }
      case ResponseHeader.ERR:
        throw refused(decodeErr(payload, capabilities));
      case ResponseHeader.EOF: {
        const sw = decodeAuthSwitchRequest(payload);
        channel.write(respond(() => auth.respond(sw.pluginName, sw.pluginData)));
        break;
      }
      case ResponseHeader.AUTH_MORE_DATA: {
        const reply = respond(() => auth.moreData(decodeAuthMoreData(payload)));
        if (reply) channel.write(reply);
        break;
      }
      default:
        throw new UpstreamError(`unexpected packet 0x${(payload[0] ?? 0).toString(16)} from the upstream during authentication`);
    }
  }
}

function respond<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof AuthRefusedError) throw new UpstreamError(err.message, undefined, { cause: err });
    throw err;
  }
}

/**
 * Opens a connection to the upstream, upgrades it to TLS as configured (SSLRequest), logs in
 * with the gateway's credentials (mysql_native_password, caching_sha2_password,
 * mysql_clear_password over TLS or loopback) and returns once the server's OK arrives.
 * Rejects with UpstreamError; never leaves a socket open on failure.
 */
export async function connectUpstream(options: MysqlUpstreamOptions): Promise<MysqlUpstreamConnection> {
  const signal = AbortSignal.timeout(options.connectTimeoutMs ?? 10_000);
  const o = await open(options, signal);
  const leftover = o.channel.detach();
  return {
    socket: o.channel.socket,
    connectionId: o.greeting.connectionId,
    capabilities: o.capabilities,
    serverCapabilities: o.greeting.capabilities,
    serverVersion: o.greeting.serverVersion,
    status: o.status,
    charset: o.charset,
    authPluginName: o.authPluginName,
    tls: o.tls,
    leftover,
  };
}

/**
 * Stops the statement running on upstream connection `connectionId`: logs in on a separate
 * connection with the same options, runs `KILL QUERY <id>` and quits. Rejects with
 * UpstreamError when the server refuses (errno 1094 for an unknown connection id).
 */
export async function sendKill(options: MysqlUpstreamOptions, connectionId: number): Promise<void> {
  if (!Number.isSafeInteger(connectionId) || connectionId < 0) throw new RangeError(`invalid connection id ${connectionId}`);
  const signal = AbortSignal.timeout(options.connectTimeoutMs ?? 10_000);
  const { channel, capabilities } = await open({ ...options, connectAttributes: undefined }, signal);
  try {
    channel.sequence.reset();
    channel.write(encodeComQuery(`KILL QUERY ${connectionId}`));
    const { payload } = await channel.read();
    if (payload[0] === ResponseHeader.ERR) {
      const err = decodeErr(payload, capabilities);
      throw new UpstreamError(`KILL QUERY ${connectionId} failed: ${err.message}`, err);
    }
    channel.sequence.reset();
    channel.write(encodeSimpleCommand(Command.QUIT));
  } finally {
    channel.detach();
    const socket = channel.socket;
    socket.on('error', () => socket.destroy());
    socket.end();
    socket.setTimeout(1000, () => socket.destroy());
  }
}

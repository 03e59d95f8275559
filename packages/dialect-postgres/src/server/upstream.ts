import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { ByteReader, connectTcp, FrameBuffer } from '@sluice/wire';
import { serialize } from 'pg-protocol';
import type { PostgresTargetOptions } from '../config.js';
import { readErrorCode, readErrorField } from '../messages/error-response.js';
import { Backend, typedFraming } from '../messages/framing.js';
import { encodeSslRequest, encodeStartupMessage } from '../messages/startup-message.js';
import { md5Password } from './auth/md5.js';
import { ScramClient } from './auth/scram.js';

/** An upstream connection that finished its startup and is ready for queries. */
export interface UpstreamConnection {
  readonly socket: net.Socket;
  /** The backend's BackendKeyData, used to forward a client's CancelRequest. */
  readonly processId: number;
  readonly secretKey: number;
  /** Raw ParameterStatus frames, relayed to the client as they are. */
  readonly parameterStatus: readonly Buffer[];
  /** Raw NoticeResponse frames received during startup. */
  readonly notices: readonly Buffer[];
  /** Bytes received after ReadyForQuery (normally none), to be processed by the relay. */
  readonly leftover: Buffer;
  readonly transactionStatus: 'I' | 'T' | 'E';
  readonly tls: boolean;
}

/** The upstream refused or failed; `sqlstate`/`serverMessage` are set when it sent an ErrorResponse. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly sqlstate?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpstreamError';
  }
}

/**
 * Startup parameters a client may pass through to the upstream; others are dropped.
 * NOTE: `options` is not among them: it can set any server setting (`-c role=…`) before the
 * first statement, outside the statement audit and policy.
 */
const PASSTHROUGH_PARAMS = new Set([
  'application_name',
  'client_encoding',
  'DateStyle',
  'TimeZone',
  'extra_float_digits',
  'IntervalStyle',
  'datestyle',
  'timezone',
]);

export function upstreamStartupParams(
  options: PostgresTargetOptions,
  client: ReadonlyMap<string, string>,
): Map<string, string> {
  const params = new Map<string, string>([
    ['user', options.upstream.user],
    ['database', options.upstream.database],
  ]);
  for (const [k, v] of client) if (PASSTHROUGH_PARAMS.has(k)) params.set(k, v);
  return params;
}

function openSocket(options: PostgresTargetOptions, signal: AbortSignal): Promise<net.Socket> {
  const { host, port } = options.upstream;
  return connectTcp(host, port, signal, (message, cause) => new UpstreamError(message, undefined, cause === undefined ? undefined : { cause }));
}

function readOneByte(socket: net.Socket, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onData = (chunk: Buffer) => {
      cleanup();
      socket.pause();
      if (chunk.length > 1) {
        reject(new UpstreamError('the upstream sent unexpected data after answering SSLRequest'));
        return;
      }
      resolve(chunk[0]!);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new UpstreamError(`upstream connection failed: ${err.message}`, undefined, { cause: err }));
    };
    const onClose = () => {
      cleanup();
      reject(new UpstreamError('the upstream closed the connection during TLS negotiation'));
    };
    const onAbort = () => {
      cleanup();
      reject(new UpstreamError('upstream TLS negotiation timed out'));
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.resume();
  });
}

async function negotiateTls(socket: net.Socket, options: PostgresTargetOptions, signal: AbortSignal): Promise<net.Socket> {
  const { mode, caFile, serverName } = options.upstreamTls;
  socket.write(encodeSslRequest());
  const answer = await readOneByte(socket, signal);
  if (answer !== 0x53 /* S */) {
    if (mode === 'prefer') return socket;
    socket.destroy();
    throw new UpstreamError(`the upstream does not accept TLS but upstreamTls.mode is "${mode}"`);
  }
  const verify = mode === 'verify-ca' || mode === 'verify-full';
  const secure = tls.connect({
    socket,
    servername: net.isIP(options.upstream.host) ? undefined : (serverName ?? options.upstream.host),
    rejectUnauthorized: verify,
    ...(caFile ? { ca: readFileSync(caFile) } : {}),
    // verify-ca checks the chain but not the name.
    ...(mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
    ...(mode === 'verify-full' && serverName ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(serverName, cert) } : {}),
  });
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      secure.destroy();
      reject(new UpstreamError('upstream TLS handshake timed out'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    secure.once('secureConnect', () => {
      signal.removeEventListener('abort', onAbort);
      secure.removeAllListeners('error');
      resolve();
    });
    secure.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(new UpstreamError(`upstream TLS handshake failed: ${err.message}`, undefined, { cause: err }));
    });
  });
  return secure;
}

/**
 * Opens a connection to the upstream, negotiates TLS as configured, authenticates with the
 * gateway's own credentials (trust, cleartext, md5, SCRAM-SHA-256) and reads until the first
 * ReadyForQuery. Rejects with UpstreamError; never leaves a socket open on failure.
 */
export async function connectUpstream(
  options: PostgresTargetOptions,
  clientParams: ReadonlyMap<string, string>,
): Promise<UpstreamConnection> {
  const signal = AbortSignal.timeout(options.connectTimeoutMs);
  let socket = await openSocket(options, signal);
  try {
    let isTls = false;
    if (options.upstreamTls.mode !== 'disable') {
      socket = await negotiateTls(socket, options, signal);
      isTls = socket instanceof tls.TLSSocket;
    }
    return await startup(socket, options, clientParams, signal, isTls);
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

function startup(
  socket: net.Socket,
  options: PostgresTargetOptions,
  clientParams: ReadonlyMap<string, string>,
  signal: AbortSignal,
  isTls: boolean,
): Promise<UpstreamConnection> {
  const { user, password } = options.upstream;
  const frames = new FrameBuffer(typedFraming, 1 << 20);
  const parameterStatus: Buffer[] = [];
  const notices: Buffer[] = [];
  let processId = 0;
  let secretKey = 0;
  let scram: ScramClient | undefined;
  let scramVerified = false;

  return new Promise<UpstreamConnection>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, conn?: UpstreamConnection) => {
      if (settled) return;
      settled = true;
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(conn!);
    };
    const needPassword = (): string => {
      if (password === undefined) {
        throw new UpstreamError(`the upstream asks for a password but the target's upstream URL has none for user "${user}"`);
      }
      return password;
    };
    const onFrame = (frame: Buffer): void => {
      const type = frame[0];
      if (type === Backend.Authentication) {
        const r = new ByteReader(frame, 5);
        const code = r.int32();
        switch (code) {
          case 0: // AuthenticationOk
            // After SCRAM started, only a verified SASLFinal proves the server knows the password.
            if (scram && !scramVerified) throw new UpstreamError('the upstream ended SCRAM authentication without proving its identity');
            return;
          case 3: // CleartextPassword
            // Never hand the password in clear to a server whose identity is not checked or over plaintext
            // (a man in the middle could ask for it), except on loopback.
            if (!isTls && !isLoopback(options.upstream.host)) {
              throw new UpstreamError('the upstream asks for the password in clear over an unencrypted connection; configure upstreamTls or use md5/SCRAM');
            }
            socket.write(serialize.password(needPassword()));
            return;
          case 5: // MD5Password: Int32 5 | Byte4 salt
            socket.write(serialize.password(md5Password(user, needPassword(), r.bytes(4))));
            return;
          case 10: {
            // SASL: list of mechanism names, NUL-terminated, ending with an empty one.
            const mechanisms: string[] = [];
            for (let m = r.cstring(); m !== ''; m = r.cstring()) mechanisms.push(m);
            if (!mechanisms.includes('SCRAM-SHA-256')) {
              throw new UpstreamError(`the upstream offers SASL mechanisms ${mechanisms.join(', ')}; only SCRAM-SHA-256 is supported`);
            }
            scram = new ScramClient(needPassword());
            socket.write(serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', scram.clientFirstMessage()));
            return;
          }
          case 11: // SASLContinue
            if (!scram) throw new UpstreamError('the upstream sent SASLContinue before SASL started');
            socket.write(serialize.sendSCRAMClientFinalMessage(scram.handleServerFirst(r.rest().toString('utf8'))));
            return;
          case 12: // SASLFinal
            if (!scram) throw new UpstreamError('the upstream sent SASLFinal before SASL started');
            scram.verifyServerFinal(r.rest().toString('utf8'));
            scramVerified = true;
            return;
          default:
            throw new UpstreamError(`the upstream asks for an authentication method the gateway does not support (code ${code})`);
        }
      }
      switch (type) {
        case Backend.ParameterStatus:
          parameterStatus.push(Buffer.from(frame));
          return;
        case Backend.BackendKeyData: {
          const r = new ByteReader(frame, 5);
          processId = r.int32();
          secretKey = r.int32();
          return;
        }
        case Backend.NoticeResponse:
          notices.push(Buffer.from(frame));
          return;
        case Backend.NegotiateProtocolVersion:
          return;
        case Backend.ErrorResponse: {
          const message = readErrorField(frame, 0x4d); // M
          throw new UpstreamError(`the upstream refused the gateway: ${message ?? 'unknown error'}`, readErrorCode(frame));
        }
        case Backend.ReadyForQuery: {
          const status = String.fromCharCode(frame[5] ?? 0x49) as 'I' | 'T' | 'E';
          socket.pause();
          finish(undefined, {
            socket,
            processId,
            secretKey,
            parameterStatus,
            notices,
            leftover: Buffer.from(frames.drain()),
            transactionStatus: status,
            tls: isTls,
          });
          return;
        }
        default:
          throw new UpstreamError(`unexpected message "${String.fromCharCode(type ?? 0)}" from the upstream during startup`);
      }
    };
    const onData = (chunk: Buffer) => {
      try {
        frames.push(chunk);
        for (let f = frames.next(); f && !settled; f = frames.next()) onFrame(f.buffer.subarray(f.start, f.end));
      } catch (err) {
        finish(err instanceof UpstreamError ? err : new UpstreamError(`upstream startup failed: ${(err as Error).message}`, undefined, { cause: err }));
      }
    };
    const onError = (err: Error) => finish(new UpstreamError(`upstream connection failed: ${err.message}`, undefined, { cause: err }));
    const onClose = () => finish(new UpstreamError('the upstream closed the connection during startup'));
    const onAbort = () => finish(new UpstreamError('upstream startup timed out'));
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.write(encodeStartupMessage(upstreamStartupParams(options, clientParams)));
    socket.resume();
  });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Sends a CancelRequest for an upstream backend on a fresh connection (fire and forget). */
export function sendUpstreamCancel(options: PostgresTargetOptions, processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: options.upstream.host, port: options.upstream.port });
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(options.connectTimeoutMs, done);
    socket.once('connect', () => socket.end(serialize.cancel(processId, secretKey)));
    socket.once('close', done);
    socket.once('error', done);
  });
}

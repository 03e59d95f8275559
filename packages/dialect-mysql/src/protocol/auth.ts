import { constants, createHash, publicEncrypt, type KeyObject } from 'node:crypto';

/**
 * Client side of the MySQL authentication plugins the gateway uses toward the upstream.
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods.html
 * https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html
 */
export const AuthPlugin = {
  NATIVE_PASSWORD: 'mysql_native_password',
  CACHING_SHA2_PASSWORD: 'caching_sha2_password',
  CLEAR_PASSWORD: 'mysql_clear_password',
} as const;

/** caching_sha2_password's one-byte messages (inside AuthMoreData, or sent by the client). */
export const CachingSha2 = {
  /** Client: send me your RSA public key. */
  REQUEST_PUBLIC_KEY: 0x02,
  /** Server: the scramble matched the cache; an OK follows. */
  FAST_AUTH_SUCCESS: 0x03,
  /** Server: send the password itself (in clear over TLS, RSA-encrypted otherwise). */
  PERFORM_FULL_AUTH: 0x04,
} as const;

const sha1 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
};

const sha256 = (...parts: Uint8Array[]): Buffer => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

function bytesOf(password: string | Uint8Array): Uint8Array {
  return typeof password === 'string' ? Buffer.from(password, 'utf8') : password;
}

function xor(a: Uint8Array, b: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i % b.length]!;
  return out;
}

/**
 * The scramble a plugin's data carries: servers send the 20 bytes followed by a NUL (in an
 * AuthSwitchRequest); the NUL is not part of it.
 */
export function scrambleOf(data: Uint8Array): Buffer {
  const b = Buffer.from(data);
  return b.length > 0 && b[b.length - 1] === 0 ? b.subarray(0, b.length - 1) : b;
}

/**
 * mysql_native_password: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
 * An empty password answers with no bytes.
 */
export function nativePasswordScramble(password: string | Uint8Array, scramble: Uint8Array): Buffer {
  const pw = bytesOf(password);
  if (pw.length === 0) return Buffer.alloc(0);
  const stage1 = sha1(pw);
  const stage2 = sha1(stage1);
  return xor(stage1, sha1(scramble.subarray(0, 20), stage2));
}

/**
 * caching_sha2_password fast path: SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
 * An empty password answers with no bytes.
 */
export function cachingSha2Scramble(password: string | Uint8Array, scramble: Uint8Array): Buffer {
  const pw = bytesOf(password);
  if (pw.length === 0) return Buffer.alloc(0);
  const stage1 = sha256(pw);
  const stage2 = sha256(stage1);
  return xor(stage1, sha256(stage2, scramble.subarray(0, 20)));
}

/** The password and its NUL, as mysql_clear_password and full authentication over TLS send it. */
export function clearPasswordResponse(password: string | Uint8Array): Buffer {
  const pw = bytesOf(password);
  const out = Buffer.alloc(pw.length + 1);
  out.set(pw, 0);
  return out;
}

/**
 * caching_sha2_password full authentication without TLS: RSA-OAEP (SHA-1, as the server
 * decrypts with RSA_PKCS1_OAEP_PADDING) of (password + NUL) XOR the scramble (repeated).
 */
export function encryptPasswordRsa(password: string | Uint8Array, scramble: Uint8Array, publicKey: string | Buffer | KeyObject): Buffer {
  const plain = xor(clearPasswordResponse(password), scramble.subarray(0, 20));
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, plain);
}

/** The gateway refuses to go on with an authentication exchange (unsupported or unsafe). */
export class AuthRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthRefusedError';
  }
}

export interface AuthClientOptions {
  readonly password: string | undefined;
  /** The connection is TLS: the password may travel in clear. */
  readonly secure: boolean;
  /** mysql_clear_password is acceptable without TLS (a loopback connection). */
  readonly cleartextAllowed: boolean;
  /** The server's RSA public key (PEM), known in advance: used without asking the server. */
  readonly serverPublicKey?: string | Buffer | undefined;
  /** Without TLS and without `serverPublicKey`, the server may be asked for its key. */
  readonly allowPublicKeyRetrieval: boolean;
}

/**
 * One authentication exchange, as a state machine independent of sockets: it is given the
 * server's plugin requests and returns what to send.
 */
export class AuthClient {
  readonly #options: AuthClientOptions;
  #plugin = '';
  #scramble: Buffer = Buffer.alloc(0);
  #state: 'start' | 'sha2-token-sent' | 'sha2-awaiting-key' | 'sha2-password-sent' | 'done' = 'start';

  constructor(options: AuthClientOptions) {
    this.#options = options;
  }

  /** The plugin in use. */
  get plugin(): string {
    return this.#plugin;
  }

  static supports(plugin: string): boolean {
    return plugin === AuthPlugin.NATIVE_PASSWORD || plugin === AuthPlugin.CACHING_SHA2_PASSWORD || plugin === AuthPlugin.CLEAR_PASSWORD;
  }

  /** The auth response for `plugin`, given its data (the greeting's or an AuthSwitchRequest's). */
  respond(plugin: string, data: Uint8Array): Buffer {
    const password = this.#options.password ?? '';
    this.#plugin = plugin;
    this.#scramble = scrambleOf(data);
    switch (plugin) {
      case AuthPlugin.NATIVE_PASSWORD:
        this.#state = 'done';
        return nativePasswordScramble(password, this.#scramble);
      case AuthPlugin.CACHING_SHA2_PASSWORD:
        this.#state = 'sha2-token-sent';
        return cachingSha2Scramble(password, this.#scramble);
      case AuthPlugin.CLEAR_PASSWORD:
        // A server that has not proven who it is over TLS could be anyone asking for the password.
        if (!this.#options.secure && !this.#options.cleartextAllowed) {
          throw new AuthRefusedError('the upstream asks for the password in clear (mysql_clear_password) over a connection without TLS');
        }
        this.#state = 'done';
        return clearPasswordResponse(password);
      default:
        throw new AuthRefusedError(`the upstream asks for authentication plugin "${plugin}", which the gateway does not support`);
    }
  }

  /**
   * What to answer an AuthMoreData (its data, without the 0x01), or undefined when nothing
   * is to be sent and the server's OK or ERR comes next.
   */
  moreData(data: Buffer): Buffer | undefined {
    if (this.#plugin !== AuthPlugin.CACHING_SHA2_PASSWORD) {
      throw new AuthRefusedError(`unexpected AuthMoreData for plugin "${this.#plugin}"`);
    }
    const password = this.#options.password ?? '';
    if (this.#state === 'sha2-token-sent' && data.length === 1) {
      if (data[0] === CachingSha2.FAST_AUTH_SUCCESS) {
        this.#state = 'done';
        return undefined;
      }
      if (data[0] === CachingSha2.PERFORM_FULL_AUTH) {
        this.#state = 'sha2-password-sent';
        if (this.#options.secure) return clearPasswordResponse(password);
        if (this.#options.serverPublicKey) return encryptPasswordRsa(password, this.#scramble, this.#options.serverPublicKey);
        if (!this.#options.allowPublicKeyRetrieval) {
          throw new AuthRefusedError(
            'caching_sha2_password needs full authentication and the connection has no TLS: configure TLS, the server public key, or allow public key retrieval',
          );
        }
        this.#state = 'sha2-awaiting-key';
        return Buffer.from([CachingSha2.REQUEST_PUBLIC_KEY]);
      }
    }
    if (this.#state === 'sha2-awaiting-key') {
      this.#state = 'sha2-password-sent';
      try {
        return encryptPasswordRsa(password, this.#scramble, data.toString('latin1'));
      } catch (err) {
        throw new AuthRefusedError(`the upstream's RSA public key is unusable: ${(err as Error).message}`);
      }
    }
    throw new AuthRefusedError(`unexpected caching_sha2_password data (${data.length} bytes) from the upstream`);
  }
}

/**
 * A minimal OpenID Connect issuer for tests: serves a discovery document and a JWKS over
 * real HTTP on 127.0.0.1, and signs JWTs with its key (or, on request, with a key it does
 * not publish).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export type OidcIssuerAlgorithm = 'RS256' | 'ES256';

export interface OidcIssuerOptions {
  /** Default `aud` of signed tokens. Default "sluice". */
  readonly audience?: string;
  /** Signing algorithm. Default RS256. */
  readonly alg?: OidcIssuerAlgorithm;
}

export interface SignOptions {
  /**
   * Lifetime: a number of seconds from now (negative for an already expired token), or a jose
   * time span such as "5m" or "-1h". Null leaves `exp` out. Default "5m".
   */
  readonly expiresIn?: string | number | null;
  /** Not-before: seconds from now, or a jose time span such as "10m". Default: no `nbf`. */
  readonly notBefore?: string | number;
  /** `iss` of the token. Default: this issuer. */
  readonly issuer?: string;
  /** `aud` of the token. Default: the issuer's audience. */
  readonly audience?: string | string[];
  /** Sign with a key that is not in the published JWKS (same kid), so the signature is invalid. */
  readonly wrongKey?: boolean;
}

export interface OidcIssuer {
  /** http://127.0.0.1:PORT */
  readonly issuer: string;
  readonly jwksUri: string;
  readonly discoveryUri: string;
  readonly audience: string;
  readonly alg: OidcIssuerAlgorithm;
  /** The key id in the JWKS and in token headers. */
  readonly kid: string;
  /** HTTP requests served so far (any path). */
  readonly requests: number;
  /** Requests served per path, e.g. { '/jwks.json': 1 }. */
  readonly requestsByPath: Readonly<Record<string, number>>;
  /**
   * Signs `claims` as a JWT. `iss`, `aud`, `iat` and `exp` are filled in unless given in
   * `claims`; `options` override both.
   */
  sign(claims: Record<string, unknown>, options?: SignOptions): Promise<string>;
  /** Stops serving; later requests are refused at the TCP level. */
  close(): Promise<void>;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** jose reads a number as an absolute time; here a number means seconds from now. */
function timeFromNow(value: string | number): string | number {
  return typeof value === 'number' ? nowSeconds() + value : value;
}

export async function startOidcIssuer(options: OidcIssuerOptions = {}): Promise<OidcIssuer> {
  const alg = options.alg ?? 'RS256';
  const audience = options.audience ?? 'sluice';
  const kid = `test-${alg.toLowerCase()}-${Math.random().toString(36).slice(2, 10)}`;
  const { privateKey, publicKey } = await generateKeyPair(alg);
  const { privateKey: strayKey } = await generateKeyPair(alg);
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };

  let requests = 0;
  const requestsByPath: Record<string, number> = {};
  let issuer = '';

  const server: Server = createServer((req, res) => {
    requests += 1;
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    requestsByPath[path] = (requestsByPath[path] ?? 0) + 1;
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return send(405, { error: 'method not allowed' });
    if (path === '/.well-known/openid-configuration') {
      return send(200, {
        issuer,
        jwks_uri: `${issuer}/jwks.json`,
        id_token_signing_alg_values_supported: [alg],
        response_types_supported: ['id_token'],
        subject_types_supported: ['public'],
      });
    }
    if (path === '/jwks.json') return send(200, { keys: [publicJwk] });
    return send(404, { error: 'not found' });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  issuer = `http://127.0.0.1:${port}`;
  let closed: Promise<void> | undefined;

  async function sign(claims: Record<string, unknown>, signOptions: SignOptions = {}): Promise<string> {
    const key: CryptoKey = signOptions.wrongKey ? strayKey : privateKey;
    const payload: Record<string, unknown> = {
      iss: issuer,
      aud: audience,
      iat: nowSeconds(),
      ...claims,
      ...(signOptions.issuer !== undefined ? { iss: signOptions.issuer } : {}),
      ...(signOptions.audience !== undefined ? { aud: signOptions.audience } : {}),
    };
    const jwt = new SignJWT(payload).setProtectedHeader({ alg, kid, typ: 'JWT' });
    const expiresIn = signOptions.expiresIn === undefined ? '5m' : signOptions.expiresIn;
    if (expiresIn !== null && !('exp' in claims)) jwt.setExpirationTime(timeFromNow(expiresIn));
    if (signOptions.notBefore !== undefined) jwt.setNotBefore(timeFromNow(signOptions.notBefore));
    return jwt.sign(key);
  }

  return {
    issuer,
    jwksUri: `${issuer}/jwks.json`,
    discoveryUri: `${issuer}/.well-known/openid-configuration`,
    audience,
    alg,
    kid,
    get requests() {
      return requests;
    },
    get requestsByPath() {
      return { ...requestsByPath };
    },
    sign,
    close() {
      closed ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

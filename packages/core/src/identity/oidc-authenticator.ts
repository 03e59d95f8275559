import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { clientErrors } from '../errors.js';
import { oidcIssuerSchema, parseEntry, type OidcIssuerConfig, type OidcIssuerConfigInput } from './config.js';
import { quoted } from './messages.js';
import { IdentityKind, type Authenticator, type Credentials, type Identity, type SecretIdentifier } from './types.js';

/** Where operational problems (an identity provider that cannot be reached) are reported. A pino Logger fits. */
export interface OperationalLogger {
  error(obj: object, msg?: string): void;
}

export interface OidcAuthenticatorOptions {
  /** Receives operational problems; defaults to console.error. */
  readonly logger?: OperationalLogger;
  /** Time allowed for each discovery or JWKS request, in milliseconds. Default 5000. */
  readonly fetchTimeoutMs?: number;
  /** Current time in epoch milliseconds, used for exp/nbf checks; defaults to Date.now. */
  readonly now?: () => number;
}

const KINDS: readonly string[] = Object.values(IdentityKind);
/** Claims copied into Identity.claims besides the configured username, groups and kind claims. */
const KEPT_CLAIMS = ['iss', 'sub', 'email', 'name', 'aud', 'exp', 'iat', 'job', 'run'] as const;
const MAX_ECHOED_LENGTH = 200;

const consoleLogger: OperationalLogger = {
  error: (obj, msg) => console.error(msg ?? 'error', obj),
};

/** The identity provider could not be reached or answered something unusable. */
class ProviderUnavailableError extends Error {
  constructor(
    readonly issuer: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach the identity provider ${issuer}: ${reason}`, options);
    this.name = 'ProviderUnavailableError';
  }
}

function shorten(value: string): string {
  return value.length > MAX_ECHOED_LENGTH ? `${value.slice(0, MAX_ECHOED_LENGTH)}…` : value;
}

/** Describes a failed HTTP request in a few words, for operators and clients alike. */
function describeFetchFailure(err: unknown, timeoutMs: number): string {
  if (err instanceof errors.JWKSTimeout) return `no answer within ${timeoutMs} ms`;
  if (err instanceof Error) {
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
    const cause = (err as { cause?: unknown }).cause;
    const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
    if (typeof code === 'string') {
      const known: Record<string, string> = {
        ECONNREFUSED: 'connection refused',
        ENOTFOUND: 'host name not found',
        EAI_AGAIN: 'host name lookup failed',
        ECONNRESET: 'connection reset',
        ETIMEDOUT: 'connection timed out',
        EHOSTUNREACH: 'host unreachable',
        CERT_HAS_EXPIRED: 'TLS certificate has expired',
        DEPTH_ZERO_SELF_SIGNED_CERT: 'TLS certificate is self-signed',
        UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'TLS certificate cannot be verified',
      };
      return `${known[code] ?? 'request failed'} (${code})`;
    }
    return shorten(err.message || err.name);
  }
  return 'request failed';
}

/** Reads a claim by exact name first (names may contain dots, e.g. URLs), then as a dotted path. */
function claimAt(payload: JWTPayload, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  let current: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof current !== 'object' || current === null || Array.isArray(current) || !Object.hasOwn(current, part)) {
      return undefined;
    }
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** One trusted issuer: its config and its (lazily discovered, then cached) key set. */
class TrustedIssuer {
  #keys: JWTVerifyGetKey | undefined;
  #pending: Promise<JWTVerifyGetKey> | undefined;

  constructor(
    readonly config: OidcIssuerConfig,
    private readonly timeoutMs: number,
  ) {}

  /** The key resolver for jwtVerify. Concurrent first calls share one discovery; failures are retried next time. */
  keys(): Promise<JWTVerifyGetKey> {
    if (this.#keys) return Promise.resolve(this.#keys);
    this.#pending ??= this.#load().then(
      (keys) => {
        this.#keys = keys;
        this.#pending = undefined;
        return keys;
      },
      (err: unknown) => {
        this.#pending = undefined;
        throw err;
      },
    );
    return this.#pending;
  }

  async #load(): Promise<JWTVerifyGetKey> {
    const jwksUri = this.config.jwksUri ?? (await this.#discoverJwksUri());
    const remote = createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: this.timeoutMs });
    const issuer = this.config.issuer;
    const timeoutMs = this.timeoutMs;
    return async (header, token) => {
      try {
        return await remote(header, token);
      } catch (err) {
        // These concern the token (its kid or alg), not the provider.
        if (
          err instanceof errors.JWKSNoMatchingKey ||
          err instanceof errors.JWKSMultipleMatchingKeys ||
          err instanceof errors.JOSENotSupported
        ) {
          throw err;
        }
        const reason =
          err instanceof errors.JWKSInvalid
            ? `the key set at ${jwksUri} is not a valid JWKS`
            : `fetching the key set ${jwksUri} failed: ${describeFetchFailure(err, timeoutMs)}`;
        throw new ProviderUnavailableError(issuer, reason, { cause: err });
      }
    };
  }

  async #discoverJwksUri(): Promise<string> {
    const issuer = this.config.issuer;
    const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    let response: Response;
    try {
      response = await fetch(url, {
        headers: { accept: 'application/json' },
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new ProviderUnavailableError(issuer, `discovery at ${url} failed: ${describeFetchFailure(err, this.timeoutMs)}`, {
        cause: err,
      });
    }
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      throw new ProviderUnavailableError(issuer, `discovery at ${url} answered HTTP ${response.status}`);
    }
    let document: unknown;
    try {
      document = await response.json();
    } catch (err) {
      throw new ProviderUnavailableError(issuer, `the discovery document at ${url} is not valid JSON`, { cause: err });
    }
    if (typeof document !== 'object' || document === null) {
      throw new ProviderUnavailableError(issuer, `the discovery document at ${url} is not a JSON object`);
    }
    const { issuer: named, jwks_uri: jwksUri } = document as { issuer?: unknown; jwks_uri?: unknown };
    if (named !== issuer) {
      throw new ProviderUnavailableError(
        issuer,
        `the discovery document at ${url} names issuer ${typeof named === 'string' ? quoted(named) : '(none)'}, expected "${issuer}"`,
      );
    }
    if (typeof jwksUri !== 'string' || !URL.canParse(jwksUri) || !/^https?:$/.test(new URL(jwksUri).protocol)) {
      throw new ProviderUnavailableError(issuer, `the discovery document at ${url} has no usable http(s) jwks_uri`);
    }
    return jwksUri;
  }
}

/**
 * Verifies JWTs from one or more trusted OIDC issuers. The issuer's config is picked by the
 * token's (not yet verified) `iss`; the signature, issuer, audience, algorithm and times are
 * then verified against that issuer's published keys. Tokens must carry `exp`.
 */
export class OidcAuthenticator implements Authenticator, SecretIdentifier {
  readonly #issuers = new Map<string, TrustedIssuer>();
  readonly #logger: OperationalLogger;
  readonly #now: () => number;

  /** Takes parsed `identities.oidc` entries, or entries in config form (defaults are applied). */
  constructor(issuers: readonly OidcIssuerConfigInput[], options: OidcAuthenticatorOptions = {}) {
    const timeoutMs = options.fetchTimeoutMs ?? 5000;
    for (const [index, raw] of issuers.entries()) {
      const config = parseEntry(oidcIssuerSchema, raw, `oidc[${index}]`);
      if (this.#issuers.has(config.issuer)) throw new Error(`OIDC issuer ${config.issuer} is configured twice`);
      this.#issuers.set(config.issuer, new TrustedIssuer(config, timeoutMs));
    }
    this.#logger = options.logger ?? consoleLogger;
    this.#now = options.now ?? Date.now;
  }

  /** The configured issuer URLs. */
  get issuers(): readonly string[] {
    return [...this.#issuers.keys()];
  }

  async authenticate(credentials: Credentials): Promise<Identity> {
    return this.#verify(credentials.secret, credentials.username);
  }

  /** Verifies a JWT presented alone: the identity is the subject in the configured claim. */
  async identify(secret: string, _sourceAddress: string): Promise<Identity> {
    return this.#verify(secret, undefined);
  }

  /** Verifies a token; when `username` is given, the token's subject must equal it. */
  async #verify(token: string, username: string | undefined): Promise<Identity> {
    let unverified: JWTPayload;
    try {
      unverified = decodeJwt(token);
    } catch {
      throw clientErrors.authFailed('the token is not a valid JWT');
    }
    if (typeof unverified.iss !== 'string') throw clientErrors.authFailed('the token has no issuer (iss claim)');
    const trusted = this.#issuers.get(unverified.iss);
    if (!trusted) {
      throw clientErrors.authFailed('token issuer is not trusted', {
        detail: `the token names issuer ${quoted(unverified.iss)}`,
      });
    }
    const config = trusted.config;

    let payload: JWTPayload;
    try {
      const keys = await trusted.keys();
      ({ payload } = await jwtVerify(token, keys, {
        issuer: config.issuer,
        audience: config.audience,
        algorithms: [...config.algorithms],
        clockTolerance: config.clockToleranceSeconds,
        requiredClaims: ['exp'],
        currentDate: new Date(this.#now()),
      }));
    } catch (err) {
      throw this.#refusal(err, token);
    }

    const subject = claimAt(payload, config.usernameClaim);
    if (typeof subject !== 'string' || subject === '') {
      throw clientErrors.authFailed(
        username === undefined
          ? `the token has no "${config.usernameClaim}" claim to identify its holder by`
          : `the token has no "${config.usernameClaim}" claim to match the user name against`,
      );
    }
    if (username !== undefined && subject !== username) {
      throw clientErrors.authFailed(`the token does not belong to user ${quoted(username)}`, {
        hint: `connect with the user name in the token's "${config.usernameClaim}" claim`,
      });
    }

    const groupsValue = claimAt(payload, config.groupsClaim);
    let groups: readonly string[];
    if (groupsValue === undefined || groupsValue === null) groups = [];
    else if (typeof groupsValue === 'string') groups = [groupsValue];
    else if (Array.isArray(groupsValue) && groupsValue.every((g): g is string => typeof g === 'string')) {
      groups = [...groupsValue];
    } else {
      throw clientErrors.authFailed(`the token's "${config.groupsClaim}" claim must be a string or a list of strings`);
    }

    let kind: IdentityKind = config.kind;
    if (config.kindClaim !== undefined) {
      const value = claimAt(payload, config.kindClaim);
      if (value !== undefined) {
        if (typeof value !== 'string' || !KINDS.includes(value)) {
          throw clientErrors.authFailed(`the token's "${config.kindClaim}" claim must be one of ${KINDS.join(', ')}`);
        }
        kind = value as IdentityKind;
      }
    }

    const claims: Record<string, unknown> = {};
    for (const name of KEPT_CLAIMS) if (payload[name] !== undefined) claims[name] = payload[name];
    claims[config.usernameClaim] = subject;
    if (groupsValue !== undefined) claims[config.groupsClaim] = groups;
    if (config.kindClaim !== undefined) claims[config.kindClaim] = kind;

    return {
      subject,
      kind,
      groups: Object.freeze(groups),
      method: 'oidc',
      issuer: config.issuer,
      ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}),
      claims: Object.freeze(claims),
    };
  }

  /** Turns a verification failure into the client-facing refusal, logging provider problems. */
  #refusal(err: unknown, token: string): unknown {
    if (err instanceof ProviderUnavailableError) {
      this.#logger.error(
        { issuer: err.issuer, reason: err.reason, err: err.cause ?? err },
        'identity provider unavailable: OIDC logins for this issuer are refused',
      );
      return clientErrors.authFailed(err.message, { cause: err });
    }
    if (err instanceof errors.JWTExpired) return clientErrors.authFailed('the token has expired');
    if (err instanceof errors.JWTClaimValidationFailed) {
      switch (err.claim) {
        case 'aud':
          return clientErrors.authFailed('the token is not meant for this gateway (audience)');
        case 'iss':
          return clientErrors.authFailed('token issuer is not trusted');
        case 'nbf':
          return clientErrors.authFailed('the token is not valid yet (nbf)');
        case 'iat':
          return clientErrors.authFailed('the token was issued in the future (iat)');
        case 'exp':
          return clientErrors.authFailed(
            err.reason === 'missing' ? 'the token has no expiry (exp claim); this gateway requires one' : 'the token has an invalid exp claim',
          );
        default:
          return clientErrors.authFailed(`the token's ${quoted(err.claim)} claim is not valid`);
      }
    }
    if (err instanceof errors.JWSSignatureVerificationFailed) {
      return clientErrors.authFailed('the token signature is not valid');
    }
    if (err instanceof errors.JWKSNoMatchingKey) {
      return clientErrors.authFailed('the token signature is not valid', {
        detail: "none of the issuer's published keys matches the token's key id and algorithm",
      });
    }
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      return clientErrors.authFailed('the token signature is not valid', {
        detail: 'the token names no key id (kid) and the issuer publishes several keys that could match',
      });
    }
    if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
      let alg = '(unknown)';
      try {
        const header = decodeProtectedHeader(token);
        if (typeof header.alg === 'string') alg = quoted(header.alg);
      } catch {
        // keep '(unknown)'
      }
      return clientErrors.authFailed(`the token is signed with algorithm ${alg}, which this gateway does not accept from this issuer`);
    }
    if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) {
      return clientErrors.authFailed('the token is not a valid JWT');
    }
    return err;
  }
}

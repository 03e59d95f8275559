import { clientErrors } from '../errors.js';
import type { IdentitiesConfig } from './config.js';
import { looksLikeJwt } from './jwt-shape.js';
import { OidcAuthenticator, type OidcAuthenticatorOptions } from './oidc-authenticator.js';
import { TokenAuthenticator } from './token-authenticator.js';
import type { Authenticator, Credentials, Identity, SecretIdentifier } from './types.js';

export interface CompositeAuthenticatorParts {
  /** Verifies static tokens; when absent every non-JWT secret is an unknown token. */
  readonly tokens?: Authenticator;
  /** Verifies JWTs; when absent JWTs are refused. */
  readonly oidc?: Authenticator;
}

/**
 * Routes a presented secret: anything shaped like a JWT goes to OIDC verification, anything
 * else to the static tokens.
 */
export class CompositeAuthenticator implements Authenticator, SecretIdentifier {
  readonly #token: Authenticator | undefined;
  readonly #oidc: Authenticator | undefined;

  constructor(parts: CompositeAuthenticatorParts) {
    this.#token = parts.tokens;
    this.#oidc = parts.oidc;
  }

  async authenticate(credentials: Credentials): Promise<Identity> {
    if (credentials.secret === '') throw clientErrors.authFailed('no token was presented as the password');
    if (looksLikeJwt(credentials.secret)) {
      if (!this.#oidc) throw clientErrors.authFailed('OIDC tokens are not accepted by this gateway');
      return this.#oidc.authenticate(credentials);
    }
    if (!this.#token) throw clientErrors.authFailed('unknown token');
    return this.#token.authenticate(credentials);
  }

  /**
   * Verifies a secret presented without a user name, routed the same way. A part that cannot
   * verify bare secrets refuses them like a missing part.
   */
  async identify(secret: string, sourceAddress: string): Promise<Identity> {
    if (secret === '') throw clientErrors.authFailed('no token was presented');
    if (looksLikeJwt(secret)) {
      if (!this.#oidc?.identify) throw clientErrors.authFailed('OIDC tokens are not accepted by this gateway');
      return this.#oidc.identify(secret, sourceAddress);
    }
    if (!this.#token?.identify) throw clientErrors.authFailed('unknown token');
    return this.#token.identify(secret, sourceAddress);
  }
}

/** Builds the gateway's authenticator from a parsed `identities` config section. */
export function createIdentityAuthenticator(
  config: Pick<IdentitiesConfig, 'tokens' | 'oidc'>,
  options: OidcAuthenticatorOptions = {},
): CompositeAuthenticator {
  return new CompositeAuthenticator({
    ...(config.tokens.length > 0 ? { tokens: new TokenAuthenticator(config.tokens, { now: options.now }) } : {}),
    ...(config.oidc.length > 0 ? { oidc: new OidcAuthenticator(config.oidc, options) } : {}),
  });
}

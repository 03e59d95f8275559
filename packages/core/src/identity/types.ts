export const IdentityKind = { Human: 'human', Agent: 'agent', Service: 'service' } as const;
export type IdentityKind = (typeof IdentityKind)[keyof typeof IdentityKind];

/** A verified caller. Produced only by an Authenticator; never built from client input directly. */
export interface Identity {
  /** Stable subject: the token's configured subject, or the JWT claim named by `usernameClaim`. */
  readonly subject: string;
  readonly kind: IdentityKind;
  readonly groups: readonly string[];
  /** How it was verified. */
  readonly method: 'token' | 'oidc';
  /** For OIDC: the issuer that signed the token. */
  readonly issuer?: string;
  /** Epoch milliseconds after which the credential is no longer valid, if known. */
  readonly expiresAt?: number;
  /** Selected, non-secret claims (OIDC), kept for policy and lineage. */
  readonly claims?: Readonly<Record<string, unknown>>;
}

/** What a client presented at login. `secret` is never logged nor audited. */
export interface Credentials {
  /** The user name the client sent (for PostgreSQL, the startup `user`). */
  readonly username: string;
  /** The password the client sent: a service token or a JWT. */
  readonly secret: string;
  /** The client's address, for rate limiting and audit. */
  readonly sourceAddress: string;
}

export interface Authenticator {
  /**
   * Verifies credentials. Resolves to an Identity, or rejects with a ClientFacingError of kind
   * `auth_failed` whose message says what was wrong without revealing any secret.
   */
  authenticate(credentials: Credentials): Promise<Identity>;
  /**
   * Verifies a secret presented without a user name (a bearer token on the admin API): the
   * identity is the one the credential itself names. Same checks and refusals as
   * `authenticate`, except that there is no user name to match.
   */
  identify?(secret: string, sourceAddress: string): Promise<Identity>;
}

/** An authenticator that can also verify a bare secret. */
export interface SecretIdentifier {
  identify(secret: string, sourceAddress: string): Promise<Identity>;
}

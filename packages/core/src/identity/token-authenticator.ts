import { createHash, timingSafeEqual } from 'node:crypto';
import { clientErrors } from '../errors.js';
import { parseEntry, tokenEntrySchema, type TokenConfigInput } from './config.js';
import { quoted } from './messages.js';
import type { Authenticator, Credentials, Identity, IdentityKind, SecretIdentifier } from './types.js';

interface StoredToken {
  readonly digest: Buffer;
  readonly subject: string;
  readonly kind: IdentityKind;
  readonly groups: readonly string[];
  readonly expiresAt: number | undefined;
}

export interface TokenAuthenticatorOptions {
  /** Current time in epoch milliseconds; defaults to Date.now. */
  readonly now?: () => number;
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Verifies static tokens from the config. Only SHA-256 digests are kept in memory: plain
 * tokens are hashed here and then dropped. A presented secret is looked up by its digest.
 */
export class TokenAuthenticator implements Authenticator, SecretIdentifier {
  readonly #byDigest = new Map<string, StoredToken>();
  readonly #now: () => number;

  /** Takes parsed `identities.tokens` entries, or entries in config form (defaults are applied). */
  constructor(tokens: readonly TokenConfigInput[], options: TokenAuthenticatorOptions = {}) {
    this.#now = options.now ?? Date.now;
    tokens.forEach((raw, index) => {
      const entry = parseEntry(tokenEntrySchema, raw, `tokens[${index}]`);
      const digest =
        entry.tokenSha256 !== undefined
          ? Buffer.from(entry.tokenSha256, 'hex')
          : entry.token !== undefined
            ? sha256(entry.token)
            : undefined;
      if (digest === undefined || digest.length !== 32) {
        throw new Error(`tokens[${index}] (${entry.subject}) needs exactly one of token or tokenSha256`);
      }
      const key = digest.toString('hex');
      const existing = this.#byDigest.get(key);
      if (existing) {
        throw new Error(`tokens[${index}] (${entry.subject}) has the same secret as the token of ${existing.subject}`);
      }
      this.#byDigest.set(key, {
        digest,
        subject: entry.subject,
        kind: entry.kind,
        groups: Object.freeze([...entry.groups]),
        expiresAt: entry.expiresAt?.getTime(),
      });
    });
  }

  /** Number of configured tokens. */
  get size(): number {
    return this.#byDigest.size;
  }

  async authenticate(credentials: Credentials): Promise<Identity> {
    const stored = this.#find(credentials.secret);
    if (credentials.username !== stored.subject) {
      throw clientErrors.authFailed(`the token does not belong to user ${quoted(credentials.username)}`, {
        hint: 'connect with the user name the token was issued to',
      });
    }
    return this.#identityOf(stored);
  }

  /** Verifies a token presented alone: the identity is the subject it was issued to. */
  async identify(secret: string, _sourceAddress: string): Promise<Identity> {
    return this.#identityOf(this.#find(secret));
  }

  /** The configured token whose digest matches, or the `unknown token` refusal. */
  #find(secret: string): StoredToken {
    const presented = sha256(secret);
    const stored = this.#byDigest.get(presented.toString('hex'));
    if (!stored || !timingSafeEqual(stored.digest, presented)) {
      throw clientErrors.authFailed('unknown token');
    }
    return stored;
  }

  /** The identity of a matched token, or the refusal when it has expired. */
  #identityOf(stored: StoredToken): Identity {
    if (stored.expiresAt !== undefined && this.#now() >= stored.expiresAt) {
      throw clientErrors.authFailed(`the token expired at ${new Date(stored.expiresAt).toISOString()}`);
    }
    return {
      subject: stored.subject,
      kind: stored.kind,
      groups: stored.groups,
      method: 'token',
      ...(stored.expiresAt !== undefined ? { expiresAt: stored.expiresAt } : {}),
    };
  }
}

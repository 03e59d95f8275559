import { describe, expect, it } from 'vitest';
import { identitiesSchema } from './config.js';

const SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

/** Parses and returns the issues as "path: message" lines. */
function problems(input: unknown): string[] {
  const result = identitiesSchema.safeParse(input);
  if (result.success) return [];
  return result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

describe('identitiesSchema', () => {
  it('fills in every default', () => {
    const config = identitiesSchema.parse({
      tokens: [{ subject: 'svc', kind: 'service', tokenSha256: SHA }],
      oidc: [{ issuer: 'https://issuer.example', audience: 'sluice' }],
    });
    expect(config).toEqual({
      tokens: [{ subject: 'svc', kind: 'service', groups: [], tokenSha256: SHA }],
      oidc: [
        {
          issuer: 'https://issuer.example',
          audience: 'sluice',
          groupsClaim: 'groups',
          usernameClaim: 'sub',
          kind: 'human',
          algorithms: ['RS256', 'ES256', 'PS256', 'EdDSA'],
          clockToleranceSeconds: 30,
        },
      ],
      failedLogins: { maxAttempts: 10, windowSeconds: 60, lockoutSeconds: 60 },
    });
    expect(identitiesSchema.parse({})).toEqual({
      tokens: [],
      oidc: [],
      failedLogins: { maxAttempts: 10, windowSeconds: 60, lockoutSeconds: 60 },
    });
  });

  it('accepts the documented example', () => {
    const config = identitiesSchema.parse({
      tokens: [
        {
          subject: 'alice@example.com',
          kind: 'human',
          groups: ['analysts'],
          token: 'plain secret',
          expiresAt: '2027-01-01T00:00:00Z',
        },
      ],
      oidc: [
        {
          issuer: 'https://issuer.example',
          audience: ['sluice', 'other'],
          jwksUri: 'https://issuer.example/jwks.json',
          groupsClaim: 'realm_access.roles',
          usernameClaim: 'email',
          kindClaim: 'kind',
          algorithms: ['ES256'],
          clockToleranceSeconds: 0,
        },
      ],
      failedLogins: { maxAttempts: 3 },
    });
    expect(config.tokens[0]?.expiresAt).toEqual(new Date('2027-01-01T00:00:00Z'));
    expect(config.failedLogins).toEqual({ maxAttempts: 3, windowSeconds: 60, lockoutSeconds: 60 });
  });

  it('accepts expiresAt as a Date or a plain date, and normalises the digest to lower case', () => {
    const config = identitiesSchema.parse({
      tokens: [
        { subject: 'a', kind: 'agent', tokenSha256: SHA.toUpperCase(), expiresAt: new Date('2027-01-01T00:00:00Z') },
        { subject: 'b', kind: 'agent', token: 'another', expiresAt: '2027-06-30' },
      ],
    });
    expect(config.tokens[0]?.tokenSha256).toBe(SHA);
    expect(config.tokens[1]?.expiresAt?.toISOString()).toBe('2027-06-30T00:00:00.000Z');
  });

  it('requires exactly one of token or tokenSha256', () => {
    expect(problems({ tokens: [{ subject: 'a', kind: 'human' }] })).toEqual([
      'tokens.0: give exactly one of token or tokenSha256',
    ]);
    expect(problems({ tokens: [{ subject: 'a', kind: 'human', token: 'x', tokenSha256: SHA }] })).toEqual([
      'tokens.0: give exactly one of token or tokenSha256',
    ]);
  });

  it('names unknown keys and lists the allowed ones', () => {
    expect(problems({ tokens: [{ subject: 'a', kind: 'human', token: 'x', group: ['g'] }] })).toEqual([
      'tokens.0: unknown key "group" in a tokens entry; allowed keys: subject, kind, groups, token, tokenSha256, expiresAt',
    ]);
    expect(problems({ oidc: [{ issuer: 'https://i.example', audience: 'a', jwks_uri: 'https://i.example/k' }] })[0]).toMatch(
      /^oidc\.0: unknown key "jwks_uri" in an oidc entry; allowed keys: .*jwksUri/,
    );
    expect(problems({ failedLogins: { maxAttempts: 1, lockout: 5 } })[0]).toMatch(/^failedLogins: unknown key "lockout"/);
    expect(problems({ token: [] })[0]).toMatch(/^: unknown key "token" in identities; allowed keys: tokens, oidc, failedLogins/);
  });

  it('says what each bad value should be, naming the key', () => {
    expect(problems({ tokens: [{ kind: 'robot', token: 'x' }] })).toEqual([
      'tokens.0.subject: subject is required (the identity this token stands for, e.g. alice@example.com)',
      'tokens.0.kind: kind must be one of human, agent, service',
    ]);
    expect(problems({ tokens: [{ subject: 'a', kind: 'human', tokenSha256: 'abc' }] })).toEqual([
      'tokens.0.tokenSha256: tokenSha256 must be the SHA-256 of the token as 64 hexadecimal characters',
    ]);
    expect(problems({ tokens: [{ subject: 'a', kind: 'human', token: '' }] })).toEqual([
      'tokens.0.token: token is empty; if it comes from an environment variable, check that the variable is set',
    ]);
    expect(problems({ tokens: [{ subject: 'a', kind: 'human', token: 'x', expiresAt: 'next year' }] })[0]).toMatch(
      /^tokens\.0\.expiresAt: expiresAt must be an ISO 8601 date-time/,
    );
    expect(problems({ oidc: [{ issuer: 'ftp://x.example', audience: [] }] })).toEqual([
      'oidc.0.issuer: issuer must be an http or https URL',
      'oidc.0.audience: audience must be a non-empty string or a non-empty list of non-empty strings',
    ]);
    expect(problems({ oidc: [{ audience: 'a' }] })).toEqual(['oidc.0.issuer: issuer is required (an http or https URL)']);
    expect(problems({ oidc: [{ issuer: 'https://i.example', audience: 'a', algorithms: ['HS256'] }] })[0]).toMatch(
      /^oidc\.0\.algorithms\.0: each algorithm must be one of RS256, .* \(symmetric algorithms are not accepted\)$/,
    );
    expect(problems({ failedLogins: { maxAttempts: 0, windowSeconds: 1.5 } })).toEqual([
      'failedLogins.maxAttempts: maxAttempts must be at least 1',
      'failedLogins.windowSeconds: windowSeconds must be a positive whole number',
    ]);
  });

  it('refuses duplicate secrets and duplicate issuers without echoing any secret', () => {
    const found = problems({
      tokens: [
        { subject: 'a', kind: 'human', token: 'test' },
        { subject: 'b', kind: 'human', tokenSha256: SHA },
      ],
      oidc: [
        { issuer: 'https://i.example', audience: 'a' },
        { issuer: 'https://i.example', audience: 'b' },
      ],
    });
    expect(found).toEqual([
      'tokens.1: this entry has the same secret as tokens[0]; every token must be unique',
      'oidc.1.issuer: issuer https://i.example is already configured in oidc[0]; list each issuer once',
    ]);
  });

  it('refuses a plain token that would be routed to OIDC verification', () => {
    const jwtShaped = `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.eyJzdWIiOiJ4In0.c2ln`;
    const found = problems({ tokens: [{ subject: 'a', kind: 'human', token: jwtShaped }] });
    expect(found).toEqual([
      'tokens.0.token: token has the shape of a JWT, so it would be verified as an OIDC token; choose a different secret',
    ]);
  });

  it('never repeats a token value in its messages', () => {
    const secret = 'super-secret-value-123';
    const result = identitiesSchema.safeParse({
      tokens: [{ subject: 'a', kind: 'wizard', token: secret, tokenSha256: SHA, extra: secret }],
    });
    expect(result.success).toBe(false);
    if (!result.success) {
      expect(result.error.message).not.toContain(secret);
      expect(JSON.stringify(result.error.issues)).not.toContain(secret);
    }
  });
});

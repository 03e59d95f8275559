import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRefusal } from '../test-support/refusal.js';
import { startOidcIssuer, type OidcIssuer } from '../../../testkit/src/oidc-issuer.js';
import { oidcIssuerSchema, type OidcIssuerConfig } from './config.js';
import { OidcAuthenticator, type OperationalLogger } from './oidc-authenticator.js';

// A pino Logger must be usable as the operational logger.
const _acceptsPino = (logger: Logger): OperationalLogger => logger;
void _acceptsPino;

const creds = (username: string, secret: string) => ({ username, secret, sourceAddress: '192.0.2.7' });

const refusal = (promise: Promise<unknown>, secret: string) => expectRefusal(promise, secret, 16);

class RecordingLogger implements OperationalLogger {
  readonly entries: { obj: object; msg: string | undefined }[] = [];
  error(obj: object, msg?: string): void {
    this.entries.push({ obj, msg });
  }
}

function issuerConfig(issuer: OidcIssuer, overrides: Record<string, unknown> = {}): OidcIssuerConfig {
  return oidcIssuerSchema.parse({ issuer: issuer.issuer, audience: issuer.audience, ...overrides });
}

describe('OidcAuthenticator', () => {
  let rs: OidcIssuer;
  let es: OidcIssuer;
  let other: OidcIssuer;

  beforeAll(async () => {
    [rs, es, other] = await Promise.all([
      startOidcIssuer(),
      startOidcIssuer({ alg: 'ES256', audience: 'warehouse' }),
      startOidcIssuer(),
    ]);
  });
  afterAll(async () => {
    await Promise.all([rs.close(), es.close(), other.close()]);
  });

  it('accepts a valid token, discovering the keys once and caching them', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs)]);
    const token = await rs.sign({ sub: 'alice', email: 'alice@example.com', groups: ['analysts', 'oncall'], nonce: 'n-1' });
    const before = rs.requestsByPath;
    const identity = await auth.authenticate(creds('alice', token));
    expect(identity).toMatchObject({
      subject: 'alice',
      kind: 'human',
      groups: ['analysts', 'oncall'],
      method: 'oidc',
      issuer: rs.issuer,
    });
    expect(identity.expiresAt).toBeGreaterThan(Date.now());
    expect(identity.expiresAt! % 1000).toBe(0);
    expect(Object.keys(identity.claims ?? {}).sort()).toEqual(['aud', 'email', 'exp', 'groups', 'iat', 'iss', 'sub']);

    await auth.authenticate(creds('alice', await rs.sign({ sub: 'alice' })));
    const after = rs.requestsByPath;
    const delta = (path: string) => (after[path] ?? 0) - (before[path] ?? 0);
    expect(delta('/.well-known/openid-configuration')).toBe(1);
    expect(delta('/jwks.json')).toBe(1);
  });

  it('uses a configured jwksUri without discovery, with ES256 and a list of audiences', async () => {
    const auth = new OidcAuthenticator([issuerConfig(es, { jwksUri: es.jwksUri, audience: ['other', 'warehouse'] })]);
    const identity = await auth.authenticate(creds('svc-1', await es.sign({ sub: 'svc-1' })));
    expect(identity.subject).toBe('svc-1');
    expect(identity.groups).toEqual([]);
    expect(es.requestsByPath['/.well-known/openid-configuration']).toBeUndefined();
  });

  it('routes by issuer among several', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs), issuerConfig(es)]);
    expect(auth.issuers).toEqual([rs.issuer, es.issuer]);
    expect((await auth.authenticate(creds('a', await rs.sign({ sub: 'a' })))).issuer).toBe(rs.issuer);
    expect((await auth.authenticate(creds('b', await es.sign({ sub: 'b' })))).issuer).toBe(es.issuer);
  });

  it('refuses an expired token, allowing the clock tolerance', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs, { clockToleranceSeconds: 30 })]);
    const expired = await rs.sign({ sub: 'alice' }, { expiresIn: -120 });
    expect(await refusal(auth.authenticate(creds('alice', expired)), expired)).toBe('authentication failed: the token has expired');
    const justExpired = await rs.sign({ sub: 'alice' }, { expiresIn: -5 });
    expect((await auth.authenticate(creds('alice', justExpired))).subject).toBe('alice');
  });

  it('refuses a token without exp', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs)]);
    const token = await rs.sign({ sub: 'alice' }, { expiresIn: null });
    expect(await refusal(auth.authenticate(creds('alice', token)), token)).toBe(
      'authentication failed: the token has no expiry (exp claim); this gateway requires one',
    );
  });

  it('refuses a token that is not valid yet', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs)]);
    const token = await rs.sign({ sub: 'alice' }, { notBefore: 600, expiresIn: 1200 });
    expect(await refusal(auth.authenticate(creds('alice', token)), token)).toBe(
      'authentication failed: the token is not valid yet (nbf)',
    );
  });

  it('refuses a token for another audience', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs)]);
    const token = await rs.sign({ sub: 'alice' }, { audience: 'some-other-api' });
    expect(await refusal(auth.authenticate(creds('alice', token)), token)).toBe(
      'authentication failed: the token is not meant for this gateway (audience)',
    );
  });

  it('refuses a token from an issuer that is not configured', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs)]);
    const fromOther = await other.sign({ sub: 'alice' }, { audience: rs.audience });
    expect(await refusal(auth.authenticate(creds('alice', fromOther)), fromOther)).toBe(
      'authentication failed: token issuer is not trusted',
    );
    const claimsEvil = await rs.sign({ sub: 'alice' }, { issuer: 'https://evil.example' });
    expect(await refusal(auth.authenticate(creds('alice', claimsEvil)), claimsEvil)).toBe(
      'authentication failed: token issuer is not trusted',
    );
    const noIss = await rs.sign({ sub: 'alice', iss: undefined });
    expect(await refusal(auth.authenticate(creds('alice', noIss)), noIss)).toBe(
      'authentication failed: the token has no issuer (iss claim)',
    );
  });

  it('refuses a token whose iss names a trusted issuer but that another issuer signed', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs)]);
    const forged = await other.sign({ sub: 'alice' }, { issuer: rs.issuer, audience: rs.audience });
    expect(await refusal(auth.authenticate(creds('alice', forged)), forged)).toBe(
      'authentication failed: the token signature is not valid',
    );
  });

  it('refuses a bad signature', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs)]);
    const token = await rs.sign({ sub: 'alice' }, { wrongKey: true });
    expect(await refusal(auth.authenticate(creds('alice', token)), token)).toBe(
      'authentication failed: the token signature is not valid',
    );
    const [header, payload] = (await rs.sign({ sub: 'alice' })).split('.');
    const tampered = `${header}.${payload}.${Buffer.from('not a signature').toString('base64url')}`;
    expect(await refusal(auth.authenticate(creds('alice', tampered)), tampered)).toBe(
      'authentication failed: the token signature is not valid',
    );
  });

  it('refuses algorithms the issuer is not configured for, including none', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs, { algorithms: ['ES256'] })]);
    const token = await rs.sign({ sub: 'alice' });
    expect(await refusal(auth.authenticate(creds('alice', token)), token)).toBe(
      'authentication failed: the token is signed with algorithm "RS256", which this gateway does not accept from this issuer',
    );
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const unsigned = `${b64({ alg: 'none' })}.${b64({ iss: rs.issuer, aud: rs.audience, sub: 'alice', exp: 9999999999 })}.`;
    expect(await refusal(new OidcAuthenticator([issuerConfig(rs)]).authenticate(creds('alice', unsigned)), unsigned)).toBe(
      'authentication failed: the token is signed with algorithm "none", which this gateway does not accept from this issuer',
    );
  });

  it('refuses something that is not a JWT', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs)]);
    const garbage = `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.bm90LWpzb24tYXQtYWxs.c2lnbmF0dXJl`;
    expect(await refusal(auth.authenticate(creds('alice', garbage)), garbage)).toBe(
      'authentication failed: the token is not a valid JWT',
    );
  });

  it('reads groups from a nested claim, a single string, or nothing', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs, { groupsClaim: 'realm_access.roles' })]);
    const nested = await rs.sign({ sub: 'alice', realm_access: { roles: ['admin', 'dba'] }, groups: ['ignored'] });
    const identity = await auth.authenticate(creds('alice', nested));
    expect(identity.groups).toEqual(['admin', 'dba']);
    expect(identity.claims?.['realm_access.roles']).toEqual(['admin', 'dba']);
    expect(identity.claims?.['groups']).toBeUndefined();

    const single = await rs.sign({ sub: 'alice', realm_access: { roles: 'dba' } });
    expect((await auth.authenticate(creds('alice', single))).groups).toEqual(['dba']);
    const none = await rs.sign({ sub: 'alice' });
    expect((await auth.authenticate(creds('alice', none))).groups).toEqual([]);
    const bad = await rs.sign({ sub: 'alice', realm_access: { roles: [1, 2] } });
    expect(await refusal(auth.authenticate(creds('alice', bad)), bad)).toBe(
      `authentication failed: the token's "realm_access.roles" claim must be a string or a list of strings`,
    );

    const urlClaim = new OidcAuthenticator([issuerConfig(rs, { groupsClaim: 'https://sluice.example/groups' })]);
    const namespaced = await rs.sign({ sub: 'alice', 'https://sluice.example/groups': ['x'] });
    expect((await urlClaim.authenticate(creds('alice', namespaced))).groups).toEqual(['x']);
  });

  it('requires the user name to equal the username claim', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs, { usernameClaim: 'email' })]);
    const token = await rs.sign({ sub: 'u-123', email: 'alice@example.com' });
    expect((await auth.authenticate(creds('alice@example.com', token))).subject).toBe('alice@example.com');
    expect(await refusal(auth.authenticate(creds('bob@example.com', token)), token)).toBe(
      'authentication failed: the token does not belong to user "bob@example.com"',
    );
    expect(await refusal(auth.authenticate(creds('u-123', token)), token)).toBe(
      'authentication failed: the token does not belong to user "u-123"',
    );
    const noEmail = await rs.sign({ sub: 'u-123' });
    expect(await refusal(auth.authenticate(creds('u-123', noEmail)), noEmail)).toBe(
      'authentication failed: the token has no "email" claim to match the user name against',
    );
  });

  describe('identify (a JWT presented without a user name)', () => {
    it('takes the subject from the configured claim, with groups, kind and claims as on login', async () => {
      const auth = new OidcAuthenticator([issuerConfig(rs, { usernameClaim: 'email' })]);
      const token = await rs.sign({ sub: 'u-123', email: 'alice@example.com', groups: ['approvers'] });
      const identity = await auth.identify(token, '192.0.2.7');
      expect(identity).toMatchObject({
        subject: 'alice@example.com',
        kind: 'human',
        groups: ['approvers'],
        method: 'oidc',
        issuer: rs.issuer,
      });
      expect(identity).toEqual(await auth.authenticate(creds('alice@example.com', token)));
    });

    it('verifies the token exactly as a login does', async () => {
      const auth = new OidcAuthenticator([issuerConfig(rs)]);
      const expired = await rs.sign({ sub: 'alice' }, { expiresIn: -120 });
      expect(await refusal(auth.identify(expired, '192.0.2.7'), expired)).toBe('authentication failed: the token has expired');
      const forged = await other.sign({ sub: 'alice' }, { issuer: rs.issuer, audience: rs.audience });
      expect(await refusal(auth.identify(forged, '192.0.2.7'), forged)).toBe('authentication failed: the token signature is not valid');
      const elsewhere = await rs.sign({ sub: 'alice' }, { audience: 'some-other-api' });
      expect(await refusal(auth.identify(elsewhere, '192.0.2.7'), elsewhere)).toBe(
        'authentication failed: the token is not meant for this gateway (audience)',
      );
      const untrusted = await other.sign({ sub: 'alice' }, { audience: rs.audience });
      expect(await refusal(auth.identify(untrusted, '192.0.2.7'), untrusted)).toBe('authentication failed: token issuer is not trusted');
    });

    it('refuses a token without the subject claim', async () => {
      const auth = new OidcAuthenticator([issuerConfig(rs, { usernameClaim: 'email' })]);
      const token = await rs.sign({ sub: 'u-123' });
      expect(await refusal(auth.identify(token, '192.0.2.7'), token)).toBe(
        'authentication failed: the token has no "email" claim to identify its holder by',
      );
    });
  });

  it('takes the kind from kindClaim when configured, else from kind', async () => {
    const auth = new OidcAuthenticator([issuerConfig(rs, { kind: 'service', kindClaim: 'sluice_kind' })]);
    const agent = await rs.sign({ sub: 'ci', sluice_kind: 'agent', job: 'nightly', run: 42 });
    const identity = await auth.authenticate(creds('ci', agent));
    expect(identity.kind).toBe('agent');
    expect(identity.claims).toMatchObject({ job: 'nightly', run: 42, sluice_kind: 'agent' });
    expect((await auth.authenticate(creds('ci', await rs.sign({ sub: 'ci' })))).kind).toBe('service');
    const bad = await rs.sign({ sub: 'ci', sluice_kind: 'root' });
    expect(await refusal(auth.authenticate(creds('ci', bad)), bad)).toBe(
      `authentication failed: the token's "sluice_kind" claim must be one of human, agent, service`,
    );
  });

  it('gives a clear refusal, and logs an operational error, when the issuer is down', async () => {
    const down = await startOidcIssuer();
    const token = await down.sign({ sub: 'alice' });
    await down.close();
    const logger = new RecordingLogger();
    const auth = new OidcAuthenticator([issuerConfig(down)], { logger });
    const message = await refusal(auth.authenticate(creds('alice', token)), token);
    expect(message).toBe(
      `authentication failed: cannot reach the identity provider ${down.issuer}: ` +
        `discovery at ${down.discoveryUri} failed: connection refused (ECONNREFUSED)`,
    );
    expect(logger.entries).toHaveLength(1);
    expect(logger.entries[0]?.obj).toMatchObject({ issuer: down.issuer });
    expect(logger.entries[0]?.msg).toMatch(/identity provider unavailable/);
    expect(JSON.stringify(logger.entries[0]?.obj)).not.toContain(token);

    // A failure is not cached: the next login tries again.
    await refusal(auth.authenticate(creds('alice', token)), token);
    expect(logger.entries).toHaveLength(2);
  });

  it('reports a JWKS that cannot be fetched', async () => {
    const logger = new RecordingLogger();
    const auth = new OidcAuthenticator([issuerConfig(rs, { jwksUri: `${rs.issuer}/missing.json` })], { logger });
    const token = await rs.sign({ sub: 'alice' });
    expect(await refusal(auth.authenticate(creds('alice', token)), token)).toMatch(
      new RegExp(`^authentication failed: cannot reach the identity provider ${rs.issuer}: fetching the key set .*/missing\\.json failed`),
    );
    expect(logger.entries).toHaveLength(1);
  });

  it('refuses a discovery document that names another issuer', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: 'https://someone-else.example', jwks_uri: rs.jwksUri }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const logger = new RecordingLogger();
      const auth = new OidcAuthenticator([oidcIssuerSchema.parse({ issuer, audience: rs.audience })], { logger });
      const token = await rs.sign({ sub: 'alice' }, { issuer });
      expect(await refusal(auth.authenticate(creds('alice', token)), token)).toContain(
        `names issuer "https://someone-else.example", expected "${issuer}"`,
      );
      expect(logger.entries).toHaveLength(1);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('takes entries in config form, applying the defaults, and rejects invalid ones', async () => {
    const auth = new OidcAuthenticator([{ issuer: rs.issuer, audience: rs.audience }]);
    const identity = await auth.authenticate(creds('alice', await rs.sign({ sub: 'alice', groups: ['g'] })));
    expect(identity).toMatchObject({ kind: 'human', groups: ['g'] });
    expect(() => new OidcAuthenticator([{ issuer: 'not a url', audience: 'x' }])).toThrow(
      'oidc[0] is not valid: issuer: issuer must be an http or https URL',
    );
    expect(() => new OidcAuthenticator([{ issuer: rs.issuer, audience: 'a' }, { issuer: rs.issuer, audience: 'b' }])).toThrow(
      `OIDC issuer ${rs.issuer} is configured twice`,
    );
  });
});

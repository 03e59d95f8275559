import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectRefusal } from '../test-support/refusal.js';
import { startOidcIssuer, type OidcIssuer } from '../../../testkit/src/oidc-issuer.js';
import { CompositeAuthenticator, createIdentityAuthenticator } from './composite-authenticator.js';
import { identitiesSchema } from './config.js';
import { looksLikeJwt } from './jwt-shape.js';
import type { Authenticator, Credentials, Identity } from './types.js';

const creds = (username: string, secret: string): Credentials => ({ username, secret, sourceAddress: '198.51.100.3' });

const refusalMessage = (promise: Promise<unknown>, secret: string) => expectRefusal(promise, secret, secret.length || 1);

/** Records which authenticator received the credentials. */
function recorder(name: string, calls: string[]): Authenticator {
  return {
    authenticate: async (c: Credentials): Promise<Identity> => {
      calls.push(name);
      return { subject: c.username, kind: 'human', groups: [], method: name === 'oidc' ? 'oidc' : 'token' };
    },
  };
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('looksLikeJwt', () => {
  it('recognises three base64url segments whose header has an alg', () => {
    expect(looksLikeJwt(`${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ sub: 'x' })}.c2ln`)).toBe(true);
    expect(looksLikeJwt(`${b64({ alg: 'none' })}.${b64({})}.`)).toBe(true);
    expect(looksLikeJwt(`${b64({ typ: 'JWT' })}.${b64({})}.c2ln`)).toBe(false);
    expect(looksLikeJwt(`${b64(['alg'])}.${b64({})}.c2ln`)).toBe(false);
    expect(looksLikeJwt('plain-service-token')).toBe(false);
    expect(looksLikeJwt('a.b.c')).toBe(false);
    expect(looksLikeJwt('first.second.third.fourth')).toBe(false);
    expect(looksLikeJwt(`${b64({ alg: 'RS256' })}.${b64({})}.c2ln=`)).toBe(false);
  });
});

describe('CompositeAuthenticator', () => {
  it('sends JWT-shaped secrets to OIDC and the rest to the tokens', async () => {
    const calls: string[] = [];
    const auth = new CompositeAuthenticator({ tokens: recorder('token', calls), oidc: recorder('oidc', calls) });
    await auth.authenticate(creds('u', `${b64({ alg: 'ES256' })}.${b64({ sub: 'u' })}.c2ln`));
    await auth.authenticate(creds('u', 'svc-token-0123456789'));
    await auth.authenticate(creds('u', 'looks.like.dots'));
    expect(calls).toEqual(['oidc', 'token', 'token']);
  });

  it('refuses an empty secret before routing', async () => {
    const calls: string[] = [];
    const auth = new CompositeAuthenticator({ tokens: recorder('token', calls), oidc: recorder('oidc', calls) });
    expect(await refusalMessage(auth.authenticate(creds('u', '')), '')).toBe(
      'authentication failed: no token was presented as the password',
    );
    expect(calls).toEqual([]);
  });

  it('refuses JWTs when no issuer is configured, and tokens when none are', async () => {
    const jwt = `${b64({ alg: 'RS256' })}.${b64({ sub: 'u' })}.c2lnbmF0dXJl`;
    const tokensOnly = new CompositeAuthenticator({ tokens: recorder('token', []) });
    expect(await refusalMessage(tokensOnly.authenticate(creds('u', jwt)), jwt)).toBe(
      'authentication failed: OIDC tokens are not accepted by this gateway',
    );
    const nothing = new CompositeAuthenticator({});
    expect(await refusalMessage(nothing.authenticate(creds('u', 'some-secret-value')), 'some-secret-value')).toBe(
      'authentication failed: unknown token',
    );
  });

  it('routes a bare secret the same way for identify, and refuses parts that cannot identify', async () => {
    const calls: string[] = [];
    const identifying = (name: 'token' | 'oidc'): Authenticator => ({
      ...recorder(name, calls),
      identify: async (): Promise<Identity> => {
        calls.push(`${name}:identify`);
        return { subject: 'someone', kind: 'human', groups: [], method: name };
      },
    });
    const jwt = `${b64({ alg: 'ES256' })}.${b64({ sub: 'u' })}.c2ln`;
    const auth = new CompositeAuthenticator({ tokens: identifying('token'), oidc: identifying('oidc') });
    await auth.identify(jwt, '198.51.100.3');
    await auth.identify('svc-token-0123456789', '198.51.100.3');
    expect(calls).toEqual(['oidc:identify', 'token:identify']);
    expect(await refusalMessage(auth.identify('', '198.51.100.3'), '')).toBe('authentication failed: no token was presented');

    const loginOnly = new CompositeAuthenticator({ tokens: recorder('token', calls), oidc: recorder('oidc', calls) });
    expect(await refusalMessage(loginOnly.identify('svc-token-0123456789', '198.51.100.3'), 'svc-token-0123456789')).toBe(
      'authentication failed: unknown token',
    );
    expect(await refusalMessage(loginOnly.identify(jwt, '198.51.100.3'), jwt)).toBe(
      'authentication failed: OIDC tokens are not accepted by this gateway',
    );
    expect(calls).toEqual(['oidc:identify', 'token:identify']);
  });

  describe('built from config', () => {
    let issuer: OidcIssuer;
    beforeAll(async () => {
      issuer = await startOidcIssuer({ audience: 'gw' });
    });
    afterAll(() => issuer.close());

    it('verifies both kinds of credential end to end', async () => {
      const config = identitiesSchema.parse({
        tokens: [{ subject: 'etl', kind: 'service', token: 'etl-secret-0123456789', groups: ['loaders'] }],
        oidc: [{ issuer: issuer.issuer, audience: 'gw' }],
      });
      const auth = createIdentityAuthenticator(config);
      expect(await auth.authenticate(creds('etl', 'etl-secret-0123456789'))).toMatchObject({
        subject: 'etl',
        method: 'token',
        groups: ['loaders'],
      });
      const jwt = await issuer.sign({ sub: 'alice', groups: 'analysts' });
      expect(await auth.authenticate(creds('alice', jwt))).toMatchObject({
        subject: 'alice',
        method: 'oidc',
        groups: ['analysts'],
      });
      expect(await refusalMessage(auth.authenticate(creds('bob', jwt)), jwt)).toBe(
        'authentication failed: the token does not belong to user "bob"',
      );
      expect(await refusalMessage(auth.authenticate(creds('etl', 'etl-secret-01234567890')), 'etl-secret-01234567890')).toBe(
        'authentication failed: unknown token',
      );

      expect(await auth.identify('etl-secret-0123456789', '198.51.100.3')).toMatchObject({ subject: 'etl', method: 'token' });
      expect(await auth.identify(jwt, '198.51.100.3')).toMatchObject({ subject: 'alice', method: 'oidc', groups: ['analysts'] });
      expect(await refusalMessage(auth.identify('etl-secret-01234567890', '198.51.100.3'), 'etl-secret-01234567890')).toBe(
        'authentication failed: unknown token',
      );
    });

    it('refuses OIDC tokens when only static tokens are configured', async () => {
      const auth = createIdentityAuthenticator(identitiesSchema.parse({ tokens: [{ subject: 'a', kind: 'human', token: 'tok-a' }] }));
      const jwt = await issuer.sign({ sub: 'a' });
      expect(await refusalMessage(auth.authenticate(creds('a', jwt)), jwt)).toBe(
        'authentication failed: OIDC tokens are not accepted by this gateway',
      );
    });
  });
});

import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcIssuer, type OidcIssuer } from './oidc-issuer.js';

describe('startOidcIssuer', () => {
  let issuer: OidcIssuer;
  beforeAll(async () => {
    issuer = await startOidcIssuer({ alg: 'ES256', audience: 'tests' });
  });
  afterAll(() => issuer.close());

  it('serves discovery and a JWKS over HTTP on 127.0.0.1', async () => {
    expect(issuer.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const before = issuer.requests;
    const discovery = (await (await fetch(issuer.discoveryUri)).json()) as { issuer: string; jwks_uri: string };
    expect(discovery.issuer).toBe(issuer.issuer);
    expect(discovery.jwks_uri).toBe(issuer.jwksUri);
    const jwks = (await (await fetch(issuer.jwksUri)).json()) as { keys: { kid: string; alg: string; d?: string }[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kid: issuer.kid, alg: 'ES256' });
    expect(jwks.keys[0]?.d).toBeUndefined();
    expect((await fetch(`${issuer.issuer}/nope`)).status).toBe(404);
    expect(issuer.requests - before).toBe(3);
    expect(issuer.requestsByPath['/jwks.json']).toBeGreaterThanOrEqual(1);
  });

  it('signs tokens that verify against its JWKS, with defaults and overrides', async () => {
    const keys = createRemoteJWKSet(new URL(issuer.jwksUri));
    const token = await issuer.sign({ sub: 'alice', groups: ['a'] });
    const { payload, protectedHeader } = await jwtVerify(token, keys, { issuer: issuer.issuer, audience: 'tests' });
    expect(protectedHeader).toMatchObject({ alg: 'ES256', kid: issuer.kid, typ: 'JWT' });
    expect(payload).toMatchObject({ sub: 'alice', groups: ['a'], iss: issuer.issuer, aud: 'tests' });
    expect(payload.exp! - payload.iat!).toBe(300);

    const custom = decodeJwt(await issuer.sign({ sub: 'b' }, { issuer: 'https://x.example', audience: ['p', 'q'], expiresIn: 60, notBefore: '1m' }));
    expect(custom).toMatchObject({ iss: 'https://x.example', aud: ['p', 'q'] });
    expect(custom.exp! - custom.iat!).toBe(60);
    expect(custom.nbf! - custom.iat!).toBe(60);
    expect(decodeJwt(await issuer.sign({ sub: 'c' }, { expiresIn: null })).exp).toBeUndefined();
    expect(decodeJwt(await issuer.sign({ sub: 'c' }, { expiresIn: '-1h' })).exp).toBeLessThan(Date.now() / 1000);
  });

  it('signs with an unpublished key when asked', async () => {
    const keys = createRemoteJWKSet(new URL(issuer.jwksUri));
    const token = await issuer.sign({ sub: 'alice' }, { wrongKey: true });
    expect(decodeProtectedHeader(token).kid).toBe(issuer.kid);
    await expect(jwtVerify(token, keys)).rejects.toBeInstanceOf(errors.JWSSignatureVerificationFailed);
  });

  it('supports RS256 and stops serving when closed', async () => {
    const rs = await startOidcIssuer();
    expect(rs.alg).toBe('RS256');
    expect(rs.audience).toBe('sluice');
    const keys = createRemoteJWKSet(new URL(rs.jwksUri));
    await jwtVerify(await rs.sign({ sub: 'x' }), keys, { audience: 'sluice' });
    await rs.close();
    await rs.close();
    await expect(fetch(rs.discoveryUri)).rejects.toThrow();
  });
});

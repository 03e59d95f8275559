import { constants, createHash, generateKeyPairSync, privateDecrypt } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  AuthClient,
  AuthPlugin,
  AuthRefusedError,
  CachingSha2,
  cachingSha2Scramble,
  clearPasswordResponse,
  encryptPasswordRsa,
  nativePasswordScramble,
  scrambleOf,
} from './auth.js';

/**
 * Expected values are computed here step by step with node:crypto, not through the module.
 * MariaDB (the server the live tests use) has no caching_sha2_password: that plugin is tested
 * only here, against these vectors and the server-side check the vectors must pass.
 */
const hash = (algorithm: string, ...parts: Buffer[]): Buffer => {
  const h = createHash(algorithm);
  for (const p of parts) h.update(p);
  return h.digest();
};
const nonce = Buffer.from('0102030405060708090a0b0c0d0e0f1011121314', 'hex');

describe('mysql_native_password', () => {
  it('is SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))', () => {
    const stage1 = hash('sha1', Buffer.from('pw'));
    const stage2 = hash('sha1', stage1);
    const mix = hash('sha1', nonce, stage2);
    const expected = Buffer.from(stage1.map((b, i) => b ^ mix[i]!));
    expect(nativePasswordScramble('pw', nonce)).toEqual(expected);
  });

  it('passes the check the server makes against its stored hash (PASSWORD(\'pw\') on MariaDB 10.11)', () => {
    // SELECT PASSWORD('pw') → '*D821809F681A40A6E379B50D0463EFAE20BDD122', i.e. SHA1(SHA1('pw')).
    const stored = Buffer.from('D821809F681A40A6E379B50D0463EFAE20BDD122', 'hex');
    const response = nativePasswordScramble('pw', nonce);
    const mix = hash('sha1', nonce, stored);
    const candidate = Buffer.from(response.map((b, i) => b ^ mix[i]!));
    expect(hash('sha1', candidate)).toEqual(stored);
  });

  it('answers an empty password with no bytes, and uses only the first 20 bytes of the data', () => {
    expect(nativePasswordScramble('', nonce)).toEqual(Buffer.alloc(0));
    expect(nativePasswordScramble('pw', Buffer.concat([nonce, Buffer.from([0])]))).toEqual(nativePasswordScramble('pw', nonce));
    expect(scrambleOf(Buffer.concat([nonce, Buffer.from([0])]))).toEqual(nonce);
    expect(scrambleOf(nonce)).toEqual(nonce);
  });
});

describe('caching_sha2_password', () => {
  it('fast path: SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble)', () => {
    const stage1 = hash('sha256', Buffer.from('sluice-pw'));
    const stage2 = hash('sha256', stage1);
    const mix = hash('sha256', stage2, nonce);
    const expected = Buffer.from(stage1.map((b, i) => b ^ mix[i]!));
    const got = cachingSha2Scramble('sluice-pw', nonce);
    expect(got).toEqual(expected);
    expect(got.length).toBe(32);
    expect(cachingSha2Scramble('', nonce)).toEqual(Buffer.alloc(0));
  });

  it('passes the server-side check for any password and scramble (property)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.uint8Array({ minLength: 20, maxLength: 20 }), (password, s) => {
        const scramble = Buffer.from(s);
        // The server caches SHA256(SHA256(password)); it recovers SHA256(password) and hashes it.
        const cached = hash('sha256', hash('sha256', Buffer.from(password)));
        const mix = hash('sha256', cached, scramble);
        const response = cachingSha2Scramble(password, scramble);
        const candidate = Buffer.from(response.map((b, i) => b ^ mix[i]!));
        expect(hash('sha256', candidate)).toEqual(cached);
      }),
    );
  });

  it('full path without TLS: RSA-OAEP(SHA-1) of (password + NUL) XOR the scramble', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' });
    const password = 'a password longer than the twenty-byte scramble';
    const encrypted = encryptPasswordRsa(password, nonce, pem);
    expect(encrypted.length).toBe(256);
    const plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, encrypted);
    const unmasked = Buffer.from(plain.map((b, i) => b ^ nonce[i % 20]!));
    expect(unmasked.toString()).toBe(`${password}\0`);
  });

  it('mysql_clear_password and the TLS full path send the password and a NUL', () => {
    expect(clearPasswordResponse('pw')).toEqual(Buffer.from('pw\0'));
    expect(clearPasswordResponse('')).toEqual(Buffer.from([0]));
  });
});

describe('AuthClient', () => {
  const base = { password: 'pw', secure: false, cleartextAllowed: false, allowPublicKeyRetrieval: false };
  const greetingData = Buffer.concat([nonce, Buffer.from([0])]);

  it('mysql_native_password answers once', () => {
    const a = new AuthClient(base);
    expect(a.respond(AuthPlugin.NATIVE_PASSWORD, greetingData)).toEqual(nativePasswordScramble('pw', nonce));
    expect(a.plugin).toBe('mysql_native_password');
    expect(() => a.moreData(Buffer.from([3]))).toThrow(AuthRefusedError);
  });

  it('caching_sha2_password fast authentication', () => {
    const a = new AuthClient(base);
    expect(a.respond(AuthPlugin.CACHING_SHA2_PASSWORD, greetingData)).toEqual(cachingSha2Scramble('pw', nonce));
    expect(a.moreData(Buffer.from([CachingSha2.FAST_AUTH_SUCCESS]))).toBeUndefined();
    expect(() => a.moreData(Buffer.from([CachingSha2.FAST_AUTH_SUCCESS]))).toThrow(AuthRefusedError);
  });

  it('caching_sha2_password full authentication over TLS sends the password in clear', () => {
    const a = new AuthClient({ ...base, secure: true });
    a.respond(AuthPlugin.CACHING_SHA2_PASSWORD, greetingData);
    expect(a.moreData(Buffer.from([CachingSha2.PERFORM_FULL_AUTH]))).toEqual(Buffer.from('pw\0'));
  });

  it('caching_sha2_password full authentication without TLS asks for the key, then encrypts', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const a = new AuthClient({ ...base, allowPublicKeyRetrieval: true });
    a.respond(AuthPlugin.CACHING_SHA2_PASSWORD, greetingData);
    expect(a.moreData(Buffer.from([CachingSha2.PERFORM_FULL_AUTH]))).toEqual(Buffer.from([CachingSha2.REQUEST_PUBLIC_KEY]));
    const encrypted = a.moreData(Buffer.from(publicKey.export({ type: 'spki', format: 'pem' })))!;
    const plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, encrypted);
    expect(Buffer.from(plain.map((b, i) => b ^ nonce[i % 20]!)).toString()).toBe('pw\0');
  });

  it('uses a configured server key without asking for it', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const a = new AuthClient({ ...base, serverPublicKey: publicKey.export({ type: 'spki', format: 'pem' }) });
    a.respond(AuthPlugin.CACHING_SHA2_PASSWORD, greetingData);
    const encrypted = a.moreData(Buffer.from([CachingSha2.PERFORM_FULL_AUTH]))!;
    const plain = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, encrypted);
    expect(Buffer.from(plain.map((b, i) => b ^ nonce[i % 20]!)).toString()).toBe('pw\0');
  });

  it('refuses full authentication without TLS when the key may not be retrieved, and a bad key', () => {
    const a = new AuthClient(base);
    a.respond(AuthPlugin.CACHING_SHA2_PASSWORD, greetingData);
    expect(() => a.moreData(Buffer.from([CachingSha2.PERFORM_FULL_AUTH]))).toThrow(AuthRefusedError);
    const b = new AuthClient({ ...base, allowPublicKeyRetrieval: true });
    b.respond(AuthPlugin.CACHING_SHA2_PASSWORD, greetingData);
    b.moreData(Buffer.from([CachingSha2.PERFORM_FULL_AUTH]));
    expect(() => b.moreData(Buffer.from('not a key'))).toThrow(AuthRefusedError);
  });

  it('mysql_clear_password only over TLS or where cleartext is allowed (loopback)', () => {
    expect(() => new AuthClient(base).respond(AuthPlugin.CLEAR_PASSWORD, Buffer.alloc(0))).toThrow(AuthRefusedError);
    expect(new AuthClient({ ...base, secure: true }).respond(AuthPlugin.CLEAR_PASSWORD, Buffer.alloc(0))).toEqual(Buffer.from('pw\0'));
    expect(new AuthClient({ ...base, cleartextAllowed: true }).respond(AuthPlugin.CLEAR_PASSWORD, Buffer.alloc(0))).toEqual(Buffer.from('pw\0'));
  });

  it('refuses plugins it does not speak', () => {
    expect(() => new AuthClient(base).respond('client_ed25519', nonce)).toThrow(AuthRefusedError);
    expect(() => new AuthClient(base).respond('mysql_old_password', Buffer.alloc(0))).toThrow(AuthRefusedError);
    expect(AuthClient.supports('dialog')).toBe(false);
    expect(AuthClient.supports('caching_sha2_password')).toBe(true);
  });
});

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { expectRefusal } from '../test-support/refusal.js';
import { identitiesSchema, tokenEntrySchema } from './config.js';
import { TokenAuthenticator } from './token-authenticator.js';

const PLAIN = 'correct-horse-battery-staple-42';
const SHA256_OF_TEST = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';

function authenticatorFor(now?: () => number): TokenAuthenticator {
  const config = identitiesSchema.parse({
    tokens: [
      { subject: 'alice@example.com', kind: 'human', groups: ['analysts'], token: PLAIN },
      { subject: 'etl-bot', kind: 'service', tokenSha256: SHA256_OF_TEST.toUpperCase() },
      { subject: 'old-agent', kind: 'agent', token: 'retired-agent-token-xyz', expiresAt: '2026-01-01T00:00:00Z' },
    ],
  });
  return new TokenAuthenticator(config.tokens, now ? { now } : {});
}

const creds = (username: string, secret: string) => ({ username, secret, sourceAddress: '192.0.2.1' });

const refusal = (promise: Promise<unknown>, secret: string) => expectRefusal(promise, secret);

describe('TokenAuthenticator', () => {
  it('accepts a plain token configured in the clear', async () => {
    const identity = await authenticatorFor().authenticate(creds('alice@example.com', PLAIN));
    expect(identity).toEqual({ subject: 'alice@example.com', kind: 'human', groups: ['analysts'], method: 'token' });
  });

  it('accepts a token configured by its SHA-256 (any hex case)', async () => {
    const identity = await authenticatorFor().authenticate(creds('etl-bot', 'test'));
    expect(identity).toMatchObject({ subject: 'etl-bot', kind: 'service', groups: [], method: 'token' });
    expect(createHash('sha256').update('test').digest('hex')).toBe(SHA256_OF_TEST);
  });

  it('refuses a token presented for another user', async () => {
    const message = await refusal(authenticatorFor().authenticate(creds('bob', PLAIN)), PLAIN);
    expect(message).toBe('authentication failed: the token does not belong to user "bob"');
    const odd = await refusal(authenticatorFor().authenticate(creds('bob\n"x"', PLAIN)), PLAIN);
    expect(odd).toBe('authentication failed: the token does not belong to user "bob\\n\\"x\\""');
    expect(await refusal(authenticatorFor().authenticate(creds('alice@example.com', 'test')), 'test')).toContain(
      'does not belong to user "alice@example.com"',
    );
  });

  it('refuses an unknown token', async () => {
    for (const secret of ['nope-not-a-real-token', PLAIN.slice(0, -1), `${PLAIN} `, 'TEST']) {
      expect(await refusal(authenticatorFor().authenticate(creds('alice@example.com', secret)), secret)).toBe(
        'authentication failed: unknown token',
      );
    }
  });

  it('refuses an expired token and says when it expired', async () => {
    const secret = 'retired-agent-token-xyz';
    const after = authenticatorFor(() => Date.parse('2026-01-01T00:00:00Z'));
    expect(await refusal(after.authenticate(creds('old-agent', secret)), secret)).toBe(
      'authentication failed: the token expired at 2026-01-01T00:00:00.000Z',
    );
    const before = authenticatorFor(() => Date.parse('2025-12-31T23:59:59Z'));
    expect(await before.authenticate(creds('old-agent', secret))).toEqual({
      subject: 'old-agent',
      kind: 'agent',
      groups: [],
      method: 'token',
      expiresAt: Date.parse('2026-01-01T00:00:00Z'),
    });
  });

  describe('identify (a token presented without a user name)', () => {
    it('finds the token by its hash and returns the identity it was issued to', async () => {
      expect(await authenticatorFor().identify(PLAIN, '192.0.2.1')).toEqual({
        subject: 'alice@example.com',
        kind: 'human',
        groups: ['analysts'],
        method: 'token',
      });
      expect(await authenticatorFor().identify('test', '192.0.2.1')).toMatchObject({ subject: 'etl-bot', kind: 'service' });
    });

    it('refuses an unknown token', async () => {
      for (const secret of ['nope-not-a-real-token', PLAIN.slice(0, -1), `${PLAIN} `, 'TEST', '']) {
        expect(await refusal(authenticatorFor().identify(secret, '192.0.2.1'), secret)).toBe('authentication failed: unknown token');
      }
    });

    it('applies the same expiry check as a login', async () => {
      const secret = 'retired-agent-token-xyz';
      const after = authenticatorFor(() => Date.parse('2026-01-01T00:00:00Z'));
      expect(await refusal(after.identify(secret, '192.0.2.1'), secret)).toBe(
        'authentication failed: the token expired at 2026-01-01T00:00:00.000Z',
      );
      const before = authenticatorFor(() => Date.parse('2025-12-31T23:59:59Z'));
      expect(await before.identify(secret, '192.0.2.1')).toMatchObject({
        subject: 'old-agent',
        expiresAt: Date.parse('2026-01-01T00:00:00Z'),
      });
    });
  });

  it('keeps no plain token in memory-visible state', () => {
    const auth = authenticatorFor();
    expect(auth.size).toBe(3);
    expect(JSON.stringify(auth)).not.toContain(PLAIN);
    expect(Object.keys(auth)).toEqual([]);
  });

  it('rejects duplicate secrets at construction', () => {
    const a = tokenEntrySchema.parse({ subject: 'a', kind: 'human', token: 'test' });
    const b = tokenEntrySchema.parse({ subject: 'b', kind: 'human', tokenSha256: SHA256_OF_TEST });
    expect(() => new TokenAuthenticator([a, b])).toThrow('tokens[1] (b) has the same secret as the token of a');
  });

  it('takes entries in config form and says which one is invalid', async () => {
    const auth = new TokenAuthenticator(
      [{ subject: 'bot', kind: 'agent', token: 'bot-token-0123456789', expiresAt: '2026-06-01T00:00:00Z' }],
      { now: () => Date.parse('2026-01-01T00:00:00Z') },
    );
    expect(await auth.authenticate(creds('bot', 'bot-token-0123456789'))).toEqual({
      subject: 'bot',
      kind: 'agent',
      groups: [],
      method: 'token',
      expiresAt: Date.parse('2026-06-01T00:00:00Z'),
    });
    const secret = 'leaky-secret-0123456789';
    let thrown: unknown;
    try {
      new TokenAuthenticator([{ subject: 'ok', kind: 'human', tokenSha256: SHA256_OF_TEST }, { subject: 'x', kind: 'robot' as 'human', token: secret }]);
    } catch (err) {
      thrown = err;
    }
    expect(String(thrown)).toBe('Error: tokens[1] is not valid: kind: kind must be one of human, agent, service');
    expect(String(thrown)).not.toContain(secret);
  });
});

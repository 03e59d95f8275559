import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DETECTOR_NAMES, findSensitive, maskDetected, type DetectorKind } from './detectors.js';

const ALL = new Set<DetectorKind>(DETECTOR_NAMES);
const key = Buffer.from('detector-test-key-0123');
const kinds = (text: string, enabled: ReadonlySet<DetectorKind> = ALL) => findSensitive(text, enabled).map((s) => [s.kind, text.slice(s.start, s.end)]);

describe('detectors', () => {
  it.each<[DetectorKind, string]>([
    ['email', 'mail jane.roe+tag@mail.example.org now'],
    ['payment-card', 'card 4111 1111 1111 1111 on file'],
    ['payment-card', 'card 5555555555554444'],
    ['us-ssn', 'ssn 219-09-9999.'],
    ['phone', 'call +44 20 7946 0958 today'],
    ['phone', 'call (415) 555-2671'],
    ['iban', 'pay to DE89 3704 0044 0532 0130 00 please'],
    ['jwt', 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sgnXa1B2c3'],
    ['private-key', 'k=-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJB\n-----END RSA PRIVATE KEY-----'],
    ['api-token', 'aws AKIAIOSFODNN7EXAMPLE'],
    ['api-token', 'gh ghp_abcdefghijklmnopqrstuvwxyz0123456789'],
    ['api-token', 'slack xoxb-123456789012-abcdefghij'],
    ['api-token', 'stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc'],
  ])('finds %s in %j', (kind, text) => {
    expect(kinds(text).map(([k]) => k)).toContain(kind);
  });

  it.each([
    'order 4111 1111 1111 1112 (not Luhn-valid)',
    'ssn 000-12-3456 and 666-12-3456 and 900-12-3456 and 123-00-4567 and 123-45-0000',
    'IBAN DE89 3704 0044 0532 0130 01 (bad check digits)',
    'version 1.2.3 at 12:30 on 2024-05-01',
    'not.a.jwt.token and eyJ-alone',
    'user@localhost and @handle',
    'sk_live_short',
  ])('finds nothing in the look-alike %j', (text) => {
    expect(kinds(text)).toEqual([]);
  });

  it('each detector can be switched off', () => {
    const text = 'jane@mail.example.org 4111 1111 1111 1111';
    expect(kinds(text, new Set<DetectorKind>(['payment-card'])).map(([k]) => k)).toEqual(['payment-card']);
    expect(kinds(text, new Set<DetectorKind>(['email'])).map(([k]) => k)).toEqual(['email']);
    expect(maskDetected(text, new Set(), 'partial', key)).toBeUndefined();
  });

  it('masks what it finds and says what it was', () => {
    const out = maskDetected('write to jane.roe@mail.example.org, card 4111 1111 1111 1111.', ALL, 'partial', key);
    expect(out).toEqual({ text: 'write to j***@m***.org, card **** **** **** 1111.', kinds: ['email', 'payment-card'] });
    expect(maskDetected('nothing here at all', ALL, 'partial', key)).toBeUndefined();
  });

  it('a long adversarial text is scanned without backtracking blowups', () => {
    const text = `${'a'.repeat(50_000)}@${'b.'.repeat(20_000)} ${'1 '.repeat(20_000)}`;
    expect(() => findSensitive(text, ALL)).not.toThrow();
  });

  it('no seeded email or card survives in any surrounding text (property)', () => {
    const email = fc.tuple(fc.stringMatching(/^[a-z][a-z0-9.]{1,10}$/), fc.stringMatching(/^[a-z]{2,10}$/), fc.constantFrom('com', 'org', 'example')).map(([l, d, t]) => `${l}@${d}.${t}`);
    const card = fc.constantFrom('4111 1111 1111 1111', '5555555555554444', '3782 822463 10005');
    const filler = fc.stringMatching(/^[A-Za-z ,.;:!?()-]{0,20}$/);
    fc.assert(
      fc.property(filler, fc.oneof(email, card), filler, (before, secret, after) => {
        const out = maskDetected(`${before} ${secret} ${after}`, ALL, 'partial', key);
        expect(out).toBeDefined();
        for (const form of [secret, secret.toLowerCase(), secret.toUpperCase()]) expect(out!.text).not.toContain(form);
      }),
    );
  });
});

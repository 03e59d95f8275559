import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DETECTOR_NAMES, findSensitive, maskDetected, type DetectorKind } from './detectors.js';
import { luhnValid, MASK_STRATEGIES } from './strategies.js';

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

/** The values found in `text`, as `kind:value`. */
function found(text: string, enabled: ReadonlySet<DetectorKind> = ALL): string[] {
  return findSensitive(text, enabled).map((s) => `${s.kind}:${text.slice(s.start, s.end)}`);
}

function only(kind: DetectorKind): ReadonlySet<DetectorKind> {
  return new Set([kind]);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
const JWT = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub: '1234567890', name: 'John Doe' })}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`;
const PEM = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi\nZ1BjP5CE/Wm/Rr500P\n-----END RSA PRIVATE KEY-----';

describe('email', () => {
  it('finds addresses in text, without the punctuation around them', () => {
    expect(found('write to john.doe@example.com.', only('email'))).toEqual(['email:john.doe@example.com']);
    expect(found("where email = 'Ann+news@Mail.Example.co.uk'", only('email'))).toEqual(['email:Ann+news@Mail.Example.co.uk']);
    expect(found('to:bob@x.io;cc=<eve@y.org>', only('email'))).toEqual(['email:bob@x.io', 'email:eve@y.org']);
    expect(found('{"e":"a@b.io"}', only('email'))).toEqual(['email:a@b.io']);
    // `=` may be part of an address: masked with it rather than risk showing part of one.
    expect(found('to=bob@x.io', only('email'))).toEqual(['email:to=bob@x.io']);
  });

  it('leaves look-alikes alone', () => {
    expect(found('@mention, a@b, user@localhost, x@y.c, name@host.123, a@.com, @@@', only('email'))).toEqual([]);
    expect(found('a@b..com', only('email'))).toEqual([]);
  });
});

describe('payment-card', () => {
  it('finds Luhn-valid numbers of 13 to 19 digits, grouped or not', () => {
    expect(found('card 4242 4242 4242 4242 exp 12/29', only('payment-card'))).toEqual(['payment-card:4242 4242 4242 4242']);
    expect(found('4111-1111-1111-1111', only('payment-card'))).toEqual(['payment-card:4111-1111-1111-1111']);
    expect(found('amex 378282246310005, visa13 4222222222222', only('payment-card'))).toEqual([
      'payment-card:378282246310005',
      'payment-card:4222222222222',
    ]);
  });

  it('finds a card among neighbouring numbers (its security code, a count before it)', () => {
    expect(found('4242 4242 4242 4242 123', only('payment-card'))).toEqual(['payment-card:4242 4242 4242 4242']);
    expect(found('qty 12 5555555555554444', only('payment-card'))).toEqual(['payment-card:5555555555554444']);
  });

  it('leaves numbers that are not cards alone', () => {
    expect(luhnValid('4242424242424241')).toBe(false);
    expect(found('4242424242424241', only('payment-card'))).toEqual([]);
    expect(found('order 123456789012 and 12345678901234567890123', only('payment-card'))).toEqual([]);
    expect(found('0000000000000000', only('payment-card'))).toEqual([]);
    expect(found('id_4242424242424242 and pi 3.4242424242424242', only('payment-card'))).toEqual([]);
    // Phone numbers in a row are not a card, even where 13 of their digits pass Luhn.
    expect(found('415-555-2671 415-555-2672 415-555-2673', only('payment-card'))).toEqual([]);
  });
});

describe('us-ssn', () => {
  it('finds dashed numbers in the issued ranges', () => {
    expect(found('ssn: 123-45-6789; other 078-05-1120', only('us-ssn'))).toEqual(['us-ssn:123-45-6789', 'us-ssn:078-05-1120']);
  });

  it('leaves the ranges the SSA never issues, and other shapes, alone', () => {
    for (const bad of ['000-12-3456', '666-12-3456', '900-12-3456', '999-12-3456', '123-00-4567', '123-45-0000']) {
      expect(found(`ssn ${bad}`, only('us-ssn')), bad).toEqual([]);
    }
    expect(found('123456789 123 45 6789 1123-45-6789 123-45-67890 2024-01-15', only('us-ssn'))).toEqual([]);
  });
});

describe('phone', () => {
  it('finds valid US numbers and international numbers with a country code', () => {
    expect(found('call (415) 555-2671 today', only('phone'))).toEqual(['phone:(415) 555-2671']);
    expect(found('tel 202-456-1111', only('phone'))).toEqual(['phone:202-456-1111']);
    expect(found('London office +44 20 7946 0958.', only('phone'))).toEqual(['phone:+44 20 7946 0958']);
    expect(found('+33 1 42 68 53 00', only('phone'))).toEqual(['phone:+33 1 42 68 53 00']);
  });

  it('leaves numbers that are not valid phone numbers alone', () => {
    expect(found('order 1234567890, ts 20240101123045, ext 555-1234, 42', only('phone'))).toEqual([]);
  });
});

describe('iban', () => {
  it('finds IBANs with a valid check, compact or in groups of four', () => {
    expect(found('pay DE89 3704 0044 0532 0130 00 now', only('iban'))).toEqual(['iban:DE89 3704 0044 0532 0130 00']);
    expect(found('GB82WEST12345698765432', only('iban'))).toEqual(['iban:GB82WEST12345698765432']);
    expect(found('TO GB82 WEST 1234 5698 7654 32 AND MORE', only('iban'))).toEqual(['iban:GB82 WEST 1234 5698 7654 32']);
  });

  it('leaves a bad checksum and look-alikes alone', () => {
    expect(found('DE89 3704 0044 0532 0130 01', only('iban'))).toEqual([]);
    expect(found('GB82WEST12345698765433 XX00ABCDEFGHIJKLMN de89370400440532013000', only('iban'))).toEqual([]);
  });
});

describe('jwt', () => {
  it('finds tokens whose header is a JSON object', () => {
    expect(found(`Authorization: Bearer ${JWT}`, only('jwt'))).toEqual([`jwt:${JWT}`]);
    const unsigned = `${b64url({ alg: 'none' })}.${b64url({ sub: 'x' })}.`;
    expect(found(`t=${unsigned} `, only('jwt'))).toEqual([`jwt:${unsigned}`]);
  });

  it('leaves other dotted strings alone', () => {
    expect(found('eyJfoo.bar.baz a.b.c www.example.com eyJhbGciOiJIUzI1NiJ9.onlytwo', only('jwt'))).toEqual([]);
    expect(found(`x${JWT}`, only('jwt'))).toEqual([]);
  });
});

describe('private-key', () => {
  it('finds a PEM private key through its END line', () => {
    expect(found(`key:\n${PEM}\nthanks`, only('private-key'))).toEqual([`private-key:${PEM}`]);
    const pkcs8 = '-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----';
    expect(found(`${pkcs8} and ${pkcs8}`, only('private-key'))).toEqual([`private-key:${pkcs8}`, `private-key:${pkcs8}`]);
  });

  it('masks to the end of the text when the key is cut short', () => {
    const cut = 'see -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END RSA PRIVATE KEY-----';
    expect(found(cut, only('private-key'))).toEqual([`private-key:${cut.slice(4)}`]);
  });

  it('leaves public keys and certificates alone', () => {
    expect(found('-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY----- -----BEGIN CERTIFICATE-----', only('private-key'))).toEqual([]);
  });
});

describe('api-token', () => {
  const tokens = [
    'AKIAIOSFODNN7EXAMPLE',
    'ASIAY34FZKBOKMUTVV7A',
    `ghp_${'a1B2c3D4e5'.repeat(3)}abcdef`,
    `gho_${'Z'.repeat(36)}`,
    `github_pat_11ABCDEFG0${'x'.repeat(40)}_${'Y'.repeat(20)}`,
    'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
    'xoxp-1234567890-abcdef',
    'sk_live_4eC39HqLyjWDarjtT1zdp7dc',
    `rk_live_${'a'.repeat(24)}`,
    `sk_test_${'b'.repeat(24)}`,
    `pk_live_${'c'.repeat(24)}`,
    'AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY',
  ];

  it.each(tokens)('finds %s', (token) => {
    expect(found(`token: ${token}\n`, only('api-token'))).toEqual([`api-token:${token}`]);
    expect(found(`AWS_KEY=${token}`, only('api-token'))).toEqual([`api-token:${token}`]);
  });

  it('leaves tokens without a known prefix, and too short ones, alone', () => {
    const text = `AKIA1234 ghp_short xoxb-1 sk_live_abc pk_test_${'c'.repeat(24)} ${'f'.repeat(40)} Bearer abcdefghijklmnopqrstuvwxyz`;
    expect(found(text, only('api-token'))).toEqual([]);
    expect(found('xAKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLEX', only('api-token'))).toEqual([]);
  });
});

describe('findSensitive', () => {
  it('sorts what it finds, across detectors', () => {
    const text = `mail a@b.io, card 4242424242424242, ssn 123-45-6789, jwt ${JWT}`;
    expect(found(text).map((f) => f.slice(0, f.indexOf(':')))).toEqual(['email', 'payment-card', 'us-ssn', 'jwt']);
  });

  it('keeps a value that holds another whole: an email whose local part is a card number', () => {
    expect(found('4242424242424242@example.com')).toEqual(['email:4242424242424242@example.com']);
  });

  it('finds nothing of a detector that is off', () => {
    const text = `a@b.io 4242424242424242 123-45-6789 (415) 555-2671 DE89370400440532013000 ${JWT} ${PEM} AKIAIOSFODNN7EXAMPLE`;
    const kindsIn = (enabled: ReadonlySet<DetectorKind>) => new Set(findSensitive(text, enabled).map((s) => s.kind));
    expect(kindsIn(ALL)).toEqual(new Set(DETECTOR_NAMES));
    for (const off of DETECTOR_NAMES) {
      const enabled = new Set(DETECTOR_NAMES.filter((k) => k !== off));
      expect(kindsIn(enabled), off).toEqual(enabled);
    }
    expect(findSensitive(text, new Set())).toEqual([]);
  });

  it('scans inputs built to make patterns backtrack (100 KB each) in one pass', () => {
    // No timing assertion: these finish at once with linear patterns and would not with
    // backtracking ones.
    const n = 100_000;
    const inputs = [
      'a'.repeat(n) + '@',
      '@a'.repeat(n / 2),
      'a.'.repeat(n / 2) + '@' + 'b.'.repeat(n / 2),
      'xoxb-'.repeat(n / 5),
      'eyJ-'.repeat(n / 4),
      'eyJa.'.repeat(n / 5),
      '1-'.repeat(n / 2),
      'DE89 '.repeat(n / 5),
      '-----BEGIN ' + 'A '.repeat(n / 2),
      'ghp_'.repeat(n / 4),
    ];
    for (const text of inputs) expect(Array.isArray(findSensitive(text, ALL))).toBe(true);
  });
});

describe('maskDetected', () => {
  it('masks each value in place and lists the kinds found', () => {
    const r = maskDetected('contact john.doe@example.com or 4242 4242 4242 4242', ALL, 'partial', key);
    expect(r).toEqual({ text: 'contact j***@e***.com or **** **** **** 4242', kinds: ['email', 'payment-card'] });
  });

  it('returns undefined when nothing is found, so the caller keeps the original bytes', () => {
    expect(maskDetected('nothing to see here, order 12345', ALL, 'partial', key)).toBeUndefined();
    expect(maskDetected('a@b.io', new Set(), 'partial', key)).toBeUndefined();
    expect(maskDetected('a@b.io', only('phone'), 'partial', key)).toBeUndefined();
  });

  it('redacts secrets whatever the strategy, and marks values for null', () => {
    expect(maskDetected(`t ${JWT} x`, ALL, 'partial', key)?.text).toBe('t [redacted] x');
    expect(maskDetected('a@b.io and c@d.io', ALL, 'null', key)?.text).toBe('[redacted] and [redacted]');
    expect(maskDetected('a@b.io', ALL, 'redact', key)?.text).toBe('[redacted]');
  });

  it('hashes equal values to equal masks', () => {
    const r = maskDetected('a@b.io, a@b.io, c@d.io', ALL, 'hash', key)!.text.split(', ');
    expect(r[0]).toMatch(/^h_[0-9a-f]+$/);
    expect(r[0]).toBe(r[1]);
    expect(r[2]).not.toBe(r[0]);
  });
});

describe('maskDetected properties', () => {
  /** Luhn-valid card numbers of 13 to 19 digits, not one digit repeated. */
  const cardDigits = fc
    .integer({ min: 12, max: 18 })
    .chain((len) => fc.array(fc.integer({ min: 0, max: 9 }), { minLength: len, maxLength: len }))
    .map((body) => {
      const start = body.join('');
      for (let d = 0; d <= 9; d++) if (luhnValid(start + d)) return start + d;
      throw new Error('unreachable: one check digit always fits');
    })
    .filter((digits) => !/^(\d)\1+$/.test(digits));

  /** As people write them: compact, or in groups of four by spaces or dashes. */
  const anyCard = fc.tuple(cardDigits, fc.constantFrom('', ' ', '-')).map(([digits, sep]) => (sep === '' || digits.length > 16 ? digits : digits.match(/.{1,4}/g)!.join(sep)));

  /** Text around the values: anything but `@`, digits included. */
  const anyText = fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(/@/g, ''));

  it('never lets an RFC email or a card through, in any case, whatever the text around it and the strategy', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.emailAddress(), anyCard), { minLength: 1, maxLength: 4 }),
        fc.array(anyText, { minLength: 5, maxLength: 5 }),
        fc.constantFrom(...MASK_STRATEGIES),
        (values, fill, strategy) => {
          const text = values.reduce((acc, v, i) => `${acc} ; ${v} ; ${fill[i + 1]}`, fill[0]!);
          const r = maskDetected(text, ALL, strategy, key);
          expect(r).toBeDefined();
          for (const v of values) {
            expect(r!.text).not.toContain(v);
            expect(r!.text).not.toContain(v.toLowerCase());
            expect(r!.text).not.toContain(v.toUpperCase());
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

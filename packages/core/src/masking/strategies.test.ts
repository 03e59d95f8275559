import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { guessKind, guessKindBytes, hashToInt, hashToUuid, maskText, maskTextBytes, strongerStrategy, type MaskStrategy } from './strategies.js';

const key = Buffer.from('strategy-test-key-0123');
const other = Buffer.from('another-test-key-98765');

describe('partial', () => {
  it.each([
    ['john.doe@example.com', 'j***@e***.com'],
    ['4242 4242 4242 4242', '**** **** **** 4242'],
    ['4242424242424242', '************4242'],
    ['4242-4242-4242-4242', '****-****-****-4242'],
    ['123-45-6789', '***-**-6789'],
    ['+1 415 555 2671', '+* *** *** **71'],
    ['(415) 555-2671', '(***) ***-**71'],
    ['GB82 WEST 1234 5698 7654 32', 'GB****************5432'],
    ['Alice Liddell', 'A***l'],
    ['abc', '***'],
    ['Zoë Ångström', 'Z***m'],
  ])('%s → %s', (value, masked) => {
    expect(maskText(value, 'partial', { hashKey: key })).toBe(masked);
  });

  it('keeps a fixed length and a maximum length', () => {
    expect(maskText('john.doe@example.com', 'partial', { hashKey: key, fixedLength: 8 })).toBe('j***@e**');
    expect(maskText('ab', 'partial', { hashKey: key, fixedLength: 5 })).toBe('*****');
    expect(maskText('john.doe@example.com', 'partial', { hashKey: key, maxLength: 4 })).toBe('j***');
  });

  it('a detector kind picks the shape', () => {
    expect(maskText('4242424242424242', 'partial', { hashKey: key, kind: 'phone' })).toBe('**************42');
  });
});

describe('redact, hash, null', () => {
  it('redact gives a marker that fits the column', () => {
    expect(maskText('secret', 'redact', { hashKey: key })).toBe('[redacted]');
    expect(maskText('secret', 'redact', { hashKey: key, fixedLength: 3 })).toBe('***');
    expect(maskText('secret', 'redact', { hashKey: key, maxLength: 4 })).toBe('****');
  });

  it('hash is deterministic, keyed and short', () => {
    const a = maskText('Alice', 'hash', { hashKey: key });
    expect(a).toMatch(/^h_[0-9a-f]{16}$/);
    expect(maskText('Alice', 'hash', { hashKey: key })).toBe(a);
    expect(maskText('Alice', 'hash', { hashKey: other })).not.toBe(a);
    expect(maskText('Alicf', 'hash', { hashKey: key })).not.toBe(a);
    // Non-ASCII text hashes its UTF-8 bytes, like the byte path.
    expect(maskText('Zoë', 'hash', { hashKey: key })).toBe(maskTextBytes(Buffer.from('Zoë'), 'hash', { hashKey: key })!.toString('utf8'));
  });

  it('null gives null', () => {
    expect(maskText('x', 'null', { hashKey: key })).toBeNull();
    expect(maskTextBytes(Buffer.from('x'), 'null', { hashKey: key })).toBeNull();
  });

  it('hashToInt stays in the signed range of its width; hashToUuid is a valid uuid', () => {
    for (const bits of [16, 32, 64] as const) {
      const n = hashToInt(key, 'v', bits);
      expect(n).toBe(hashToInt(key, 'v', bits));
      expect(n >= -(1n << BigInt(bits - 1)) && n < 1n << BigInt(bits - 1)).toBe(true);
    }
    expect(hashToUuid(key, 'v')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('the strongest strategy wins: null over redact over hash over partial', () => {
    expect(strongerStrategy('partial', 'hash')).toBe('hash');
    expect(strongerStrategy('redact', 'hash')).toBe('redact');
    expect(strongerStrategy('redact', 'null')).toBe('null');
  });
});

describe('properties', () => {
  const strategies: MaskStrategy[] = ['partial', 'hash', 'redact'];

  it('no strategy returns a non-empty value unchanged, whatever its length limits', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.constantFrom(...strategies),
        fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
        fc.boolean(),
        (value, strategy, limit, fixed) => {
          const options = { hashKey: key, ...(limit === undefined ? {} : fixed ? { fixedLength: limit } : { maxLength: limit }) };
          const out = maskText(value, strategy, options);
          expect(out).not.toBe(value);
          if (limit !== undefined && out !== null) {
            if (fixed) expect([...out].length).toBe(limit);
            else expect([...out].length).toBeLessThanOrEqual(limit);
          }
        },
      ),
    );
  });

  it('the byte path and the text path agree', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 30 }), fc.constantFrom(...strategies), (value, strategy) => {
        const viaText = maskText(value, strategy, { hashKey: key });
        const viaBytes = maskTextBytes(Buffer.from(value, 'utf8'), strategy, { hashKey: key });
        expect(viaBytes?.toString('utf8') ?? null).toBe(viaText);
      }),
    );
  });
});

describe('maskText: shapes and limits', () => {
  const opts = { hashKey: key };

  it.each([
    ['a@b.io', 'a***@b***.io'],
    ['Ann+news@mail.example.co.uk', 'A***@m***.uk'],
    ['5555-5555-5555-4444', '****-****-****-4444'],
    ['378282246310005', '***********0005'],
    ['+44 20 7946 0958', '+** ** **** **58'],
    ['DE89370400440532013000', 'DE****************3000'],
    ['abcd', '****'],
    ['abcde', 'a***e'],
    ['x', '*'],
  ])('partial %s → %s', (value, masked) => {
    expect(maskText(value, 'partial', opts)).toBe(masked);
  });

  it('partial gives the same marker whatever the length of a plain value, so the length does not show', () => {
    expect(maskText('Alexander', 'partial', opts)).toBe('A***r');
    expect(maskText('Alexander the Great of Macedon', 'partial', opts)).toBe('A***n');
  });

  it('partial falls back to the generic shape when a kind would show most of the value', () => {
    expect(maskText('12345678', 'partial', { ...opts, kind: 'payment-card' })).toBe('1***8');
    expect(maskText('1234', 'partial', { ...opts, kind: 'phone' })).toBe('****');
    expect(maskText('DE12', 'partial', { ...opts, kind: 'iban' })).toBe('****');
    expect(maskText('no at sign', 'partial', { ...opts, kind: 'email' })).toBe('n***n');
    expect(maskText('@example.com', 'partial', { ...opts, kind: 'email' })).toBe('@***m');
  });

  it('partial redacts secrets entirely', () => {
    for (const kind of ['jwt', 'private-key', 'api-token'] as const) expect(maskText('AKIAIOSFODNN7EXAMPLE', 'partial', { ...opts, kind })).toBe('[redacted]');
  });

  it('every strategy gives something for an empty string (null gives null)', () => {
    expect(maskText('', 'partial', opts)).toBe('*');
    expect(maskText('', 'redact', opts)).toBe('[redacted]');
    expect(maskText('', 'hash', opts)).toMatch(/^h_[0-9a-f]{16}$/);
    expect(maskText('', 'null', opts)).toBeNull();
  });

  it('redact in a column too short for the marker gives as many * as fit, no more than the value had', () => {
    expect(maskText('ab', 'redact', { ...opts, maxLength: 4 })).toBe('**');
    expect(maskText('', 'redact', { ...opts, maxLength: 4 })).toBe('*');
    expect(maskText('abcdefgh', 'redact', { ...opts, maxLength: 12 })).toBe('[redacted]');
    expect(maskText('abcdefgh', 'redact', { ...opts, maxLength: 7 })).toBe('*******');
    expect(maskText('ab', 'redact', { ...opts, fixedLength: 6 })).toBe('******');
  });

  it('hash is cut to a maximum length and cut or padded with * to a fixed one', () => {
    const full = maskText('value', 'hash', opts)!;
    expect(maskText('value', 'hash', { ...opts, maxLength: 6 })).toBe(full.slice(0, 6));
    expect(maskText('value', 'hash', { ...opts, fixedLength: 4 })).toBe(full.slice(0, 4));
    expect(maskText('value', 'hash', { ...opts, fixedLength: 20 })).toBe(`${full}**`);
  });

  it('never gives back the value, even when the mask would be it', () => {
    expect(maskText('*', 'partial', opts)).toBe('#');
    expect(maskText('**', 'partial', opts)).toBe('##');
    expect(maskText('*****', 'partial', opts)).toBe('#####');
    expect(maskText('[redacted]', 'redact', opts)).toBe('**********');
    expect(maskText('***', 'redact', { ...opts, fixedLength: 3 })).toBe('###');
    expect(maskText('**', 'redact', { ...opts, maxLength: 2 })).toBe('##');
    expect(maskText('h', 'hash', { ...opts, maxLength: 1 })).toBe('*');
    expect(maskText('Zoë', 'partial', { ...opts, fixedLength: 3 })).toBe('***');
    expect(maskText('***ë', 'partial', { ...opts, fixedLength: 4 })).toBe('****');
  });

  it('cuts by characters, not UTF-16 units, so a limit in characters holds', () => {
    expect(maskText('😀😀😀😀😀😀', 'partial', { ...opts, maxLength: 3 })).toBe('😀**');
    expect([...maskText('Zoë Ångström', 'partial', { ...opts, fixedLength: 7 })!]).toHaveLength(7);
  });
});

describe('hash, hashToInt and hashToUuid: keyed and deterministic', () => {
  const inputs = ['', 'a', 'alice@example.com', '4242424242424242', 'Zoë', 'x'.repeat(1000)];

  it('equal inputs give equal masks; another key or value gives another', () => {
    const seen = new Set<string>();
    for (const v of inputs) {
      const h = maskText(v, 'hash', { hashKey: key })!;
      expect(maskText(v, 'hash', { hashKey: key })).toBe(h);
      expect(maskText(v, 'hash', { hashKey: other })).not.toBe(h);
      seen.add(h);
    }
    expect(seen.size).toBe(inputs.length);
  });

  it('hashToInt stays in the signed range of each width, and depends on the key and the input', () => {
    for (const bits of [16, 32, 64] as const) {
      const min = -(1n << BigInt(bits - 1));
      const max = (1n << BigInt(bits - 1)) - 1n;
      const values = new Set<bigint>();
      for (let i = 0; i < 200; i++) {
        const n = hashToInt(key, `value-${i}`, bits);
        expect(n >= min && n <= max, `${bits}: ${n}`).toBe(true);
        values.add(n);
      }
      expect(values.size).toBeGreaterThan(190);
      expect([...values].some((n) => n < 0n)).toBe(true);
      expect(hashToInt(key, Buffer.from('value-1'), bits)).toBe(hashToInt(key, 'value-1', bits));
      expect(hashToInt(other, 'value-1', bits)).not.toBe(hashToInt(key, 'value-1', bits));
    }
  });

  it('hashToUuid gives version-4-shaped uuids, deterministic and keyed', () => {
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const v of inputs) {
      expect(hashToUuid(key, v)).toMatch(uuid);
      expect(hashToUuid(key, v)).toBe(hashToUuid(key, Buffer.from(v, 'utf8')));
      expect(hashToUuid(other, v)).not.toBe(hashToUuid(key, v));
    }
    expect(new Set(inputs.map((v) => hashToUuid(key, v))).size).toBe(inputs.length);
  });

  it('orders strategies null > redact > hash > partial, whichever comes first', () => {
    const order: MaskStrategy[] = ['partial', 'hash', 'redact', 'null'];
    for (const a of order) for (const b of order) expect(strongerStrategy(a, b)).toBe(order[Math.max(order.indexOf(a), order.indexOf(b))]);
  });
});

describe('maskText properties', () => {
  const kinds = fc.option(fc.constantFrom('email', 'payment-card', 'us-ssn', 'phone', 'iban', 'jwt', 'private-key', 'api-token' as const), { nil: undefined });
  const limits = fc.oneof(
    fc.constant({}),
    fc.integer({ min: 0, max: 12 }).map((n) => ({ maxLength: n })),
    fc.integer({ min: 1, max: 12 }).map((n) => ({ fixedLength: n })),
  );
  /** Strings made of the characters masks are made of, so that a mask can be the value. */
  const value = fc.oneof(fc.string({ minLength: 1, maxLength: 30 }), fc.stringMatching(/^[*#h_0-9a-f@.\[\]redact -]{1,14}$/), fc.emailAddress());

  it('no strategy ever gives back a non-empty value, with any kind and limits, and the limits hold', () => {
    fc.assert(
      fc.property(value, fc.constantFrom<MaskStrategy>('partial', 'hash', 'redact', 'null'), kinds, limits, (v, strategy, kind, limit) => {
        const out = maskText(v, strategy, { hashKey: key, ...limit, ...(kind ? { kind } : {}) });
        if (strategy === 'null') {
          expect(out).toBeNull();
          return;
        }
        expect(out).not.toBe(v);
        const length = [...out!].length;
        if ('fixedLength' in limit) expect(length).toBe(limit.fixedLength);
        if ('maxLength' in limit) expect(length).toBeLessThanOrEqual(limit.maxLength);
      }),
      { numRuns: 2000 },
    );
  });

  it('the byte path and the text path agree, with any kind and limits', () => {
    fc.assert(
      fc.property(value, fc.constantFrom<MaskStrategy>('partial', 'hash', 'redact'), kinds, limits, (v, strategy, kind, limit) => {
        const options = { hashKey: key, ...limit, ...(kind ? { kind } : {}) };
        expect(maskTextBytes(Buffer.from(v, 'utf8'), strategy, options)?.toString('utf8')).toBe(maskText(v, strategy, options));
      }),
      { numRuns: 1000 },
    );
  });
});

describe('shape guessing', () => {
  it('the byte path guesses as the text path does, on any ASCII value', () => {
    const alphabet = fc.constantFrom(...'0123456789 -+().@abcXYZ\t_'.split(''));
    const shaped = fc.oneof(
      fc.array(alphabet, { maxLength: 24 }).map((a) => a.join('')),
      fc.constantFrom('4242 4242 4242 4242', '123-45-6789', '+1 415 555 2671', 'a@b.co', 'GB82 WEST 1234 5698 7654 32', 'x@y.', '@a.bc', 'a@.bc'),
    );
    fc.assert(
      fc.property(shaped, (value) => {
        expect(guessKindBytes(Buffer.from(value, 'latin1'))).toBe(guessKind(value));
      }),
      { numRuns: 2000 },
    );
  });
});

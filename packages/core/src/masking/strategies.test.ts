import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashToInt, hashToUuid, maskText, maskTextBytes, strongerStrategy, type MaskStrategy } from './strategies.js';

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

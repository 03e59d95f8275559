import { describe, expect, it } from 'vitest';
import { maskingSchema } from './config.js';

/** The messages of a masking section that does not validate, as `path: message`. */
function problems(masking: unknown): string[] {
  const r = maskingSchema.safeParse(masking);
  if (r.success) return [];
  return r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('maskingSchema', () => {
  it('parses a full section', () => {
    const m = maskingSchema.parse({
      enabled: true,
      hashKey: 'a-secret-of-at-least-16-chars',
      columns: [
        { column: 'public.customers.email', strategy: 'partial', targets: ['app'], name: 'customer-email' },
        { column: 'customers.ssn' },
        { column: '*.*.password', strategy: 'null' },
      ],
      scan: ['public.tickets.body'],
      detectors: { email: true, phone: false },
      detectorStrategy: 'hash',
      exempt: { groups: ['compliance'], subjects: ['auditor'], kinds: ['service'] },
    });
    expect(m.columns[1]).toEqual({ column: 'customers.ssn', strategy: 'redact' });
    expect(m.detectors).toEqual({ email: true, phone: false });
    expect(m.detectorStrategy).toBe('hash');
  });

  it('defaults an empty section to on, detectors all on, partial for detected values, nobody exempt', () => {
    expect(maskingSchema.parse({})).toEqual({
      enabled: true,
      columns: [],
      scan: [],
      detectors: {},
      detectorStrategy: 'partial',
      exempt: { subjects: [], groups: [], kinds: [] },
    });
    expect(maskingSchema.parse({ enabled: false }).enabled).toBe(false);
  });

  it('names the strategies when one is unknown', () => {
    expect(problems({ columns: [{ column: 'a.b', strategy: 'scramble' }] })).toEqual([
      'columns.0.strategy: unknown masking strategy "scramble"; use one of partial, hash, redact, null',
    ]);
    expect(problems({ detectorStrategy: 'mask' })).toEqual(['detectorStrategy: unknown masking strategy "mask"; use one of partial, hash, redact, null']);
  });

  it('says what a column pattern looks like when one is wrong', () => {
    for (const bad of ['email', 'a.b.c.d', 'public..email', 'public.customers.e mail', '']) {
      expect(problems({ columns: [{ column: bad }] }), bad).toEqual([
        'columns.0.column: expected schema.table.column or table.column, with * wildcards (for example public.customers.email or *.*.ssn)',
      ]);
    }
    expect(problems({ scan: ['body'] })).toEqual([
      'scan.0: expected schema.table.column or table.column, with * wildcards (for example public.customers.email or *.*.ssn)',
    ]);
  });

  it('names the detectors when one is unknown', () => {
    const p = problems({ detectors: { email: true, 'credit-card': false, ssn: true } });
    expect(p).toHaveLength(1);
    expect(p[0]).toBe('detectors: unknown detector "credit-card", "ssn"; the detectors are email, payment-card, us-ssn, phone, iban, jwt, private-key, api-token');
    expect(problems({ detectors: { email: 'yes' } })).toEqual(['detectors.email: switch a detector with true or false']);
  });

  it('takes the hash key one way at most, and refuses a short one', () => {
    expect(problems({ hashKey: 'a-secret-of-at-least-16-chars', hashKeyEnv: 'MASK_KEY' })).toEqual([': give the hash key one way: hashKey, hashKeyEnv or hashKeyFile']);
    expect(problems({ hashKeyEnv: 'MASK_KEY', hashKeyFile: '/etc/sluice/mask.key' })).toHaveLength(1);
    expect(problems({ hashKey: 'short' })).toEqual(['hashKey: use a hash key of at least 16 characters']);
    expect(problems({ hashKeyEnv: 'not a name' })).toEqual(['hashKeyEnv: expected the name of an environment variable, such as SLUICE_MASK_KEY']);
    expect(problems({ hashKeyFile: 'mask.key' })).toEqual([]);
    expect(maskingSchema.parse({}).hashKey).toBeUndefined();
  });

  it('refuses unknown keys, empty target lists and unknown identity kinds', () => {
    expect(problems({ colums: [] })[0]).toMatch(/colums/);
    expect(problems({ columns: [{ column: 'a.b', target: ['x'] }] })[0]).toMatch(/^columns\.0: .*target/);
    expect(problems({ columns: [{ column: 'a.b', targets: [] }] })).toEqual([
      'columns.0.targets: an empty targets list matches nothing; leave it out to match every target',
    ]);
    expect(problems({ exempt: { kinds: ['robot'] } })[0]).toMatch(/^exempt\.kinds\.0: /);
  });
});

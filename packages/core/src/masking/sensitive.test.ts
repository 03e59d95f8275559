import { describe, expect, it } from 'vitest';
import { maskingSchema } from './config.js';
import { SensitiveColumns } from './sensitive.js';

const columns = new SensitiveColumns(
  maskingSchema.parse({
    columns: [
      { column: 'public.customers.email', strategy: 'partial' },
      { column: 'customers.ssn', strategy: 'redact', name: 'ssn' },
      { column: '*.*.card_*', strategy: 'null' },
      { column: 'billing.invoices.total', strategy: 'hash', targets: ['prod-*'] },
    ],
    scan: ['support.tickets.body'],
    exempt: { groups: ['compliance'], subjects: ['auditor@example.com'] },
  }),
);

describe('sensitive columns', () => {
  it('matches schema.table.column and table.column patterns with wildcards', () => {
    expect(columns.match('app', { schema: 'public', table: 'customers', column: 'email' })).toEqual({ strategy: 'partial', rule: 'column:public.customers.email' });
    expect(columns.match('app', { schema: 'other', table: 'customers', column: 'email' })).toBeUndefined();
    expect(columns.match('app', { schema: 'other', table: 'customers', column: 'ssn' })).toEqual({ strategy: 'redact', rule: 'ssn' });
    expect(columns.match('app', { schema: 'x', table: 'y', column: 'card_number' })?.strategy).toBe('null');
    expect(columns.match('app', { schema: 'public', table: 'customers', column: 'name' })).toBeUndefined();
  });

  it('an unqualified source may be in any schema; a whole row brings its strongest column', () => {
    expect(columns.match('app', { table: 'customers', column: 'email' })?.strategy).toBe('partial');
    expect(columns.match('app', { table: 'customers', column: '*' })?.strategy).toBe('null');
    expect(columns.strongest('app', [{ table: 'customers', column: 'email' }, { table: 'customers', column: 'ssn' }])?.strategy).toBe('redact');
  });

  it('limits patterns to their targets', () => {
    expect(columns.match('prod-eu', { schema: 'billing', table: 'invoices', column: 'total' })?.strategy).toBe('hash');
    expect(columns.match('staging', { schema: 'billing', table: 'invoices', column: 'total' })).toBeUndefined();
  });

  it('knows scanned columns, tables with sensitive columns and exempt identities', () => {
    expect(columns.scanned('app', { schema: 'support', table: 'tickets', column: 'body' })).toBe(true);
    expect(columns.scanned('app', { schema: 'support', table: 'tickets', column: 'id' })).toBe(false);
    expect(columns.mayMatchTable('app', 'public', 'customers')).toBe(true);
    // `*.*.card_*` may name a column of any table.
    expect(columns.mayMatchTable('app', 'public', 'orders')).toBe(true);
    expect(new SensitiveColumns({ columns: [{ column: 'customers.ssn' }] }).mayMatchTable('app', 'public', 'orders')).toBe(false);
    expect(columns.isExempt({ subject: 'c', kind: 'human', groups: ['compliance'], method: 'token' })).toBe(true);
    expect(columns.isExempt({ subject: 'auditor@example.com', kind: 'human', groups: [], method: 'token' })).toBe(true);
    expect(columns.isExempt({ subject: 'a', kind: 'human', groups: ['analysts'], method: 'token' })).toBe(false);
  });

  it('policy mask rules add columns for one statement, alone for an exempt identity', () => {
    const masks = [{ rule: 'agents-mask-notes', columns: ['customers.notes'], strategy: 'redact' as const }];
    expect(columns.withExtra(masks).match('app', { table: 'customers', column: 'notes' })).toEqual({ strategy: 'redact', rule: 'agents-mask-notes' });
    expect(columns.withExtra(masks)).toBe(columns.withExtra(masks));
    const only = columns.onlyExtra(masks);
    expect(only.match('app', { table: 'customers', column: 'email' })).toBeUndefined();
    expect(only.match('app', { table: 'customers', column: 'notes' })?.rule).toBe('agents-mask-notes');
  });
});

describe('masking config', () => {
  const problems = (raw: unknown) => {
    const r = maskingSchema.safeParse(raw);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('names the key and the fix', () => {
    expect(problems({ columns: [{ column: 'email', strategy: 'partial' }] })[0]).toMatch(/columns.0.column: expected schema.table.column or table.column/);
    expect(problems({ columns: [{ column: 'a.b', strategy: 'blur' }] })[0]).toMatch(/unknown masking strategy "blur"; use one of partial, hash, redact, null/);
    expect(problems({ detectors: { emails: true } })[0]).toMatch(/unknown detector "emails"; the detectors are email, payment-card/);
    expect(problems({ hashKey: 'short' })[0]).toMatch(/at least 16 characters/);
    expect(problems({ hashKey: 'a-long-enough-key-123', hashKeyEnv: 'X' })[0]).toMatch(/one way/);
    expect(problems({})).toEqual([]);
  });
});

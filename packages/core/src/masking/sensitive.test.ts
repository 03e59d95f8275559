import { describe, expect, it } from 'vitest';
import type { Identity } from '../identity/types.js';
import { maskingSchema } from './config.js';
import { SensitiveColumns, type MaskRuleColumns } from './sensitive.js';

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

function sensitive(masking: unknown): SensitiveColumns {
  return new SensitiveColumns(maskingSchema.parse(masking));
}

function who(subject: string, groups: readonly string[] = [], kind: Identity['kind'] = 'human'): Identity {
  return { subject, kind, groups, method: 'token' };
}

const sc = sensitive({
  columns: [
    { column: 'public.customers.email', strategy: 'partial' },
    { column: 'public.customers.ssn', strategy: 'null', name: 'ssn' },
    { column: 'customers.card_*', strategy: 'hash' },
    { column: '*.*.password', strategy: 'redact' },
    { column: 'billing.invoices.iban', strategy: 'partial', targets: ['prod-*'] },
  ],
  scan: ['public.tickets.body', 'notes.*'],
  exempt: { groups: ['compliance'], subjects: ['auditor'], kinds: ['service'] },
});

describe('SensitiveColumns.match', () => {
  it('matches names case-insensitively, with * in any part, and names the rule (default column:<pattern>)', () => {
    expect(sc.match('app', { schema: 'PUBLIC', table: 'Customers', column: 'EMAIL' })).toEqual({ strategy: 'partial', rule: 'column:public.customers.email' });
    expect(sc.match('app', { schema: 'sales', table: 'customers', column: 'card_number' })?.strategy).toBe('hash');
    expect(sc.match('app', { schema: 'auth', table: 'users', column: 'password' })?.strategy).toBe('redact');
    expect(sc.match('app', { schema: 'auth', table: 'users', column: 'password_hint' })).toBeUndefined();
    expect(sc.match('app', { schema: 'sales', table: 'customers', column: 'email' })).toBeUndefined();
  });

  it('matches an unqualified column against a pattern of any schema, on the pattern’s targets only', () => {
    expect(sc.match('app', { table: 'customers', column: 'ssn' })).toEqual({ strategy: 'null', rule: 'ssn' });
    expect(sc.match('app', { table: 'invoices', column: 'iban' })).toBeUndefined();
    expect(sc.match('prod-eu', { table: 'invoices', column: 'iban' })?.strategy).toBe('partial');
    expect(sc.match('PROD-us', { schema: 'billing', table: 'invoices', column: 'iban' })?.strategy).toBe('partial');
  });

  it('takes the strongest strategy of every pattern of the table for a whole row', () => {
    expect(sc.match('app', { schema: 'public', table: 'customers', column: '*' })).toEqual({ strategy: 'null', rule: 'ssn' });
    expect(sc.match('app', { schema: 'public', table: 'orders', column: '*' })?.strategy).toBe('redact');
    const narrow = sensitive({ columns: [{ column: 'public.customers.email', strategy: 'partial' }] });
    expect(narrow.match('app', { schema: 'public', table: 'orders', column: '*' })).toBeUndefined();
    expect(narrow.match('app', { table: 'customers', column: '*' })?.strategy).toBe('partial');
  });

  it('answers the same once its cache has been filled and emptied', () => {
    for (let i = 0; i < 25_000; i++) sc.match('app', { schema: 'public', table: `t${i}`, column: 'email' });
    expect(sc.match('app', { schema: 'public', table: 'customers', column: 'email' })?.strategy).toBe('partial');
    expect(sc.match('app', { schema: 'public', table: 'customers', column: 'email' })?.strategy).toBe('partial');
  });

  it('takes the strongest of several sources, ignoring those that are not sensitive', () => {
    const email = { schema: 'public', table: 'customers', column: 'email' };
    const card = { schema: 'public', table: 'customers', column: 'card_no' };
    const ssn = { schema: 'public', table: 'customers', column: 'ssn' };
    const name = { schema: 'public', table: 'customers', column: 'name' };
    expect(sc.strongest('app', [email, card])?.strategy).toBe('hash');
    expect(sc.strongest('app', [email, ssn, card])).toEqual({ strategy: 'null', rule: 'ssn' });
    expect(sc.strongest('app', [name, email])?.strategy).toBe('partial');
    expect(sc.strongest('app', [name])).toBeUndefined();
    expect(sc.strongest('app', [])).toBeUndefined();
  });
});

describe('SensitiveColumns: scanned columns, tables and patterns', () => {
  it('knows the free-text columns that are always scanned', () => {
    expect(sc.scanned('app', { schema: 'public', table: 'tickets', column: 'body' })).toBe(true);
    expect(sc.scanned('app', { table: 'tickets', column: 'body' })).toBe(true);
    expect(sc.scanned('app', { schema: 'crm', table: 'notes', column: 'text' })).toBe(true);
    expect(sc.scanned('app', { schema: 'public', table: 'tickets', column: 'title' })).toBe(false);
  });

  it('tells whether any pattern names a table, on a target', () => {
    expect(sc.mayMatchTable('app', undefined, 'customers')).toBe(true);
    const narrow = sensitive({ columns: [{ column: 'public.customers.email' }, { column: 'billing.invoices.iban', targets: ['prod'] }] });
    expect(narrow.mayMatchTable('app', 'public', 'orders')).toBe(false);
    expect(narrow.mayMatchTable('app', 'sales', 'customers')).toBe(false);
    expect(narrow.mayMatchTable('app', 'billing', 'invoices')).toBe(false);
    expect(narrow.mayMatchTable('prod', 'billing', 'invoices')).toBe(true);
    expect(narrow.mayMatchTable('prod', undefined, 'invoices')).toBe(true);
  });

  it('lists the patterns that apply on a target, split into parts', () => {
    expect(sc.patternsFor('staging')).toEqual([
      { schema: 'public', table: 'customers', column: 'email', strategy: 'partial', rule: 'column:public.customers.email' },
      { schema: 'public', table: 'customers', column: 'ssn', strategy: 'null', rule: 'ssn' },
      { schema: undefined, table: 'customers', column: 'card_*', strategy: 'hash', rule: 'column:customers.card_*' },
      { schema: '*', table: '*', column: 'password', strategy: 'redact', rule: 'column:*.*.password' },
    ]);
    expect(sc.patternsFor('prod-us')).toHaveLength(5);
    expect(sensitive({}).patternsFor('app')).toEqual([]);
  });

  it('exempts the configured subjects, groups and kinds only', () => {
    expect(sc.isExempt(who('carol', ['analysts', 'compliance']))).toBe(true);
    expect(sc.isExempt(who('auditor'))).toBe(true);
    expect(sc.isExempt(who('etl', [], 'service'))).toBe(true);
    expect(sc.isExempt(who('alice', ['analysts']))).toBe(false);
    expect(sc.isExempt(who('bot', ['compliance-readers'], 'agent'))).toBe(false);
    expect(sensitive({}).isExempt(who('alice', ['compliance']))).toBe(false);
  });
});

describe('SensitiveColumns.withExtra', () => {
  const masks: readonly MaskRuleColumns[] = [{ rule: 'agents-mask-orders', columns: ['orders.total', 'public.customers.email'], strategy: 'redact' }];

  it('adds the columns of policy mask rules, the strongest strategy winning, and leaves the original alone', () => {
    const s = sc.withExtra(masks);
    expect(s.match('app', { schema: 'public', table: 'orders', column: 'total' })).toEqual({ strategy: 'redact', rule: 'agents-mask-orders' });
    expect(s.match('app', { schema: 'public', table: 'customers', column: 'email' })).toEqual({ strategy: 'redact', rule: 'agents-mask-orders' });
    expect(s.match('app', { schema: 'public', table: 'customers', column: 'ssn' })?.strategy).toBe('null');
    expect(s.mayMatchTable('app', 'public', 'orders')).toBe(true);
    expect(s.patternsFor('app')).toHaveLength(sc.patternsFor('app').length + 2);
    expect(sc.match('app', { schema: 'public', table: 'orders', column: 'total' })).toBeUndefined();
  });

  it('keeps earlier additions, and adds nothing for an empty list', () => {
    expect(sc.withExtra([])).toBe(sc);
    const more = sc.withExtra(masks).withExtra([{ rule: 'r2', columns: ['orders.note'], strategy: 'hash' }]);
    expect(more.match('app', { table: 'orders', column: 'total' })?.rule).toBe('agents-mask-orders');
    expect(more.match('app', { table: 'orders', column: 'note' })?.rule).toBe('r2');
  });
});

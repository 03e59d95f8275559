import { describe, expect, it } from 'vitest';
import { Hazard, OperationClass } from '../analysis/types.js';
import { GUARDRAIL_NAMES, approverSpecSchema, policySchema, ruleSchema } from './config.js';

/** Parses and returns the issues as "path: message" lines (what an operator is shown). */
function problems(input: unknown): string[] {
  const result = policySchema.safeParse(input);
  if (result.success) return [];
  return result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

describe('policySchema', () => {
  it('denies by default, with no rules and no guardrail mode changed', () => {
    expect(policySchema.parse({})).toEqual({ default: 'deny', rules: [], guardrails: {} });
    expect(policySchema.parse({ default: 'review' }).default).toBe('review');
    expect(problems({ default: 'allow' })).toHaveLength(1);
  });

  it('accepts a full example', () => {
    const config = policySchema.parse({
      default: 'review',
      guardrails: { truncate: 'review', 'dynamic-sql': 'off' },
      rules: [
        {
          name: 'analysts-read-billing',
          description: 'analysts read billing data',
          identities: { groups: ['analysts'], kinds: ['human'] },
          targets: ['prod-*'],
          operations: ['read', 'copy-out'],
          objects: ['billing.*', '*.public_rates', 'orders'],
          effect: 'allow',
        },
        {
          name: 'agents-write-review',
          identities: { kinds: ['agent'] },
          operations: ['write'],
          effect: 'review',
          approvers: { groups: ['dba'] },
        },
        { name: 'etl-staging-drops', identities: { subjects: ['etl-bot'] }, objects: ['staging.*'], guardrails: { 'drop-table': 'off', truncate: 'off' } },
      ],
    });
    expect(config.rules[1]?.approvers).toEqual({ groups: ['dba'], subjects: [] });
    expect(config.rules[2]?.effect).toBeUndefined();
    expect(config.guardrails).toEqual({ truncate: 'review', 'dynamic-sql': 'off' });
  });

  it('names the valid operation classes when one is unknown', () => {
    const [problem, ...rest] = problems({ rules: [{ name: 'r', operations: ['read', 'select'], effect: 'allow' }] });
    expect(rest).toEqual([]);
    expect(problem).toMatch(/^rules\.0\.operations\.1: unknown operation class "select"; use one of /);
    for (const op of Object.values(OperationClass)) expect(problem).toContain(op);
  });

  it('names the valid guardrails when one is unknown, globally and in a rule', () => {
    const global = problems({ guardrails: { 'drop-tables': 'off' } });
    expect(global).toHaveLength(1);
    expect(global[0]).toMatch(/^guardrails: unknown guardrail "drop-tables"; the guardrails are /);
    for (const g of Object.values(Hazard)) expect(global[0]).toContain(g);

    const inRule = problems({ rules: [{ name: 'r', guardrails: { truncate: 'off', trunc: 'off', nope: 'review' } }] });
    expect(inRule).toHaveLength(1);
    expect(inRule[0]).toMatch(/^rules\.0\.guardrails: unknown guardrail "trunc", "nope"; the guardrails are drop-table, /);
  });

  it('names the valid modes when a guardrail mode is unknown', () => {
    expect(problems({ guardrails: { truncate: 'warn' } })).toEqual(['guardrails.truncate: unknown guardrail mode "warn"; use block, review or off']);
  });

  it('lists every hazard as a guardrail', () => {
    expect([...GUARDRAIL_NAMES].sort()).toEqual(Object.values(Hazard).sort());
  });

  it('refuses a rule name used twice', () => {
    expect(
      problems({
        rules: [
          { name: 'a', effect: 'allow' },
          { name: 'b', effect: 'deny' },
          { name: 'a', effect: 'review' },
        ],
      }),
    ).toEqual(['rules.2.name: rule name "a" is used twice']);
  });

  it('refuses a rule with neither an effect nor guardrails', () => {
    expect(problems({ rules: [{ name: 'nothing', identities: { groups: ['g'] } }] })).toEqual([
      'rules.0: a rule needs an effect (allow, deny, review or mask) or guardrails to change',
    ]);
  });

  it('refuses approvers on a rule that does not review', () => {
    for (const effect of ['allow', 'deny', undefined]) {
      const rule = { name: 'r', effect, guardrails: { truncate: 'review' }, approvers: { groups: ['dba'] } };
      expect(problems({ rules: [rule] })).toEqual(['rules.0.approvers: approvers only apply to a rule whose effect is review']);
    }
  });

  it('refuses approvers that name nobody', () => {
    expect(problems({ rules: [{ name: 'r', effect: 'review', approvers: {} }] })).toEqual([
      'rules.0.approvers: name at least one approver group or subject',
    ]);
    expect(approverSpecSchema.safeParse({ groups: [], subjects: [] }).success).toBe(false);
    expect(approverSpecSchema.parse({ subjects: ['carol'] })).toEqual({ groups: [], subjects: ['carol'] });
  });

  it('accepts table, schema.table and * patterns as objects', () => {
    for (const pattern of ['orders', 'billing.invoices', 'billing.*', '*.secrets', '*', '*.*', 'bill*.inv*', 'Billing.Invoices']) {
      expect(ruleSchema.safeParse({ name: 'r', effect: 'allow', objects: [pattern] }).success, pattern).toBe(true);
    }
  });

  it('refuses malformed object patterns', () => {
    for (const pattern of ['', 'a.b.c', '.orders', 'billing.', 'billing orders', 'billing. orders', 'a..b']) {
      const found = problems({ rules: [{ name: 'r', effect: 'allow', objects: [pattern] }] });
      expect(found, pattern).toHaveLength(1);
      expect(found[0], pattern).toMatch(/^rules\.0\.objects\.0: /);
    }
    expect(problems({ rules: [{ name: 'r', effect: 'allow', objects: ['a.b.c'] }] })).toEqual([
      'rules.0.objects.0: expected table, schema.table or a pattern with * such as billing.* or *.secrets',
    ]);
  });

  it('refuses empty lists, which would silently match nothing', () => {
    expect(problems({ rules: [{ name: 'r', effect: 'deny', targets: [] }] })).toEqual([
      'rules.0.targets: an empty targets list matches nothing; leave it out to match every target',
    ]);
    expect(problems({ rules: [{ name: 'r', effect: 'deny', identities: { groups: [] } }] })).toEqual([
      'rules.0.identities.groups: an empty groups list matches nothing; leave it out to match every group',
    ]);
    expect(problems({ rules: [{ name: 'r', effect: 'deny', identities: { subjects: [], kinds: [] } }] })).toHaveLength(2);
    expect(problems({ rules: [{ name: 'r', effect: 'deny', operations: [] }] })).toHaveLength(1);
    expect(problems({ rules: [{ name: 'r', effect: 'deny', objects: [] }] })).toHaveLength(1);
  });

  it('refuses unknown keys and bad rule names', () => {
    expect(problems({ rules: [{ name: 'r', effect: 'allow', target: ['prod'] }] })).toHaveLength(1);
    expect(problems({ rules: [{ name: 'r', effect: 'allow', identities: { group: ['x'] } }] })).toHaveLength(1);
    expect(problems({ rule: [] })).toHaveLength(1);
    expect(problems({ rules: [{ name: 'has space', effect: 'allow' }] })).toEqual(['rules.0.name: use letters, digits and _ . : -']);
    expect(problems({ rules: [{ name: 'r', effect: 'allow', identities: { kinds: ['robot'] } }] })).toHaveLength(1);
  });
});

describe('policySchema: mask rules', () => {
  it('takes the columns and the strategy of a mask rule (redact by default)', () => {
    const p = policySchema.parse({
      rules: [
        { name: 'agents-see-masked', identities: { kinds: ['agent'] }, effect: 'mask', mask: { columns: ['public.customers.email', 'orders.*'], strategy: 'hash' } },
        { name: 'contractors', identities: { groups: ['contractors'] }, effect: 'mask', mask: { columns: ['*.*.ssn'] } },
      ],
    });
    expect(p.rules[0]!.mask).toEqual({ columns: ['public.customers.email', 'orders.*'], strategy: 'hash' });
    expect(p.rules[1]!.mask).toEqual({ columns: ['*.*.ssn'], strategy: 'redact' });
  });

  it('needs `mask` with effect mask, and effect mask with `mask`', () => {
    const message = 'rules.0.mask: a rule with effect mask needs `mask: { columns: [...], strategy }`, and `mask` needs effect mask';
    expect(problems({ rules: [{ name: 'r', effect: 'mask' }] })).toEqual([message]);
    expect(problems({ rules: [{ name: 'r', effect: 'allow', mask: { columns: ['a.b'] } }] })).toEqual([message]);
    expect(problems({ rules: [{ name: 'r', guardrails: { truncate: 'off' }, mask: { columns: ['a.b'] } }] })).toEqual([message]);
  });

  it('says what is wrong with the columns or the strategy', () => {
    expect(problems({ rules: [{ name: 'r', effect: 'mask', mask: { columns: [] } }] })).toEqual([
      'rules.0.mask.columns: name at least one column (schema.table.column or table.column)',
    ]);
    expect(problems({ rules: [{ name: 'r', effect: 'mask', mask: { columns: ['email'] } }] })).toEqual([
      'rules.0.mask.columns.0: expected schema.table.column or table.column, with * wildcards (for example public.customers.email or *.*.ssn)',
    ]);
    expect(problems({ rules: [{ name: 'r', effect: 'mask', mask: { columns: ['a.b'], strategy: 'blur' } }] })).toEqual([
      'rules.0.mask.strategy: unknown masking strategy "blur"; use one of partial, hash, redact, null',
    ]);
    expect(problems({ rules: [{ name: 'r', effect: 'mask', mask: { columns: ['a.b'], how: 'x' } }] })).toHaveLength(1);
  });

  it('names mask among the effects when one is unknown', () => {
    expect(problems({ rules: [{ name: 'r', effect: 'hide' }] })).toEqual(['rules.0.effect: unknown effect "hide"; use allow, deny, review or mask']);
  });

  it('knows the sensitive-predicate guardrail, globally and in rules', () => {
    const p = policySchema.parse({
      guardrails: { 'sensitive-predicate': 'review' },
      rules: [{ name: 'agents', identities: { kinds: ['agent'] }, guardrails: { 'sensitive-predicate': 'block' } }],
    });
    expect(p.guardrails['sensitive-predicate']).toBe('review');
    expect(GUARDRAIL_NAMES).toContain('sensitive-predicate');
    expect(GUARDRAIL_NAMES).toHaveLength(16);
  });
});

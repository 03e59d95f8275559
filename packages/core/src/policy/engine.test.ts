import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Analysis, Hazard, ObjectAccess, ObjectRef, OperationClass } from '../analysis/types.js';
import type { ApproverSpec, Grant } from '../approvals/types.js';
import type { Identity } from '../identity/types.js';
import { GUARDRAIL_NAMES, policySchema } from './config.js';
import { Policy, type Decision } from './engine.js';

const APPROVERS: ApproverSpec = { groups: ['dba'], subjects: [] };

function policy(config: unknown = {}): Policy {
  return new Policy(policySchema.parse(config), { approvers: APPROVERS });
}

function who(subject: string, groups: readonly string[] = [], kind: Identity['kind'] = 'human'): Identity {
  return { subject, kind, groups, method: 'token' };
}

const alice = who('alice', ['analysts']);
const bot = who('etl-bot', ['etl'], 'agent');

/** `schema.name` or `name` (unqualified), as an object the statement accesses. */
function obj(access: ObjectAccess, ref: string, kind: ObjectRef['kind'] = 'table'): ObjectRef {
  const dot = ref.indexOf('.');
  return dot < 0 ? { name: ref, kind, access } : { schema: ref.slice(0, dot), name: ref.slice(dot + 1), kind, access };
}
const reads = (ref: string): ObjectRef => obj('read', ref);
const writes = (ref: string): ObjectRef => obj('write', ref);
const changes = (ref: string): ObjectRef => obj('ddl', ref);
const schema = (name: string, access: ObjectAccess = 'ddl'): ObjectRef => ({ name, kind: 'schema', access });

interface Facts {
  /** `undefined` (the default: none) or 'unknown' for an analysis without `objects`. */
  readonly objects?: readonly ObjectRef[] | 'unknown';
  readonly hazards?: readonly Hazard[];
  readonly unanalysable?: string;
}

/** One statement's analysis, as a dialect would report it. */
function statement(op: OperationClass | readonly OperationClass[], facts: Facts = {}): Analysis {
  const operations = typeof op === 'string' ? [op] : op;
  return {
    normalized: operations.join(' '),
    fingerprint: operations.join('-'),
    operations,
    statementCount: 1,
    commands: operations.map((o) => o.toUpperCase()),
    ...(facts.objects === 'unknown' ? {} : { objects: facts.objects ?? [] }),
    ...(facts.hazards ? { hazards: facts.hazards } : {}),
    ...(facts.unanalysable ? { unanalysable: facts.unanalysable } : {}),
  };
}

/** A request of several statements: the unions, and one part per statement. */
function request(...parts: Analysis[]): Analysis {
  return {
    normalized: parts.map((p) => p.normalized).join('; '),
    fingerprint: parts.map((p) => p.fingerprint).join('+'),
    operations: [...new Set(parts.flatMap((p) => p.operations))],
    statementCount: parts.length,
    commands: parts.flatMap((p) => p.commands),
    objects: parts.flatMap((p) => p.objects ?? []),
    hazards: [...new Set(parts.flatMap((p) => p.hazards ?? []))],
    parts,
  };
}

function grant(id: string, covers: { operations?: OperationClass[]; objects?: string[]; guardrails?: Hazard[] }): Grant {
  return {
    id,
    subject: 'alice',
    targets: [],
    operations: covers.operations ?? [],
    objects: covers.objects ?? [],
    guardrails: covers.guardrails ?? [],
    createdAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-01T01:00:00.000Z',
    grantedBy: { subject: 'carol', kind: 'human', groups: ['dba'], method: 'token' },
  };
}

interface Run {
  readonly identity?: Identity;
  readonly target?: string;
  readonly grants?: readonly Grant[];
}

/** Decides, and counts how often the grants were looked up. */
function decideCounting(p: Policy, analysis: Analysis, run: Run = {}): { decision: Decision; lookups: number } {
  let lookups = 0;
  const decision = p.decide(run.identity ?? alice, run.target ?? 'prod', analysis, () => {
    lookups++;
    return run.grants ?? [];
  });
  return { decision, lookups };
}

function decide(p: Policy, analysis: Analysis, run: Run = {}): Decision {
  return decideCounting(p, analysis, run).decision;
}

const effectOf = (p: Policy, analysis: Analysis, run: Run = {}): Decision['effect'] => decide(p, analysis, run).effect;

describe('Policy: the default', () => {
  it('denies what no rule covers, naming the operation, the objects, the subject and the target', () => {
    const d = decide(policy(), statement('read', { objects: [reads('billing.invoices')] }), { target: 'prod-eu' });
    expect(d.effect).toBe('deny');
    expect(d.rule).toBe('default');
    expect(d.reason).toBe('denied: no policy rule allows read (billing.invoices) for alice on target "prod-eu" (the policy denies by default)');
    expect(d.approvers).toBeUndefined();
  });

  it('holds for review instead when the default is review', () => {
    const d = decide(policy({ default: 'review' }), statement('write', { objects: [writes('orders')] }));
    expect(d).toMatchObject({ effect: 'review', rule: 'default', approvers: APPROVERS });
    expect(d.reason).toBe('held for review: no policy rule covers write (orders) for alice on target "prod"');
  });

  it('says why a statement was not understood', () => {
    const d = decide(policy(), statement('unknown', { unanalysable: 'unterminated dollar quote' }));
    expect(d.reason).toContain('no policy rule allows unknown (objects not known) (unterminated dollar quote) for alice');
  });

  it('shortens long object lists', () => {
    const d = decide(policy(), statement('read', { objects: ['a', 'b', 'c', 'd', 'e'].map(reads) }));
    expect(d.reason).toContain('read (a, b, c and 2 more)');
  });

  it('allows a request with nothing to decide', () => {
    expect(decide(policy(), statement([]))).toEqual({ effect: 'allow', rule: 'empty' });
  });
});

describe('Policy: who and where a rule applies to', () => {
  const everyone = { name: 'everyone', effect: 'allow' };

  it('applies a rule without identities or targets to everybody everywhere', () => {
    const p = policy({ rules: [everyone] });
    for (const identity of [alice, bot, who('x', [], 'service')]) {
      for (const target of ['prod', 'staging']) expect(decide(p, statement('write'), { identity, target }).rule).toBe('everyone');
    }
  });

  it('matches subjects, groups and kinds', () => {
    const bySubject = policy({ rules: [{ name: 's', identities: { subjects: ['etl-bot'] }, effect: 'allow' }] });
    expect(effectOf(bySubject, statement('read'), { identity: bot })).toBe('allow');
    expect(effectOf(bySubject, statement('read'), { identity: alice })).toBe('deny');

    const byGroup = policy({ rules: [{ name: 'g', identities: { groups: ['finance', 'analysts'] }, effect: 'allow' }] });
    expect(effectOf(byGroup, statement('read'), { identity: alice })).toBe('allow');
    expect(effectOf(byGroup, statement('read'), { identity: bot })).toBe('deny');
    expect(effectOf(byGroup, statement('read'), { identity: who('nogroups') })).toBe('deny');

    const byKind = policy({ rules: [{ name: 'k', identities: { kinds: ['agent', 'service'] }, effect: 'allow' }] });
    expect(effectOf(byKind, statement('read'), { identity: bot })).toBe('allow');
    expect(effectOf(byKind, statement('read'), { identity: alice })).toBe('deny');
  });

  it('requires every given identity list to match', () => {
    const p = policy({ rules: [{ name: 'agents-in-etl', identities: { groups: ['etl'], kinds: ['agent'], subjects: ['etl-bot', 'alice'] }, effect: 'allow' }] });
    expect(effectOf(p, statement('read'), { identity: bot })).toBe('allow');
    expect(effectOf(p, statement('read'), { identity: who('etl-bot', ['etl'], 'human') })).toBe('deny');
    expect(effectOf(p, statement('read'), { identity: who('etl-bot', ['other'], 'agent') })).toBe('deny');
    expect(effectOf(p, statement('read'), { identity: who('alice', ['etl'], 'service') })).toBe('deny');
    expect(effectOf(p, statement('read'), { identity: who('alice', ['etl'], 'agent') })).toBe('allow');
  });

  it('matches targets by glob, ignoring case', () => {
    const p = policy({ rules: [{ name: 't', targets: ['prod-*', 'reporting'], effect: 'allow' }] });
    for (const target of ['prod-eu', 'PROD-us', 'prod-', 'Reporting']) expect(effectOf(p, statement('read'), { target }), target).toBe('allow');
    for (const target of ['prod', 'staging', 'xprod-eu', 'reporting2']) expect(effectOf(p, statement('read'), { target }), target).toBe('deny');
  });

  it('keeps the answers apart for different identities and targets (rules worked out once per identity and target)', () => {
    const p = policy({ rules: [{ name: 't', targets: ['prod'], identities: { subjects: ['alice'] }, effect: 'allow' }] });
    for (let i = 0; i < 3; i++) {
      expect(effectOf(p, statement('read'), { identity: alice, target: 'prod' })).toBe('allow');
      expect(effectOf(p, statement('read'), { identity: alice, target: 'staging' })).toBe('deny');
      expect(effectOf(p, statement('read'), { identity: bot, target: 'prod' })).toBe('deny');
    }
  });
});

describe('Policy: operations and objects', () => {
  it('applies a rule to the operations it names only', () => {
    const p = policy({ rules: [{ name: 'readers', operations: ['read', 'copy-out'], effect: 'allow' }] });
    expect(decide(p, statement('read')).rule).toBe('readers');
    expect(decide(p, statement('copy-out')).rule).toBe('readers');
    expect(decide(p, statement('write'))).toMatchObject({ effect: 'deny', rule: 'default' });
  });

  it('allows only when the rule covers every object the operation reads', () => {
    const p = policy({ rules: [{ name: 'billing', operations: ['read'], objects: ['billing.*'], effect: 'allow' }] });
    expect(decide(p, statement('read', { objects: [reads('billing.invoices'), reads('billing.payments')] })).rule).toBe('billing');
    const d = decide(p, statement('read', { objects: [reads('billing.invoices'), reads('hr.salaries')] }));
    expect(d).toMatchObject({ effect: 'deny', rule: 'default' });
    expect(d.reason).toContain('read (billing.invoices, hr.salaries)');
  });

  it('checks each operation against the objects it acts on: reads for read, writes for write, ddl for ddl', () => {
    const rules = [
      { name: 'read-billing', operations: ['read'], objects: ['billing.*'], effect: 'allow' },
      { name: 'write-staging', operations: ['write'], objects: ['staging.*'], effect: 'allow' },
      { name: 'ddl-scratch', operations: ['ddl'], objects: ['scratch.*'], effect: 'allow' },
    ];
    const p = policy({ rules });
    const objects = [reads('billing.invoices'), writes('staging.load'), changes('scratch.t')];
    expect(effectOf(p, statement(['read', 'write', 'ddl'], { objects }))).toBe('allow');
    expect(effectOf(p, statement('write', { objects: [writes('staging.load')] }))).toBe('allow');
    expect(effectOf(p, statement('write', { objects: [writes('billing.invoices')] }))).toBe('deny');
    expect(effectOf(p, statement('ddl', { objects: [changes('staging.load')] }))).toBe('deny');
    expect(effectOf(p, statement('read', { objects: [reads('scratch.t'), writes('staging.load')] }))).toBe('deny');
  });

  it('checks what a statement of another class reads as a read of those objects', () => {
    const p = policy({
      rules: [
        { name: 'write-staging', operations: ['write', 'ddl'], objects: ['staging.*'], effect: 'allow' },
        { name: 'read-staging', operations: ['read'], objects: ['staging.*'], effect: 'allow' },
        { name: 'no-hr', objects: ['hr.*'], effect: 'deny' },
      ],
    });
    // INSERT INTO staging.load SELECT ... FROM staging.raw
    expect(effectOf(p, statement('write', { objects: [writes('staging.load'), reads('staging.raw')] }))).toBe('allow');
    // INSERT INTO staging.load SELECT ... FROM billing.invoices: the read is not allowed.
    const d = decide(p, statement('write', { objects: [writes('staging.load'), reads('billing.invoices')] }));
    expect(d).toMatchObject({ effect: 'deny', rule: 'default' });
    expect(d.reason).toContain('no policy rule allows read (billing.invoices) in a write statement for alice');
    // CREATE TABLE staging.copy AS SELECT * FROM hr.salaries: the deny on hr.* applies.
    expect(decide(p, statement('ddl', { objects: [changes('staging.copy'), reads('hr.salaries')] }))).toMatchObject({
      effect: 'deny',
      rule: 'no-hr',
      reason: 'denied by rule "no-hr": read (hr.salaries) in a ddl statement is not allowed for alice on target "prod"',
    });
  });

  it('lets a relaxing rule treat an unqualified object as public, and a restricting rule match it in any schema', () => {
    const p = policy({
      rules: [
        { name: 'read-public', operations: ['read'], objects: ['public.*'], effect: 'allow' },
        { name: 'review-secrets', operations: ['read'], objects: ['vault.secrets'], effect: 'review' },
      ],
    });
    expect(decide(p, statement('read', { objects: [reads('orders')] })).rule).toBe('read-public');
    expect(decide(p, statement('read', { objects: [reads('public.orders')] })).rule).toBe('read-public');
    // `secrets` may resolve to vault.secrets through the search_path: held.
    expect(decide(p, statement('read', { objects: [reads('secrets')] }))).toMatchObject({ effect: 'review', rule: 'review-secrets' });

    const vault = policy({ rules: [{ name: 'read-vault', operations: ['read'], objects: ['vault.*'], effect: 'allow' }] });
    expect(effectOf(vault, statement('read', { objects: [reads('secrets')] }))).toBe('deny');
  });

  it('lets a bare pattern name a table in any schema', () => {
    const p = policy({ rules: [{ name: 'orders', objects: ['orders'], effect: 'allow' }] });
    for (const ref of ['orders', 'public.orders', 'sales.orders']) expect(effectOf(p, statement('read', { objects: [reads(ref)] })), ref).toBe('allow');
    expect(effectOf(p, statement('read', { objects: [reads('sales.orders_archive')] }))).toBe('deny');
  });

  it('matches schema objects to schema.* patterns (and, when restricting, to any pattern in the schema)', () => {
    const p = policy({
      rules: [
        { name: 'ddl-scratch', operations: ['ddl'], objects: ['scratch.*'], effect: 'allow' },
        { name: 'ddl-billing-table', operations: ['ddl'], objects: ['billing.invoices'], effect: 'allow' },
      ],
    });
    expect(decide(p, statement('ddl', { objects: [schema('scratch')] })).rule).toBe('ddl-scratch');
    // Allowed DDL on one table of a schema is not DDL on the schema.
    expect(decide(p, statement('ddl', { objects: [schema('billing')] })).rule).toBe('default');

    const guarded = policy({
      rules: [
        { name: 'ddl', operations: ['ddl'], effect: 'allow' },
        { name: 'keep-invoices', operations: ['ddl'], objects: ['billing.invoices'], effect: 'deny' },
      ],
    });
    // ALTER SCHEMA billing RENAME TO ... would move billing.invoices out of the rule's reach.
    expect(decide(guarded, statement('ddl', { objects: [schema('billing')] })).rule).toBe('keep-invoices');
    expect(decide(guarded, statement('ddl', { objects: [schema('billing2')] })).rule).toBe('ddl');
  });

  it('matches objects and patterns ignoring case', () => {
    const p = policy({ rules: [{ name: 'billing', objects: ['Billing.INV*'], effect: 'allow' }] });
    expect(effectOf(p, statement('read', { objects: [reads('billing.invoices')] }))).toBe('allow');
    expect(effectOf(p, statement('read', { objects: [reads('BILLING.Invoices_2024')] }))).toBe('allow');
    expect(effectOf(p, statement('read', { objects: [reads('billing.payments')] }))).toBe('deny');
  });

  it('treats the special characters of a pattern literally, apart from *', () => {
    const p = policy({ rules: [{ name: 'dollar', objects: ['app.t$1', 'app.a+b', 'app.(x)'], effect: 'allow' }] });
    for (const ref of ['app.t$1', 'app.a+b', 'app.(x)']) expect(effectOf(p, statement('read', { objects: [reads(ref)] })), ref).toBe('allow');
    for (const ref of ['app.t1', 'app.aab', 'app.x']) expect(effectOf(p, statement('read', { objects: [reads(ref)] })), ref).toBe('deny');
  });

  it('matches patterns with many stars in time linear in the name', () => {
    const p = policy({ rules: [{ name: 'stars', targets: ['a*a*a*a*a*a*a*b'], objects: ['*a*a*a*a*a*a*b.*a*a*a*a*a*a*b'], effect: 'allow' }] });
    const long = 'a'.repeat(20_000);
    const started = Date.now();
    expect(effectOf(p, statement('read'), { target: long })).toBe('deny');
    expect(effectOf(p, statement('read', { objects: [reads(`${long}.${long}`)] }), { target: `${long}b` })).toBe('deny');
    expect(effectOf(p, statement('read', { objects: [reads(`${long}b.${long}b`)] }), { target: `${long}b` })).toBe('allow');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('lets * match any character, line breaks included, so a restricting rule cannot be slipped past', () => {
    const p = policy({
      rules: [
        { name: 'all', effect: 'allow' },
        { name: 'secrets', objects: ['*.*secret*'], effect: 'deny' },
      ],
    });
    for (const ref of ['app.secret', 'app.my\nsecret', 'app.secret\n', 'app.top\r\nsecret\u2028x', 'app.\u00e9secret\u{1f600}']) {
      expect(decide(p, statement('read', { objects: [reads(ref)] })).rule, JSON.stringify(ref)).toBe('secrets');
    }
    expect(effectOf(p, statement('read', { objects: [reads('app.\u00e9cret')] }))).toBe('allow');
  });

  it('lines up the pieces of a pattern without overlapping them', () => {
    const p = policy({ rules: [{ name: 'ab', objects: ['app.ab*ba', 'app.x*x*x'], effect: 'allow' }] });
    for (const ref of ['app.abba', 'app.abXba', 'app.ABBA', 'app.xxx', 'app.x-x-x']) expect(effectOf(p, statement('read', { objects: [reads(ref)] })), ref).toBe('allow');
    for (const ref of ['app.aba', 'app.ab', 'app.xx', 'app.x']) expect(effectOf(p, statement('read', { objects: [reads(ref)] })), ref).toBe('deny');
  });

  it('matches databases, roles and extensions by bare patterns only', () => {
    const p = policy({ rules: [{ name: 'ext', operations: ['ddl'], objects: ['pgcrypto'], effect: 'allow' }] });
    expect(effectOf(p, statement('ddl', { objects: [{ name: 'pgcrypto', kind: 'extension', access: 'ddl' }] }))).toBe('allow');
    const qualified = policy({ rules: [{ name: 'ext', operations: ['ddl'], objects: ['*.pgcrypto'], effect: 'allow' }] });
    expect(effectOf(qualified, statement('ddl', { objects: [{ name: 'pgcrypto', kind: 'extension', access: 'ddl' }] }))).toBe('deny');
  });

  it('never lets a rule scoped to objects allow what touches objects that are not known', () => {
    const p = policy({
      rules: [
        { name: 'staging-anything', objects: ['staging.*'], effect: 'allow' },
        { name: 'no-vault', identities: { kinds: ['agent'] }, objects: ['vault.*'], effect: 'deny' },
      ],
    });
    // A statement that was not understood: its objects are at best partial.
    const unknown = statement('unknown', { objects: [writes('staging.t')], unanalysable: 'syntax error' });
    expect(decide(p, unknown)).toMatchObject({ effect: 'deny', rule: 'default' });
    expect(decide(p, unknown, { identity: bot })).toMatchObject({ effect: 'deny', rule: 'no-vault' });
    // An analysis that does not report objects at all.
    expect(decide(p, statement('read', { objects: 'unknown' }))).toMatchObject({ effect: 'deny', rule: 'default' });
    expect(decide(p, statement('read', { objects: 'unknown' }), { identity: bot }).rule).toBe('no-vault');
    // Known to touch nothing: a rule scoped to objects covers it.
    expect(decide(p, statement('read', { objects: [] })).rule).toBe('staging-anything');
    // A rule that is not scoped to objects still applies.
    const all = policy({ rules: [{ name: 'unknown-ok', operations: ['unknown'], effect: 'allow' }] });
    expect(decide(all, unknown).rule).toBe('unknown-ok');
  });
});

describe('Policy: the strongest effect wins', () => {
  const rules = [
    { name: 'allow-all', effect: 'allow' },
    { name: 'review-writes', operations: ['write'], effect: 'review' },
    { name: 'deny-ddl', operations: ['ddl'], effect: 'deny' },
    { name: 'review-ddl', operations: ['ddl'], effect: 'review' },
  ];
  const p = policy({ rules });

  it('across rules, naming the rule that decided', () => {
    expect(decide(p, statement('read'))).toEqual({ effect: 'allow', rule: 'allow-all' });
    expect(decide(p, statement('write'))).toMatchObject({ effect: 'review', rule: 'review-writes', approvers: APPROVERS });
    expect(decide(p, statement('ddl', { objects: [changes('public.t')] }))).toEqual({
      effect: 'deny',
      rule: 'deny-ddl',
      reason: 'denied by rule "deny-ddl": ddl (public.t) is not allowed for alice on target "prod"',
    });
  });

  it('whatever the order of the rules', () => {
    const reversed = policy({ rules: [...rules].reverse() });
    expect(decide(reversed, statement('write')).rule).toBe('review-writes');
    expect(decide(reversed, statement('ddl')).rule).toBe('deny-ddl');
  });

  it('names the first of equally strong rules', () => {
    const q = policy({ rules: [{ name: 'first', effect: 'allow' }, { name: 'second', effect: 'allow' }] });
    expect(decide(q, statement('read')).rule).toBe('first');
  });

  it('across the operations of a statement', () => {
    expect(decide(p, statement(['read', 'write'])).rule).toBe('review-writes');
    expect(decide(p, statement(['read', 'ddl', 'write'])).rule).toBe('deny-ddl');
  });

  it('across the statements of a request', () => {
    expect(decide(p, request(statement('read'), statement('write'), statement('read'))).rule).toBe('review-writes');
    expect(decide(p, request(statement('write'), statement('ddl'), statement('read'))).rule).toBe('deny-ddl');
    expect(decide(p, request(statement('read'), statement('read'))).rule).toBe('allow-all');
  });

  it('names an explicit deny rather than the default one', () => {
    const q = policy({ rules: [{ name: 'no-ddl', operations: ['ddl'], effect: 'deny' }] });
    expect(decide(q, statement(['read', 'ddl'])).rule).toBe('no-ddl');
    expect(decide(q, request(statement('read'), statement('ddl'))).rule).toBe('no-ddl');
  });

  it('decides each statement of a request with its own facts, not the union', () => {
    const q = policy({
      rules: [
        { name: 'read-billing', operations: ['read'], objects: ['billing.*'], effect: 'allow' },
        { name: 'write-staging', operations: ['write'], objects: ['staging.*'], effect: 'allow' },
      ],
    });
    const r = request(statement('read', { objects: [reads('billing.invoices')] }), statement('write', { objects: [writes('staging.t')] }));
    expect(effectOf(q, r)).toBe('allow');
  });
});

describe('Policy: guardrails', () => {
  const allowAll = { name: 'allow-all', effect: 'allow' };

  it('blocks every hazard by default, even when a rule allows the operation', () => {
    const p = policy({ rules: [allowAll] });
    for (const hazard of ['drop-table', 'truncate', 'delete-without-where', 'alter-system', 'dynamic-sql'] as const) {
      const d = decide(p, statement('write', { objects: [writes('public.orders')], hazards: [hazard] }));
      expect(d, hazard).toMatchObject({ effect: 'deny', rule: `guardrail:${hazard}`, guardrail: hazard });
      expect(d.reason, hazard).toMatch(new RegExp(`^blocked by guardrail "${hazard}": .+\\(public\\.orders\\)$`));
    }
    expect(decide(p, statement('write', { objects: [writes('orders')], hazards: ['delete-without-where'] })).reason).toBe(
      'blocked by guardrail "delete-without-where": DELETE without a WHERE clause (or with one that is always true) deletes every row (orders)',
    );
  });

  it('follows the global modes', () => {
    const p = policy({ rules: [allowAll], guardrails: { truncate: 'off', 'drop-table': 'review' } });
    expect(decide(p, statement('ddl', { hazards: ['truncate'] }))).toEqual({ effect: 'allow', rule: 'allow-all' });
    expect(decide(p, statement('ddl', { objects: [changes('t')], hazards: ['drop-table'] }))).toMatchObject({
      effect: 'review',
      rule: 'guardrail:drop-table',
      guardrail: 'drop-table',
      reason: 'held for review by guardrail "drop-table": the statement drops a table (t)',
      approvers: APPROVERS,
    });
    expect(p.guardrailMode('truncate')).toBe('off');
    expect(p.guardrailMode('alter-drop')).toBe('block');
  });

  it('lets a rule change a guardrail for the identities and targets it matches', () => {
    const p = policy({
      rules: [allowAll, { name: 'etl-truncates', identities: { groups: ['etl'] }, targets: ['staging'], guardrails: { truncate: 'off' } }],
    });
    const truncate = statement('write', { hazards: ['truncate'] });
    expect(effectOf(p, truncate, { identity: bot, target: 'staging' })).toBe('allow');
    expect(effectOf(p, truncate, { identity: bot, target: 'prod' })).toBe('deny');
    expect(effectOf(p, truncate, { identity: alice, target: 'staging' })).toBe('deny');
  });

  it('scopes a rule that relaxes a guardrail to its objects: every object must match', () => {
    const p = policy({ rules: [allowAll, { name: 'staging-drops', objects: ['staging.*'], guardrails: { 'drop-table': 'off' } }] });
    const drop = (...refs: string[]) => statement('ddl', { objects: refs.map(changes), hazards: ['drop-table'] });
    expect(effectOf(p, drop('staging.a', 'staging.b'))).toBe('allow');
    expect(effectOf(p, drop('staging.a', 'public.b'))).toBe('deny');
    expect(effectOf(p, drop('a'))).toBe('deny'); // unqualified: public, not staging
    expect(effectOf(p, statement('ddl', { objects: 'unknown', hazards: ['drop-table'] }))).toBe('deny');
  });

  it('scopes a rule that tightens a guardrail to its objects: any object may match', () => {
    const p = policy({ rules: [allowAll, { name: 'protect-billing', objects: ['billing.*'], guardrails: { truncate: 'block' } }], guardrails: { truncate: 'off' } });
    const truncate = (...refs: string[]) => statement('write', { objects: refs.map(writes), hazards: ['truncate'] });
    expect(decide(p, truncate('public.a', 'billing.b')).rule).toBe('guardrail:truncate');
    expect(decide(p, truncate('public.a')).rule).toBe('allow-all');
    expect(decide(p, truncate('invoices')).rule).toBe('guardrail:truncate'); // unqualified: could be billing.invoices
  });

  it('takes the strictest of several matching rules', () => {
    const p = policy({
      rules: [
        allowAll,
        { name: 'off', guardrails: { truncate: 'off' } },
        { name: 'review', identities: { groups: ['etl'] }, guardrails: { truncate: 'review' } },
        { name: 'block-prod', targets: ['prod'], guardrails: { truncate: 'block' } },
      ],
    });
    const truncate = statement('write', { hazards: ['truncate'] });
    expect(effectOf(p, truncate, { identity: alice, target: 'staging' })).toBe('allow');
    expect(effectOf(p, truncate, { identity: bot, target: 'staging' })).toBe('review');
    expect(effectOf(p, truncate, { identity: bot, target: 'prod' })).toBe('deny');
    expect(effectOf(p, truncate, { identity: alice, target: 'prod' })).toBe('deny');
  });

  it('leaves other guardrails alone', () => {
    const p = policy({ rules: [allowAll, { name: 'off', guardrails: { truncate: 'off' } }] });
    expect(decide(p, statement('write', { hazards: ['truncate', 'delete-without-where'] })).rule).toBe('guardrail:delete-without-where');
  });

  it('gives the guardrail decision over a rule of the same strength, and a deny over a guardrail review', () => {
    const p = policy({ rules: [{ name: 'review-writes', operations: ['write'], effect: 'review' }], guardrails: { truncate: 'review' } });
    expect(decide(p, statement('write', { hazards: ['truncate'] })).rule).toBe('guardrail:truncate');
    const q = policy({ rules: [{ name: 'no-writes', operations: ['write'], effect: 'deny' }], guardrails: { truncate: 'review' } });
    expect(decide(q, statement('write', { hazards: ['truncate'] })).rule).toBe('no-writes');
  });
});

describe('Policy: mask rules', () => {
  const allowReads = { name: 'allow-reads', operations: ['read'], effect: 'allow' };
  const maskEmails = { name: 'mask-emails', effect: 'mask', mask: { columns: ['public.customers.email'], strategy: 'partial' } };
  const read = (...refs: string[]) => statement('read', { objects: refs.map(reads) });

  it('allow what they match, like allow, and list the columns they mask', () => {
    const p = policy({ rules: [maskEmails] });
    expect(p.hasMaskRules).toBe(true);
    expect(decide(p, read('public.customers'))).toEqual({
      effect: 'allow',
      rule: 'mask-emails',
      masks: [{ rule: 'mask-emails', columns: ['public.customers.email'], strategy: 'partial' }],
    });
    expect(policy({ rules: [allowReads] }).hasMaskRules).toBe(false);
  });

  it('add their masks to what another rule allows', () => {
    const p = policy({ rules: [allowReads, maskEmails] });
    expect(decide(p, read('public.customers'))).toMatchObject({ effect: 'allow', masks: [{ rule: 'mask-emails' }] });
    // Without a mask rule, no masks at all.
    expect(decide(policy({ rules: [allowReads] }), read('public.customers')).masks).toBeUndefined();
  });

  it('never weaken a deny or a review from another rule, nor the default', () => {
    const deny = policy({ rules: [maskEmails, { name: 'no-billing', objects: ['billing.*'], effect: 'deny' }] });
    const d = decide(deny, read('public.customers', 'billing.invoices'));
    expect(d).toMatchObject({ effect: 'deny', rule: 'no-billing' });
    expect(d.masks).toBeUndefined();
    const review = policy({ rules: [maskEmails, { name: 'review-agents', identities: { kinds: ['agent'] }, effect: 'review' }] });
    expect(decide(review, read('public.customers'), { identity: bot })).toMatchObject({ effect: 'review', rule: 'review-agents' });
    // A mask rule scoped to objects allows like allow: only when it covers every object.
    const scoped = policy({ rules: [{ ...maskEmails, objects: ['public.customers'] }] });
    expect(decide(scoped, read('public.customers', 'public.orders'))).toMatchObject({ effect: 'deny', rule: 'default' });
  });

  it('collect the masks of every matching mask rule, whichever rule decided', () => {
    const p = policy({
      rules: [
        allowReads,
        maskEmails,
        { name: 'agents-hash-ids', identities: { kinds: ['agent'] }, effect: 'mask', mask: { columns: ['*.*.id'], strategy: 'hash' } },
        { name: 'mask-billing', objects: ['billing.*'], effect: 'mask', mask: { columns: ['billing.*.iban'] } },
        { name: 'mask-writes', operations: ['write'], effect: 'mask', mask: { columns: ['orders.total'] } },
      ],
    });
    const rules = (d: Decision) => d.masks?.map((m) => m.rule);
    expect(rules(decide(p, read('public.customers')))).toEqual(['mask-emails']);
    expect(rules(decide(p, read('public.customers'), { identity: bot }))).toEqual(['mask-emails', 'agents-hash-ids']);
    expect(rules(decide(p, read('public.customers', 'billing.invoices'), { identity: bot }))).toEqual(['mask-emails', 'agents-hash-ids', 'mask-billing']);
    expect(decide(p, read('billing.invoices')).masks).toContainEqual({ rule: 'mask-billing', columns: ['billing.*.iban'], strategy: 'redact' });
    // A mask rule scoped to objects masks broadly: objects that are not known may be its own.
    const unknownObjects = policy({ rules: [{ name: 'allow-all', effect: 'allow' }, { name: 'mask-billing', objects: ['billing.*'], effect: 'mask', mask: { columns: ['billing.*.iban'] } }] });
    expect(rules(decide(unknownObjects, statement('read', { objects: 'unknown' })))).toEqual(['mask-billing']);
  });

  it('collect masks across the statements of a request', () => {
    const p = policy({
      rules: [allowReads, { name: 'mask-billing', objects: ['billing.*'], effect: 'mask', mask: { columns: ['billing.*.iban'] } }],
    });
    const r = request(read('public.a'), read('billing.invoices'));
    expect(decide(p, r).masks?.map((m) => m.rule)).toEqual(['mask-billing']);
  });

  it('keep their masks when a grant lifted a review', () => {
    const p = policy({ rules: [{ name: 'review-reads', operations: ['read'], effect: 'review' }, maskEmails] });
    const d = decide(p, read('public.orders'), { grants: [grant('g-1', { operations: ['read'] })] });
    expect(d).toMatchObject({ effect: 'allow', rule: 'grant:g-1', grant: 'g-1', volatile: true, masks: [{ rule: 'mask-emails' }] });
  });

  it('give the same masks for the same request (decisions can be cached as before)', () => {
    const p = policy({ rules: [allowReads, maskEmails] });
    expect(decide(p, read('public.customers'))).toEqual(decide(p, read('public.customers')));
    expect(decide(p, read('public.customers')).volatile).toBeUndefined();
  });
});

describe('Policy: the sensitive-predicate guardrail', () => {
  const allowAll = { name: 'allow-all', effect: 'allow' };
  const probing = statement('read', { objects: [reads('public.customers')], hazards: ['sensitive-predicate'] });

  it('is off by default, unlike every other guardrail', () => {
    const p = policy({ rules: [allowAll] });
    expect(p.guardrailMode('sensitive-predicate')).toBe('off');
    expect(p.usesGuardrail('sensitive-predicate')).toBe(false);
    expect(decide(p, probing)).toEqual({ effect: 'allow', rule: 'allow-all' });
    for (const name of GUARDRAIL_NAMES) if (name !== 'sensitive-predicate') expect(p.guardrailMode(name), name).toBe('block');
  });

  it('can be switched on globally', () => {
    const p = policy({ rules: [allowAll], guardrails: { 'sensitive-predicate': 'review' } });
    expect(p.usesGuardrail('sensitive-predicate')).toBe(true);
    expect(decide(p, probing)).toMatchObject({
      effect: 'review',
      rule: 'guardrail:sensitive-predicate',
      guardrail: 'sensitive-predicate',
      reason: 'held for review by guardrail "sensitive-predicate": the statement filters, joins, groups or sorts on a masked column, which can reveal its values (public.customers)',
    });
    expect(decide(policy({ rules: [allowAll], guardrails: { 'sensitive-predicate': 'block' } }), probing)).toMatchObject({ effect: 'deny', guardrail: 'sensitive-predicate' });
  });

  it('can be switched on for some identities by a rule, and off again for others', () => {
    const p = policy({ rules: [allowAll, { name: 'agents-no-probing', identities: { kinds: ['agent'] }, guardrails: { 'sensitive-predicate': 'block' } }] });
    expect(p.guardrailMode('sensitive-predicate')).toBe('off');
    expect(p.usesGuardrail('sensitive-predicate')).toBe(true);
    expect(decide(p, probing, { identity: bot })).toMatchObject({ effect: 'deny', rule: 'guardrail:sensitive-predicate' });
    expect(effectOf(p, probing, { identity: alice })).toBe('allow');
    const q = policy({ rules: [allowAll, { name: 'analysts-may', identities: { groups: ['analysts'] }, guardrails: { 'sensitive-predicate': 'off' } }], guardrails: { 'sensitive-predicate': 'block' } });
    expect(effectOf(q, probing, { identity: alice })).toBe('allow');
    expect(effectOf(q, probing, { identity: bot })).toBe('deny');
  });

  it('is lifted, in review mode, by a grant that lists it', () => {
    const p = policy({ rules: [allowAll], guardrails: { 'sensitive-predicate': 'review' } });
    expect(decide(p, probing, { grants: [grant('g-9', { guardrails: ['sensitive-predicate'] })] })).toMatchObject({ effect: 'allow', grant: 'g-9' });
  });
});

describe('Policy: grants', () => {
  const reviewWrites = { name: 'review-writes', operations: ['write'], effect: 'review' };

  it('lift a rule review for the operations and objects they cover', () => {
    const p = policy({ rules: [reviewWrites] });
    const write = statement('write', { objects: [writes('staging.t')] });
    const covering = grant('g-1', { operations: ['write'], objects: ['staging.*'] });
    expect(decide(p, write, { grants: [covering] })).toEqual({ effect: 'allow', rule: 'grant:g-1', grant: 'g-1', volatile: true });
    expect(decide(p, write, { grants: [grant('g-2', { operations: ['read'] })] })).toMatchObject({ effect: 'review', volatile: true });
    expect(decide(p, write, { grants: [grant('g-3', { operations: ['write'], objects: ['billing.*'] })] }).effect).toBe('review');
    expect(decide(p, statement('write', { objects: [writes('staging.t'), writes('billing.x')] }), { grants: [covering] }).effect).toBe('review');
    expect(decide(p, write, { grants: [grant('g-4', { operations: ['write'] })] }).rule).toBe('grant:g-4');
  });

  it('lift the default deny and the default review', () => {
    const read = statement('read', { objects: [reads('billing.invoices')] });
    const g = grant('g-1', { operations: ['read'], objects: ['billing.invoices'] });
    expect(decide(policy(), read, { grants: [g] })).toMatchObject({ effect: 'allow', rule: 'grant:g-1' });
    expect(decide(policy({ default: 'review' }), read, { grants: [g] })).toMatchObject({ effect: 'allow', rule: 'grant:g-1' });
    expect(decide(policy(), read, { grants: [] })).toMatchObject({ effect: 'deny', rule: 'default', volatile: true });
  });

  it('cover the reads of a statement of another class when they name its class', () => {
    const p = policy({ rules: [{ name: 'write-staging', operations: ['write'], objects: ['staging.*'], effect: 'allow' }] });
    const insertSelect = statement('write', { objects: [writes('staging.t'), reads('billing.x')] });
    // A grant made from an approved request lists its operations and objects.
    expect(decide(p, insertSelect, { grants: [grant('g-1', { operations: ['write'], objects: ['staging.t', 'billing.x'] })] }).rule).toBe('grant:g-1');
    expect(decide(p, insertSelect, { grants: [grant('g-2', { operations: ['read'], objects: ['billing.*'] })] }).rule).toBe('grant:g-2');
    expect(decide(p, insertSelect, { grants: [grant('g-3', { operations: ['ddl'], objects: ['billing.x'] })] }).rule).toBe('default');
  });

  it('do not cover objects that are not known unless they cover every object', () => {
    const unknown = statement('unknown', { unanalysable: 'syntax error' });
    expect(decide(policy(), unknown, { grants: [grant('g-1', { operations: ['unknown'], objects: ['staging.*'] })] }).rule).toBe('default');
    expect(decide(policy(), unknown, { grants: [grant('g-2', { operations: ['unknown'] })] }).rule).toBe('grant:g-2');
  });

  it('lift review-mode guardrails they list, and only those', () => {
    const p = policy({ rules: [{ name: 'allow-all', effect: 'allow' }], guardrails: { truncate: 'review', 'drop-table': 'review' } });
    const truncate = statement('write', { objects: [writes('staging.t')], hazards: ['truncate'] });
    expect(decide(p, truncate, { grants: [grant('g-1', { guardrails: ['truncate'] })] })).toEqual({ effect: 'allow', rule: 'grant:g-1', grant: 'g-1', volatile: true });
    // The grant lifts the guardrail, not the default deny.
    const onlyGuardrail = policy({ guardrails: { truncate: 'review' } });
    expect(decide(onlyGuardrail, truncate, { grants: [grant('g-1', { guardrails: ['truncate'] })] })).toMatchObject({ effect: 'deny', rule: 'default' });
    expect(decide(p, truncate, { grants: [grant('g-2', { guardrails: ['drop-table'] })] })).toMatchObject({ effect: 'review', rule: 'guardrail:truncate' });
    expect(decide(p, truncate, { grants: [grant('g-3', { guardrails: ['truncate'], objects: ['billing.*'] })] }).effect).toBe('review');
    expect(decide(p, truncate, { grants: [grant('g-4', { guardrails: ['truncate'], objects: ['staging.*'] })] }).effect).toBe('allow');
  });

  it('never lift a deny rule or a blocking guardrail, and those decisions do not depend on grants', () => {
    const everything = grant('g-all', {
      operations: ['read', 'write', 'ddl', 'unknown'],
      guardrails: ['truncate', 'drop-table'],
    });
    const p = policy({ rules: [{ name: 'allow-all', effect: 'allow' }, { name: 'no-ddl', operations: ['ddl'], effect: 'deny' }] });
    expect(decide(p, statement('ddl'), { grants: [everything] })).toMatchObject({ effect: 'deny', rule: 'no-ddl' });
    const blocked = decide(p, statement('write', { hazards: ['truncate'] }), { grants: [everything] });
    expect(blocked).toMatchObject({ effect: 'deny', rule: 'guardrail:truncate' });
    expect(blocked.volatile).toBeUndefined();
    // A review guardrail lifted by the grant, then an explicit deny: still final.
    const q = policy({ rules: [{ name: 'no-ddl', operations: ['ddl'], effect: 'deny' }], guardrails: { 'drop-table': 'review' } });
    const d = decide(q, statement('ddl', { hazards: ['drop-table'] }), { grants: [everything] });
    expect(d).toEqual(expect.objectContaining({ effect: 'deny', rule: 'no-ddl' }));
    expect(d.volatile).toBeUndefined();
  });

  it('are not looked up for a plain allow, and at most once per request otherwise', () => {
    const p = policy({ rules: [{ name: 'allow-reads', operations: ['read'], effect: 'allow' }, reviewWrites] });
    const plain = decideCounting(p, request(statement('read'), statement('read')));
    expect(plain).toEqual({ decision: { effect: 'allow', rule: 'allow-reads' }, lookups: 0 });

    const many = decideCounting(p, request(statement('write'), statement('ddl'), statement('write')), { grants: [grant('g-1', { operations: ['write', 'ddl'] })] });
    expect(many.lookups).toBe(1);
    expect(many.decision).toEqual({ effect: 'allow', rule: 'grant:g-1', grant: 'g-1', volatile: true });

    const denied = decideCounting(policy({ rules: [{ name: 'no', effect: 'deny' }] }), statement('write'));
    expect(denied).toEqual({ decision: expect.objectContaining({ effect: 'deny', rule: 'no' }), lookups: 0 });
  });

  it('mark every decision that consulted them as volatile, across the statements of a request', () => {
    const p = policy({ rules: [{ name: 'allow-reads', operations: ['read'], effect: 'allow' }, reviewWrites] });
    const d = decide(p, request(statement('write'), statement('read')), { grants: [grant('g-1', { operations: ['write'] })] });
    expect(d).toEqual({ effect: 'allow', rule: 'grant:g-1', grant: 'g-1', volatile: true });
    const held = decide(p, request(statement('read'), statement('write')));
    expect(held).toMatchObject({ effect: 'review', rule: 'review-writes', volatile: true });
  });
});

describe('Policy: approvers', () => {
  it('uses the rule’s own approvers, or the global ones', () => {
    const own: ApproverSpec = { groups: ['finance-leads'], subjects: ['carol'] };
    const p = policy({
      rules: [
        { name: 'finance', operations: ['write'], objects: ['billing.*'], effect: 'review', approvers: own },
        { name: 'others', operations: ['ddl'], effect: 'review' },
      ],
    });
    expect(decide(p, statement('write', { objects: [writes('billing.x')] })).approvers).toEqual(own);
    expect(decide(p, statement('ddl')).approvers).toEqual(APPROVERS);
    expect(decide(policy({ default: 'review' }), statement('ddl')).approvers).toEqual(APPROVERS);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties over random policies and requests.

const OPS: readonly OperationClass[] = ['read', 'write', 'ddl', 'admin', 'unknown', 'transaction'];
const HAZARDS: readonly Hazard[] = ['drop-table', 'truncate', 'delete-without-where'];
const PATTERNS = ['billing.*', 'billing.invoices', 'public.orders', 'orders', '*.secrets', 'hr.*', '*', 'staging.*', 'BILLING.inv*'];
const REFS = ['billing.invoices', 'billing.payments', 'orders', 'public.orders', 'hr.salaries', 'staging.t', 'vault.secrets', 'secrets'];
const IDENTITIES = [alice, bot, who('bob', ['analysts', 'etl'], 'service'), who('eve')];
const TARGETS = ['prod', 'staging', 'PROD'];

const someOf = <T>(values: readonly T[]) => fc.uniqueArray(fc.constantFrom(...values), { minLength: 1, maxLength: Math.min(3, values.length) });
const modes = fc.dictionary(fc.constantFrom(...HAZARDS), fc.constantFrom('block', 'review', 'off'), { maxKeys: 2 });

const ruleArb = fc
  .record(
    {
      identities: fc.record(
        { subjects: someOf(['alice', 'etl-bot', 'bob']), groups: someOf(['analysts', 'etl']), kinds: someOf(['human', 'agent', 'service']) },
        { requiredKeys: [] },
      ),
      targets: someOf(['prod', 'staging', 'prod*', '*']),
      operations: someOf(OPS),
      objects: someOf(PATTERNS),
      effect: fc.constantFrom('allow', 'deny', 'review'),
      guardrails: modes,
    },
    { requiredKeys: [] },
  )
  .filter((r) => r.effect !== undefined || r.guardrails !== undefined);

const policyArb = fc.record({
  default: fc.constantFrom('deny', 'review'),
  rules: fc.array(ruleArb, { maxLength: 6 }),
  guardrails: modes,
});

const objectArb = fc.record({ ref: fc.constantFrom(...REFS), access: fc.constantFrom<ObjectAccess>('read', 'write', 'ddl') });
const statementArb = fc
  .record({
    operations: someOf(OPS),
    objects: fc.option(fc.array(objectArb, { maxLength: 4 }), { freq: 6 }),
    hazards: fc.uniqueArray(fc.constantFrom(...HAZARDS), { maxLength: 2 }),
    schemaObject: fc.option(fc.constantFrom('billing', 'staging', 'hr'), { freq: 3 }),
  })
  .map(({ operations, objects, hazards, schemaObject }) =>
    statement(operations.slice(0, 2), {
      objects:
        objects === null
          ? 'unknown'
          : [...objects.map((o) => obj(o.access, o.ref)), ...(schemaObject === null ? [] : [schema(schemaObject)])],
      hazards,
    }),
  );
const analysisArb = fc.array(statementArb, { minLength: 1, maxLength: 3 }).map((parts) => (parts.length === 1 ? parts[0]! : request(...parts)));
const grantsArb = fc.array(
  fc.record({
    operations: fc.uniqueArray(fc.constantFrom(...OPS), { maxLength: 3 }),
    objects: fc.uniqueArray(fc.constantFrom(...PATTERNS), { maxLength: 2 }),
    guardrails: fc.uniqueArray(fc.constantFrom(...HAZARDS), { maxLength: 2 }),
  }),
  { maxLength: 2 },
).map((list) => list.map((g, i) => grant(`g-${i}`, g)));

const scenarioArb = fc.record({
  config: policyArb,
  analysis: analysisArb,
  identity: fc.constantFrom(...IDENTITIES),
  target: fc.constantFrom(...TARGETS),
  grants: grantsArb,
});

interface RandomPolicy {
  readonly default: string;
  readonly rules: readonly Record<string, unknown>[];
  readonly guardrails: Record<string, string>;
}

/** Names the rules (unique names are required) and builds the policy. */
function build(config: RandomPolicy): Policy {
  return policy({ ...config, rules: config.rules.map((r, i) => ({ ...r, name: `r${i}` })) });
}

const STRENGTH = { allow: 0, review: 1, deny: 2 } as const;
const strength = (d: Decision): number => STRENGTH[d.effect];

describe('Policy: properties', () => {
  const runs = { numRuns: 400 };

  it('adding a deny rule never weakens a decision', () => {
    fc.assert(
      fc.property(scenarioArb, ruleArb, ({ config, analysis, identity, target, grants }, extra) => {
        const { guardrails: _guardrails, ...scope } = extra;
        const before = decide(build(config), analysis, { identity, target, grants });
        const after = decide(build({ ...config, rules: [...config.rules, { ...scope, effect: 'deny' }] }), analysis, { identity, target, grants });
        expect(strength(after)).toBeGreaterThanOrEqual(strength(before));
      }),
      runs,
    );
  }, 60_000);

  it('taking away every allow never weakens a decision', () => {
    fc.assert(
      fc.property(scenarioArb, ({ config, analysis, identity, target, grants }) => {
        const before = decide(build(config), analysis, { identity, target, grants });
        const rules = config.rules
          .map((r) => (r['effect'] === 'allow' ? { ...r, effect: undefined } : r))
          .filter((r) => r['effect'] !== undefined || r['guardrails'] !== undefined);
        const after = decide(build({ ...config, rules }), analysis, { identity, target, grants });
        expect(strength(after)).toBeGreaterThanOrEqual(strength(before));
        if (before.effect === 'deny') expect(after.effect).toBe('deny');
      }),
      runs,
    );
  }, 60_000);

  it('grants only relax, and a decision not marked volatile does not depend on them', () => {
    fc.assert(
      fc.property(scenarioArb, ({ config, analysis, identity, target, grants }) => {
        const p = build(config);
        const without = decideCounting(p, analysis, { identity, target, grants: [] });
        const withGrants = decideCounting(p, analysis, { identity, target, grants });
        expect(strength(withGrants.decision)).toBeLessThanOrEqual(strength(without.decision));
        expect(without.lookups).toBeLessThanOrEqual(1);
        if (!without.decision.volatile) expect(withGrants.decision).toEqual(without.decision);
        if (without.lookups === 0) expect(without.decision.volatile).toBeUndefined();
      }),
      runs,
    );
  }, 60_000);

  it('the order of the rules does not change the effect', () => {
    fc.assert(
      fc.property(scenarioArb, ({ config, analysis, identity, target, grants }) => {
        const a = decide(build(config), analysis, { identity, target, grants });
        const b = decide(build({ ...config, rules: [...config.rules].reverse() }), analysis, { identity, target, grants });
        expect(b.effect).toBe(a.effect);
      }),
      runs,
    );
  }, 60_000);

  it('an unqualified object is allowed only where the same object in public is, and denied wherever it is', () => {
    fc.assert(
      fc.property(
        policyArb,
        fc.constantFrom(...OPS),
        fc.constantFrom<ObjectAccess>('read', 'write', 'ddl'),
        fc.constantFrom('orders', 'secrets', 'invoices'),
        fc.constantFrom(...IDENTITIES),
        (config, op, access, name, identity) => {
          const p = build(config);
          const bare = decide(p, statement(op, { objects: [obj(access, name)] }), { identity });
          const qualified = decide(p, statement(op, { objects: [obj(access, `public.${name}`)] }), { identity });
          // (Not "never weaker": a review rule on another schema may match the unqualified name
          // and hold what the default would deny, which is what a restricting rule should do.)
          if (bare.effect === 'allow') expect(qualified).toEqual(bare);
          if (qualified.effect === 'deny' && qualified.rule !== 'default') expect(bare.effect).toBe('deny');
        },
      ),
      runs,
    );
  }, 60_000);
});

describe('Policy: mask rules as the gateway uses them', () => {
  const masking = policy({
    rules: [
      { name: 'read', operations: ['read'], effect: 'allow' },
      { name: 'agents-mask-billing', identities: { kinds: ['agent'] }, objects: ['billing.*'], effect: 'mask', mask: { columns: ['billing.*.iban'], strategy: 'hash' } },
      { name: 'agents-mask-notes', identities: { kinds: ['agent'] }, effect: 'mask', mask: { columns: ['customers.notes'] } },
      { name: 'no-secrets', identities: { kinds: ['agent'] }, objects: ['vault.*'], effect: 'deny' },
    ],
  });

  it('allows and lists the columns every matching mask rule masks', () => {
    const d = decide(masking, statement('read', { objects: [reads('billing.accounts')] }), { identity: bot });
    expect(d.effect).toBe('allow');
    expect(d.masks).toEqual([
      { rule: 'agents-mask-billing', columns: ['billing.*.iban'], strategy: 'hash' },
      { rule: 'agents-mask-notes', columns: ['customers.notes'], strategy: 'redact' },
    ]);
  });

  it('a mask rule allows by itself, matches only its identities and objects, and never weakens a deny', () => {
    expect(decide(masking, statement('write', { objects: [writes('public.customers')] }), { identity: bot })).toMatchObject({ effect: 'allow', rule: 'agents-mask-notes' });
    expect(decide(masking, statement('read', { objects: [reads('billing.accounts')] })).masks).toBeUndefined();
    expect(decide(masking, statement('read', { objects: [reads('public.customers')] }), { identity: bot }).masks?.map((m) => m.rule)).toEqual(['agents-mask-notes']);
    expect(decide(masking, statement('read', { objects: [reads('vault.keys')] }), { identity: bot })).toMatchObject({ effect: 'deny', rule: 'no-secrets' });
    expect(masking.hasMaskRules).toBe(true);
  });

  it('needs its mask and nothing else does', () => {
    expect(() => policy({ rules: [{ name: 'm', effect: 'mask' }] })).toThrow(/effect mask needs `mask/);
    expect(() => policy({ rules: [{ name: 'm', effect: 'allow', mask: { columns: ['a.b'] } }] })).toThrow(/effect mask/);
  });
});

describe('Policy: sensitive-predicate switched on globally or per identity', () => {
  const probing = statement('read', { objects: [reads('public.customers')], hazards: ['sensitive-predicate'] });

  it('is off unless switched on', () => {
    const p = policy({ rules: [{ name: 'read', operations: ['read'], effect: 'allow' }] });
    expect(p.guardrailMode('sensitive-predicate')).toBe('off');
    expect(p.usesGuardrail('sensitive-predicate')).toBe(false);
    expect(decide(p, probing).effect).toBe('allow');
  });

  it('can be switched on globally or for some identities', () => {
    const global = policy({ rules: [{ name: 'read', operations: ['read'], effect: 'allow' }], guardrails: { 'sensitive-predicate': 'review' } });
    expect(decide(global, probing)).toMatchObject({ effect: 'review', guardrail: 'sensitive-predicate' });
    const agents = policy({
      rules: [
        { name: 'read', operations: ['read'], effect: 'allow' },
        { name: 'agents-no-probing', identities: { kinds: ['agent'] }, guardrails: { 'sensitive-predicate': 'block' } },
      ],
    });
    expect(agents.usesGuardrail('sensitive-predicate')).toBe(true);
    expect(decide(agents, probing, { identity: bot })).toMatchObject({ effect: 'deny', rule: 'guardrail:sensitive-predicate' });
    expect(decide(agents, probing).effect).toBe('allow');
  });
});

import type { Analysis, Hazard, ObjectRef, OperationClass } from '../analysis/types.js';
import type { ApproverSpec, Grant } from '../approvals/types.js';
import type { Identity } from '../identity/types.js';
import { glob } from '../util/glob.js';
import type { MaskRuleColumns } from '../masking/sensitive.js';
import type { GuardrailMode, PolicyConfig, PolicyEffect, PolicyRuleConfig } from './config.js';

/** What the policy says about a request. */
export interface Decision {
  readonly effect: PolicyEffect;
  /**
   * What made the decision: a rule name, `default` (no rule covered the operation),
   * `guardrail:<name>`, or `grant:<id>` (a time-boxed grant allowed what would have been
   * reviewed).
   */
  readonly rule: string;
  /** The guardrail behind a deny or review, when one was. */
  readonly guardrail?: Hazard;
  /** For deny and review: why, in words for the client and the approver. */
  readonly reason?: string;
  /** For review: who may approve. */
  readonly approvers?: ApproverSpec;
  /** Set when a grant lifted a review or the default deny. */
  readonly grant?: string;
  /**
   * True when the decision consulted time-boxed grants: it can change as grants come and go,
   * so it must not be cached.
   */
  readonly volatile?: boolean;
  /** For allow: the columns `mask` rules mask in this statement's results. */
  readonly masks?: readonly MaskRuleColumns[];
}

/** Deny over review over allow. */
const STRENGTH: Record<PolicyEffect, number> = { allow: 0, review: 1, deny: 2 };

/** What each guardrail stops, for messages. */
const HAZARD_TEXT: Record<Hazard, string> = {
  'drop-table': 'the statement drops a table',
  'drop-schema': 'the statement drops a schema',
  'drop-database': 'the statement drops a database',
  truncate: 'the statement truncates a table',
  'delete-without-where': 'DELETE without a WHERE clause (or with one that is always true) deletes every row',
  'update-without-where': 'UPDATE without a WHERE clause (or with one that is always true) changes every row',
  'alter-drop': 'the statement drops part of a table (a column, a constraint, a default ...)',
  'grant-revoke': 'the statement grants or revokes privileges',
  'role-change': 'the statement creates, changes or switches a database role',
  'alter-system': 'ALTER SYSTEM changes the server configuration',
  'copy-program': 'COPY ... PROGRAM runs a shell command on the database server',
  'server-file': 'the statement reads or writes files on the database server',
  'large-object': 'the statement uses large-object functions',
  'create-extension': 'CREATE EXTENSION loads code into the database',
  'dynamic-sql': 'the statement runs SQL built at run time, which cannot be analysed before it runs',
  'sensitive-predicate': 'the statement filters, joins, groups or sorts on a masked column, which can reveal its values',
};

/** Guardrails that are off unless a policy switches them on (every other one blocks by default). */
const OFF_BY_DEFAULT: ReadonlySet<Hazard> = new Set<Hazard>(['sensitive-predicate']);

interface ObjectMatcher {
  /**
   * Matches an object. `relaxing`: the rule lets something happen (allow, a guardrail switched
   * down, a grant), so the match is narrow; otherwise it restricts, and the match is broad.
   */
  (object: ObjectRef, relaxing: boolean): boolean;
}

interface CompiledPattern {
  /** Absent for a bare `table` pattern, which names the table in any schema. */
  readonly schema: ((value: string) => boolean) | undefined;
  readonly name: (value: string) => boolean;
  /** `schema.*`: every object of the schema, so the schema itself too. */
  readonly wholeSchema: boolean;
}

function objectMatcher(patterns: readonly string[]): ObjectMatcher {
  const compiled: CompiledPattern[] = patterns.map((p) => {
    const dot = p.indexOf('.');
    return dot < 0
      ? { schema: undefined, name: glob(p), wholeSchema: false }
      : { schema: glob(p.slice(0, dot)), name: glob(p.slice(dot + 1)), wholeSchema: p.slice(dot + 1) === '*' };
  });
  return (o, relaxing) => {
    for (const c of compiled) {
      if (o.kind === 'schema') {
        // A schema matches a bare pattern naming it. It matches `schema.*` (all of its objects);
        // a rule that restricts also matches it on `schema.table`, since acting on the schema
        // (dropping, renaming it ...) acts on the table.
        if (c.schema === undefined ? c.name(o.name) : c.schema(o.name) && (c.wholeSchema || !relaxing)) return true;
        continue;
      }
      if (o.kind !== 'table' && o.kind !== 'function' && o.kind !== 'other') {
        if (c.schema === undefined && c.name(o.name)) return true;
        continue;
      }
      if (!c.name(o.name)) continue;
      if (c.schema === undefined) return true;
      if (o.schema !== undefined) {
        if (c.schema(o.schema)) return true;
        continue;
      }
      // Unqualified in the statement: the schema depends on the session's search_path. A rule
      // that relaxes counts it as `public`; one that restricts matches whatever the schema.
      if (!relaxing || c.schema('public')) return true;
    }
    return false;
  };
}

interface CompiledRule {
  readonly config: PolicyRuleConfig;
  readonly name: string;
  /** The rule's effect as the decision sees it (`mask` allows). */
  readonly effect: PolicyEffect | undefined;
  readonly matchesIdentity: (identity: Identity) => boolean;
  readonly matchesTarget: (target: string) => boolean;
  readonly operations: ReadonlySet<OperationClass> | undefined;
  readonly objects: ObjectMatcher | undefined;
}

function compileRule(rule: PolicyRuleConfig): CompiledRule {
  const ids = rule.identities;
  const subjects = ids?.subjects ? new Set(ids.subjects) : undefined;
  const groups = ids?.groups ? new Set(ids.groups) : undefined;
  const kinds = ids?.kinds ? new Set<string>(ids.kinds) : undefined;
  const targets = rule.targets?.map(glob);
  return {
    config: rule,
    name: rule.name,
    effect: rule.effect === 'mask' ? 'allow' : rule.effect,
    matchesIdentity: (i) =>
      (subjects === undefined || subjects.has(i.subject)) &&
      (groups === undefined || i.groups.some((g) => groups.has(g))) &&
      (kinds === undefined || kinds.has(i.kind)),
    matchesTarget: (t) => targets === undefined || targets.some((m) => m(t)),
    operations: rule.operations ? new Set(rule.operations) : undefined,
    objects: rule.objects ? objectMatcher(rule.objects) : undefined,
  };
}

/** The rules that match one identity on one target. */
interface Applicable {
  /** Rules with an effect. */
  readonly effects: readonly CompiledRule[];
  /** Rules that change guardrail modes. */
  readonly guardrails: readonly CompiledRule[];
  /** Rules with effect `mask`. */
  readonly masks: readonly CompiledRule[];
}

/**
 * The objects an operation of a statement acts on; `undefined` (not known) stays so. The
 * operations without an access of their own (admin, privilege, unknown ...) act on all of them.
 */
function objectsFor(op: OperationClass, objects: readonly ObjectRef[] | undefined): readonly ObjectRef[] | undefined {
  if (objects === undefined) return undefined;
  switch (op) {
    case 'read':
    case 'copy-out':
      return objects.filter((o) => o.access === 'read');
    case 'write':
    case 'copy-in':
      return objects.filter((o) => o.access === 'write');
    case 'ddl':
      return objects.filter((o) => o.access === 'ddl');
    default:
      return objects;
  }
}

/**
 * True when `m` matches every object (relaxing) or at least one (restricting). Objects that
 * are not known (`undefined`) could be any: a relaxing rule scoped to objects never matches
 * them, a restricting one always does.
 */
function objectsMatch(m: ObjectMatcher | undefined, objects: readonly ObjectRef[] | undefined, relaxing: boolean): boolean {
  if (m === undefined) return true;
  if (objects === undefined) return !relaxing;
  if (relaxing) return objects.every((o) => m(o, true));
  return objects.some((o) => m(o, false));
}

function describeObjects(objects: readonly ObjectRef[] | undefined): string {
  if (objects === undefined) return ' (objects not known)';
  const names = [...new Set(objects.map((o) => (o.schema ? `${o.schema}.${o.name}` : o.name)))];
  if (names.length === 0) return '';
  return names.length <= 3 ? ` (${names.join(', ')})` : ` (${names.slice(0, 3).join(', ')} and ${names.length - 3} more)`;
}

/** One check of a statement: an operation over the objects it acts on. */
interface Check {
  readonly op: OperationClass;
  readonly objects: readonly ObjectRef[] | undefined;
  /** For the reads of a statement of another class: that class. */
  readonly within?: OperationClass;
}

/**
 * The checks of a statement: one per operation class, and a `read` of the objects it reads
 * when its class does not cover them (INSERT ... SELECT, CREATE TABLE ... AS, UPDATE ... FROM),
 * so that what a statement reads is always checked as a read.
 */
function checksOf(operations: readonly OperationClass[], objects: readonly ObjectRef[] | undefined): readonly Check[] {
  const checks: Check[] = operations.map((op) => ({ op, objects: objectsFor(op, objects) }));
  if (objects === undefined || operations.includes('read') || operations.includes('copy-out')) return checks;
  const within = operations.find((op) => op === 'write' || op === 'copy-in' || op === 'ddl');
  if (within === undefined) return checks;
  const reads = objects.filter((o) => o.access === 'read');
  if (reads.length > 0) checks.push({ op: 'read', objects: reads, within });
  return checks;
}

const GRANT_MATCHERS = new WeakMap<Grant, ObjectMatcher>();

function grantObjects(g: Grant): ObjectMatcher {
  let m = GRANT_MATCHERS.get(g);
  if (m === undefined) GRANT_MATCHERS.set(g, (m = objectMatcher(g.objects)));
  return m;
}

/** Grants, looked up once per request and only when one could change the outcome. */
class GrantLookup {
  #list: readonly Grant[] | undefined;
  consulted = false;
  constructor(readonly load: () => readonly Grant[]) {}

  /** A grant that lifts a review (or the default deny) of `check`, or of guardrail `hazard`. */
  covering(check: Check | undefined, hazard: Hazard | undefined, objects: readonly ObjectRef[] | undefined): Grant | undefined {
    this.consulted = true;
    for (const g of (this.#list ??= this.load())) {
      if (check !== undefined && !g.operations.includes(check.op) && (check.within === undefined || !g.operations.includes(check.within))) continue;
      if (hazard !== undefined && !g.guardrails.includes(hazard)) continue;
      if (g.objects.length > 0 && !objectsMatch(grantObjects(g), objects, true)) continue;
      return g;
    }
    return undefined;
  }
}

/** The decision for a request with nothing to decide (no operations, no hazards). */
const ALLOW_EMPTY: Decision = Object.freeze({ effect: 'allow', rule: 'empty' });

/**
 * A compiled policy: rules, guardrails and the default. Immutable; a reload builds a new one.
 *
 * How a statement is decided:
 * - each operation class of the statement is covered by the rules that match the identity,
 *   the target, the operation and the objects (an allowing rule must cover every object the
 *   operation touches; a denying or reviewing rule any of them); no such rule means the
 *   policy's default (deny unless configured as review). What a statement of another class
 *   reads (INSERT ... SELECT, CREATE TABLE ... AS) is also checked as a `read` of those objects;
 * - the objects of a statement that was not understood (`unknown`), or of an analysis without
 *   `objects`, are not known: a rule scoped to objects then never allows, and always denies or
 *   reviews. (A dialect that reports objects sets `objects`, empty when there are none.) An
 *   unqualified object is `public` to a rule that relaxes and any schema to one that restricts;
 * - each hazard the statement carries meets its guardrail: `block` denies, `review` holds,
 *   `off` lets it be. Every guardrail blocks unless configured, but `sensitive-predicate`,
 *   which is off until a policy switches it on. A rule that matches the identity and target
 *   (and, if it names objects, the statement's objects) can change a guardrail's mode; if
 *   several do, the strictest of theirs applies;
 * - a time-boxed grant lifts a review (and the default deny) for what it covers; explicit
 *   deny rules and blocking guardrails stay;
 * - the strongest effect wins: deny over review over allow. A request with several
 *   statements gets the strongest decision of its statements;
 * - a `mask` rule allows as `allow` does. When the request is allowed (by whatever rule or
 *   grant), every `mask` rule that matches the identity, the target and one of its
 *   statements (objects matched broadly, as a restriction) lists its columns in `masks`.
 */
export class Policy {
  readonly defaultEffect: 'deny' | 'review';
  readonly #rules: readonly CompiledRule[];
  readonly #guardrails: Readonly<Partial<Record<Hazard, GuardrailMode>>>;
  readonly #approvers: ApproverSpec;
  /** The rules that match an identity on a target, worked out once per identity and target. */
  readonly #applicable = new WeakMap<Identity, Map<string, Applicable>>();

  constructor(config: PolicyConfig, options: { readonly approvers: ApproverSpec }) {
    this.defaultEffect = config.default;
    this.#rules = config.rules.map(compileRule);
    this.#guardrails = config.guardrails;
    this.#approvers = options.approvers;
  }

  get ruleCount(): number {
    return this.#rules.length;
  }

  /** The global mode of a guardrail (before rules change it). */
  guardrailMode(name: Hazard): GuardrailMode {
    return this.#guardrails[name] ?? (OFF_BY_DEFAULT.has(name) ? 'off' : 'block');
  }

  /** True when the guardrail can apply to anyone (on globally, or switched on by a rule). */
  usesGuardrail(name: Hazard): boolean {
    if (this.guardrailMode(name) !== 'off') return true;
    return this.#rules.some((r) => {
      const m = r.config.guardrails?.[name];
      return m !== undefined && m !== 'off';
    });
  }

  /** True when a rule has effect `mask`. */
  get hasMaskRules(): boolean {
    return this.#rules.some((r) => r.config.effect === 'mask');
  }

  /**
   * Decides a request. `grants` is called only when a grant could change the outcome (a
   * review or the default deny), at most once, so the common path does not look them up.
   */
  decide(identity: Identity, target: string, analysis: Analysis, grants: () => readonly Grant[]): Decision {
    const parts = analysis.parts ?? [analysis];
    const rules = this.#applicableTo(identity, target);
    const lookup = new GrantLookup(grants);
    let best: Decision | undefined;
    for (const part of parts) {
      const d = this.#decideStatement(identity, target, part, rules, lookup);
      if (best === undefined || stronger(d, best)) best = d;
      if (isFinal(best)) break;
    }
    if (best === undefined) return ALLOW_EMPTY;
    if (best.effect === 'allow' && rules.masks.length > 0) {
      const masks = this.#masksFor(parts, rules.masks);
      if (masks.length > 0) best = { ...best, masks };
    }
    // A deny by a rule or a guardrail stands whatever the grants (and is preferred to the
    // default's, which a grant can lift); any other decision that consulted them can change.
    return lookup.consulted && !isFinal(best) ? { ...best, volatile: true } : best;
  }

  /** The columns of every `mask` rule that matches a statement of the request. */
  #masksFor(parts: readonly Analysis[], rules: readonly CompiledRule[]): MaskRuleColumns[] {
    const out: MaskRuleColumns[] = [];
    for (const r of rules) {
      const matched = parts.some((st) => {
        if (r.operations !== undefined && !st.operations.some((op) => r.operations!.has(op))) return false;
        const objects = st.objects === undefined || st.operations.includes('unknown') ? undefined : st.objects;
        // Masking restricts: matched broadly.
        return objectsMatch(r.objects, objects, false);
      });
      if (matched) out.push({ rule: r.name, columns: r.config.mask!.columns, strategy: r.config.mask!.strategy });
    }
    return out;
  }

  #applicableTo(identity: Identity, target: string): Applicable {
    let byTarget = this.#applicable.get(identity);
    if (byTarget === undefined) this.#applicable.set(identity, (byTarget = new Map()));
    let a = byTarget.get(target);
    if (a === undefined) {
      const rules = this.#rules.filter((r) => r.matchesIdentity(identity) && r.matchesTarget(target));
      a = {
        effects: rules.filter((r) => r.config.effect !== undefined),
        guardrails: rules.filter((r) => r.config.guardrails !== undefined),
        masks: rules.filter((r) => r.config.effect === 'mask'),
      };
      byTarget.set(target, a);
    }
    return a;
  }

  #decideStatement(identity: Identity, target: string, st: Analysis, rules: Applicable, grants: GrantLookup): Decision {
    const objects = st.objects === undefined || st.operations.includes('unknown') ? undefined : st.objects;
    let best: Decision | undefined;
    const consider = (d: Decision): void => {
      if (best === undefined || stronger(d, best)) best = d;
    };

    // Guardrails first: on equal strength their message is the more specific one.
    for (const hazard of st.hazards ?? []) {
      const global = this.guardrailMode(hazard);
      let mode: GuardrailMode | undefined;
      for (const r of rules.guardrails) {
        const m = r.config.guardrails?.[hazard];
        if (m === undefined) continue;
        if (!objectsMatch(r.objects, objects, GUARDRAIL_STRENGTH[m] < GUARDRAIL_STRENGTH[global])) continue;
        if (mode === undefined || GUARDRAIL_STRENGTH[m] > GUARDRAIL_STRENGTH[mode]) mode = m;
      }
      mode ??= global;
      if (mode === 'off') continue;
      const what = `${HAZARD_TEXT[hazard]}${describeObjects(objects ?? st.objects)}`;
      if (mode === 'block') {
        return {
          effect: 'deny',
          rule: `guardrail:${hazard}`,
          guardrail: hazard,
          reason: `blocked by guardrail "${hazard}": ${what}`,
        };
      }
      const grant = grants.covering(undefined, hazard, objects);
      if (grant) {
        // Named if the statement is allowed, so the audit trail shows the grant was used.
        consider({ effect: 'allow', rule: `grant:${grant.id}`, grant: grant.id });
        continue;
      }
      consider({
        effect: 'review',
        rule: `guardrail:${hazard}`,
        guardrail: hazard,
        reason: `held for review by guardrail "${hazard}": ${what}`,
        approvers: this.#approvers,
      });
    }

    for (const check of checksOf(st.operations, objects)) {
      const { op } = check;
      let rule: CompiledRule | undefined;
      for (const r of rules.effects) {
        const e = r.effect!;
        if (r.operations !== undefined && !r.operations.has(op)) continue;
        if (rule !== undefined && STRENGTH[e] <= STRENGTH[rule.effect!]) continue;
        if (!objectsMatch(r.objects, check.objects, e === 'allow')) continue;
        rule = r;
        if (e === 'deny') break;
      }
      const effect = rule?.effect;
      if (effect === 'allow') {
        consider({ effect: 'allow', rule: rule!.name });
        continue;
      }
      const what = () => {
        const within = check.within ? ` in a ${check.within} statement` : '';
        const unknown = op === 'unknown' && st.unanalysable ? ` (${st.unanalysable})` : '';
        return `${op}${describeObjects(check.objects)}${within}${unknown}`;
      };
      if (effect === 'deny') {
        // Final: no grant lifts it.
        return {
          effect: 'deny',
          rule: rule!.name,
          reason: `denied by rule "${rule!.name}": ${what()} is not allowed for ${identity.subject} on target "${target}"`,
        };
      }
      const grant = grants.covering(check, undefined, check.objects);
      if (grant) {
        consider({ effect: 'allow', rule: `grant:${grant.id}`, grant: grant.id });
        continue;
      }
      if (rule !== undefined) {
        consider({
          effect: 'review',
          rule: rule.name,
          reason: `held for review by rule "${rule.name}": ${what()} by ${identity.subject} on target "${target}" needs an approval`,
          approvers: rule.config.approvers ?? this.#approvers,
        });
        continue;
      }
      consider(
        this.defaultEffect === 'deny'
          ? {
              effect: 'deny',
              rule: 'default',
              reason: `denied: no policy rule allows ${what()} for ${identity.subject} on target "${target}" (the policy denies by default)`,
            }
          : {
              effect: 'review',
              rule: 'default',
              reason: `held for review: no policy rule covers ${what()} for ${identity.subject} on target "${target}"`,
              approvers: this.#approvers,
            },
      );
    }
    return best ?? ALLOW_EMPTY;
  }
}

const GUARDRAIL_STRENGTH: Record<GuardrailMode, number> = { off: 0, review: 1, block: 2 };

/** A deny no grant can lift: by a rule or a blocking guardrail. */
function isFinal(d: Decision): boolean {
  return d.effect === 'deny' && d.rule !== 'default';
}

/**
 * True when `d` should replace `best`: it is stronger or, as strong, it says more: a deny no
 * grant can lift over the default's, an allow that needed a grant over one that did not (so
 * the audit trail names the grant).
 */
function stronger(d: Decision, best: Decision): boolean {
  const by = STRENGTH[d.effect] - STRENGTH[best.effect];
  if (by !== 0) return by > 0;
  if (d.effect === 'deny') return isFinal(d) && !isFinal(best);
  if (d.effect === 'allow') return d.grant !== undefined && best.grant === undefined;
  return false;
}

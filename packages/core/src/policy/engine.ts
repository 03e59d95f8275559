import type { Analysis, Hazard, ObjectRef, OperationClass } from '../analysis/types.js';
import type { ApproverSpec, Grant } from '../approvals/types.js';
import type { Identity } from '../identity/types.js';
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
}

/** The statement-level decision for allowed requests with no rule to name. */
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
};

/** Compiles a `*` glob (case-insensitive) to a matcher. */
function glob(pattern: string): (value: string) => boolean {
  if (pattern === '*') return () => true;
  if (!pattern.includes('*')) {
    const p = pattern.toLowerCase();
    return (v) => v.toLowerCase() === p;
  }
  const re = new RegExp(`^${pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
  return (v) => re.test(v);
}

interface ObjectMatcher {
  /** Matches an object. `strict`: an unqualified object matches only if `public` would. */
  (object: ObjectRef, strict: boolean): boolean;
}

function objectMatcher(patterns: readonly string[]): ObjectMatcher {
  const compiled = patterns.map((p) => {
    const dot = p.indexOf('.');
    return dot < 0 ? { schema: undefined, name: glob(p) } : { schema: glob(p.slice(0, dot)), name: glob(p.slice(dot + 1)), anyName: p.slice(dot + 1) === '*' };
  });
  return (o, strict) => {
    for (const c of compiled) {
      if (o.kind === 'schema') {
        // A schema matches `schema.*` patterns (and bare patterns naming it).
        if (c.schema ? c.schema(o.name) && 'anyName' in c && c.anyName : c.name(o.name)) return true;
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
      // that relaxes (allow, guardrail off) counts it as `public`; one that restricts matches
      // whatever the schema.
      if (!strict || c.schema('public')) return true;
    }
    return false;
  };
}

interface CompiledRule {
  readonly config: PolicyRuleConfig;
  readonly name: string;
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
    matchesIdentity: (i) =>
      (subjects === undefined || subjects.has(i.subject)) &&
      (groups === undefined || i.groups.some((g) => groups.has(g))) &&
      (kinds === undefined || kinds.has(i.kind)),
    matchesTarget: (t) => targets === undefined || targets.some((m) => m(t)),
    operations: rule.operations ? new Set(rule.operations) : undefined,
    objects: rule.objects ? objectMatcher(rule.objects) : undefined,
  };
}

/** The objects an operation of a statement acts on. */
function objectsFor(op: OperationClass, objects: readonly ObjectRef[]): readonly ObjectRef[] {
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

/** True when `m` matches every object (relaxing) or at least one (restricting). */
function objectsMatch(m: ObjectMatcher | undefined, objects: readonly ObjectRef[], relaxing: boolean): boolean {
  if (m === undefined) return true;
  if (relaxing) return objects.every((o) => m(o, true));
  return objects.some((o) => m(o, false));
}

function describeObjects(objects: readonly ObjectRef[]): string {
  const names = [...new Set(objects.map((o) => (o.schema ? `${o.schema}.${o.name}` : o.name)))];
  if (names.length === 0) return '';
  return names.length <= 3 ? ` (${names.join(', ')})` : ` (${names.slice(0, 3).join(', ')} and ${names.length - 3} more)`;
}

const ALLOW_EMPTY: Decision = Object.freeze({ effect: 'allow', rule: 'empty' });

/**
 * A compiled policy: rules, guardrails and the default. Immutable; a reload builds a new one.
 *
 * How a statement is decided:
 * - each operation class of the statement is covered by the rules that match the identity,
 *   the target, the operation and the objects (an allowing rule must cover every object the
 *   operation touches; a denying or reviewing rule any of them); no such rule means the
 *   policy's default (deny unless configured as review);
 * - each hazard the statement carries meets its guardrail: `block` denies, `review` holds,
 *   `off` lets it be. A rule that matches the identity and target can change a guardrail's
 *   mode; if several do, the strictest of theirs applies;
 * - a time-boxed grant lifts a review (and the default deny) for what it covers; explicit
 *   deny rules and blocking guardrails stay;
 * - the strongest effect wins: deny over review over allow. A request with several
 *   statements gets the strongest decision of its statements.
 */
export class Policy {
  readonly defaultEffect: 'deny' | 'review';
  readonly #rules: readonly CompiledRule[];
  readonly #guardrails: Readonly<Partial<Record<Hazard, GuardrailMode>>>;
  readonly #approvers: ApproverSpec;

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
    return this.#guardrails[name] ?? 'block';
  }

  /**
   * Decides a request. `grants` is called only when a grant could change the outcome (a
   * review or the default deny), so the common path does not look them up.
   */
  decide(identity: Identity, target: string, analysis: Analysis, grants: () => readonly Grant[]): Decision {
    const parts = analysis.parts ?? [analysis];
    let best: Decision | undefined;
    let volatile = false;
    for (const part of parts) {
      const d = this.#decideStatement(identity, target, part, grants);
      if (d.volatile) volatile = true;
      if (best === undefined || STRENGTH[d.effect] > STRENGTH[best.effect]) best = d;
      if (best.effect === 'deny') break;
    }
    if (best === undefined) return ALLOW_EMPTY;
    return volatile && !best.volatile ? { ...best, volatile: true } : best;
  }

  #decideStatement(identity: Identity, target: string, st: Analysis, grants: () => readonly Grant[]): Decision {
    const objects = st.objects ?? [];
    const applicable = this.#rules.filter((r) => r.matchesIdentity(identity) && r.matchesTarget(target));
    let volatile = false;
    let grantList: readonly Grant[] | undefined;
    const loadGrants = (): readonly Grant[] => {
      volatile = true;
      return (grantList ??= grants());
    };
    const grantCovering = (op: OperationClass | undefined, guardrail: Hazard | undefined, objs: readonly ObjectRef[]): Grant | undefined => {
      for (const g of loadGrants()) {
        if (op !== undefined && !g.operations.includes(op)) continue;
        if (guardrail !== undefined && !g.guardrails.includes(guardrail)) continue;
        if (g.objects.length > 0 && !objectsMatch(objectMatcher(g.objects), objs, true)) continue;
        return g;
      }
      return undefined;
    };

    let best: Decision | undefined;
    const consider = (d: Decision): void => {
      if (best === undefined || STRENGTH[d.effect] > STRENGTH[best.effect]) best = d;
    };

    // Guardrails first: on equal strength their message is the more specific one.
    for (const hazard of st.hazards ?? []) {
      let mode: GuardrailMode | undefined;
      for (const r of applicable) {
        const m = r.config.guardrails?.[hazard];
        if (m === undefined) continue;
        const relaxing = m === 'off' || (m === 'review' && this.guardrailMode(hazard) === 'block');
        if (!objectsMatch(r.objects, objects, relaxing)) continue;
        if (mode === undefined || GUARDRAIL_STRENGTH[m] > GUARDRAIL_STRENGTH[mode]) mode = m;
      }
      mode ??= this.guardrailMode(hazard);
      if (mode === 'off') continue;
      const what = `${HAZARD_TEXT[hazard]}${describeObjects(objects)}`;
      if (mode === 'block') {
        consider({
          effect: 'deny',
          rule: `guardrail:${hazard}`,
          guardrail: hazard,
          reason: `blocked by guardrail "${hazard}": ${what}`,
        });
        break;
      }
      const grant = grantCovering(undefined, hazard, objects);
      if (grant) continue;
      consider({
        effect: 'review',
        rule: `guardrail:${hazard}`,
        guardrail: hazard,
        reason: `held for review by guardrail "${hazard}": ${what}`,
        approvers: this.#approvers,
      });
    }
    if (best !== undefined && (best as Decision).effect === 'deny') return best;

    const operations = st.operations;
    for (const op of operations) {
      const opObjects = objectsFor(op, objects);
      let effect: PolicyEffect | undefined;
      let rule: CompiledRule | undefined;
      for (const r of applicable) {
        const e = r.config.effect;
        if (e === undefined) continue;
        if (r.operations !== undefined && !r.operations.has(op)) continue;
        if (!objectsMatch(r.objects, opObjects, e === 'allow')) continue;
        if (effect === undefined || STRENGTH[e] > STRENGTH[effect]) {
          effect = e;
          rule = r;
        }
      }
      const where = `${describeObjects(opObjects)}`;
      if (effect === undefined || rule === undefined) {
        const grant = grantCovering(op, undefined, opObjects);
        if (grant) {
          consider({ effect: 'allow', rule: `grant:${grant.id}`, grant: grant.id });
          continue;
        }
        const unknown = op === 'unknown' && st.unanalysable ? ` (${st.unanalysable})` : '';
        consider(
          this.defaultEffect === 'deny'
            ? {
                effect: 'deny',
                rule: 'default',
                reason: `denied: no policy rule allows ${op}${where}${unknown} for ${identity.subject} on target "${target}" (the policy denies by default)`,
              }
            : {
                effect: 'review',
                rule: 'default',
                reason: `held for review: no policy rule covers ${op}${where}${unknown} for ${identity.subject} on target "${target}"`,
                approvers: this.#approvers,
              },
        );
        continue;
      }
      if (effect === 'allow') {
        consider({ effect: 'allow', rule: rule.name });
        continue;
      }
      if (effect === 'deny') {
        consider({
          effect: 'deny',
          rule: rule.name,
          reason: `denied by rule "${rule.name}": ${op}${where} is not allowed for ${identity.subject} on target "${target}"`,
        });
        return best!;
      }
      const grant = grantCovering(op, undefined, opObjects);
      if (grant) {
        consider({ effect: 'allow', rule: `grant:${grant.id}`, grant: grant.id });
        continue;
      }
      consider({
        effect: 'review',
        rule: rule.name,
        reason: `held for review by rule "${rule.name}": ${op}${where} by ${identity.subject} on target "${target}" needs an approval`,
        approvers: rule.config.approvers ?? this.#approvers,
      });
    }
    const result: Decision = best ?? ALLOW_EMPTY;
    return volatile ? { ...result, volatile: true } : result;
  }
}

const GUARDRAIL_STRENGTH: Record<GuardrailMode, number> = { off: 0, review: 1, block: 2 };

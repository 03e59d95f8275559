import { z } from 'zod';
import { Hazard, OperationClass } from '../analysis/types.js';
import { namedRecord, narrowing } from '../util/schema.js';
import { columnPatternSchema, maskStrategySchema } from '../masking/config.js';

/** Every built-in guardrail, by its stable name (the hazard it stops). */
export const GUARDRAIL_NAMES = Object.values(Hazard) as readonly Hazard[];

export const GuardrailMode = { Block: 'block', Review: 'review', Off: 'off' } as const;
export type GuardrailMode = (typeof GuardrailMode)[keyof typeof GuardrailMode];

export const PolicyEffect = { Allow: 'allow', Deny: 'deny', Review: 'review' } as const;
export type PolicyEffect = (typeof PolicyEffect)[keyof typeof PolicyEffect];
/** What a rule may say: an effect, or `mask` (allowed, with the rule's columns masked). */
export type RuleEffect = PolicyEffect | 'mask';

const operationClass = z.enum(Object.values(OperationClass) as [OperationClass, ...OperationClass[]], {
  error: (issue) => `unknown operation class ${JSON.stringify(issue.input)}; use one of ${Object.values(OperationClass).join(', ')}`,
});
const guardrailMode = z.enum(['block', 'review', 'off'], {
  error: (issue) => `unknown guardrail mode ${JSON.stringify(issue.input)}; use block, review or off`,
});

/** Guardrail name to mode. An unknown name is reported with the list of the known ones. */
const guardrailModes = namedRecord(GUARDRAIL_NAMES, guardrailMode, 'guardrail', 'guardrails');

/** Object patterns: `schema.table` or `table` (any schema), `*` matches any run of characters. */
const objectPattern = z
  .string()
  .regex(/^[^.\s]+(\.[^.\s]+)?$/, 'expected table, schema.table or a pattern with * such as billing.* or *.secrets');

export const approverSpecSchema = z
  .object({
    groups: z.array(z.string().min(1)).default([]),
    subjects: z.array(z.string().min(1)).default([]),
  })
  .strict()
  .refine((a) => a.groups.length + a.subjects.length > 0, 'name at least one approver group or subject');

export const ruleSchema = z
  .object({
    /** Stable name, shown to the client and recorded in the audit trail. */
    name: z.string().min(1).regex(/^[A-Za-z0-9_.:-]+$/, 'use letters, digits and _ . : -'),
    description: z.string().optional(),
    /** Who the rule is for; absent means everybody. Every given list must match. */
    identities: z
      .object({
        subjects: narrowing(z.string().min(1), 'subjects').optional(),
        groups: narrowing(z.string().min(1), 'groups').optional(),
        kinds: narrowing(z.enum(['human', 'agent', 'service']), 'kinds').optional(),
      })
      .strict()
      .optional(),
    /** Target names, `*` matching any run of characters (case-insensitive); absent means every target. */
    targets: narrowing(z.string().min(1), 'targets').optional(),
    /** Operation classes the effect applies to; absent means all. */
    operations: z.array(operationClass).min(1).optional(),
    /** Objects the effect applies to; absent means any. */
    objects: z.array(objectPattern).min(1).optional(),
    effect: z
      .enum(['allow', 'deny', 'review', 'mask'], {
        error: (issue) => `unknown effect ${JSON.stringify(issue.input)}; use allow, deny, review or mask`,
      })
      .optional(),
    /**
     * For `mask` (and only for it): the columns masked in the results of the statements the
     * rule matches (patterns as in `masking.columns`), and how (default `redact`).
     */
    mask: z
      .object({
        columns: z.array(columnPatternSchema).min(1, 'name at least one column (schema.table.column or table.column)'),
        strategy: maskStrategySchema.default('redact'),
      })
      .strict()
      .optional(),
    /** For `review`: who may approve (default: approvals.approvers). */
    approvers: approverSpecSchema.optional(),
    /** Guardrail modes for the identities and targets (and objects) this rule matches. */
    guardrails: guardrailModes.optional(),
  })
  .strict()
  .refine((r) => r.effect !== undefined || r.guardrails !== undefined, {
    message: 'a rule needs an effect (allow, deny, review or mask) or guardrails to change',
  })
  .refine((r) => (r.effect === 'mask') === (r.mask !== undefined), {
    message: 'a rule with effect mask needs `mask: { columns: [...], strategy }`, and `mask` needs effect mask',
    path: ['mask'],
  })
  .refine((r) => r.approvers === undefined || r.effect === 'review', {
    message: 'approvers only apply to a rule whose effect is review',
    path: ['approvers'],
  });

export const policySchema = z
  .object({
    /** What happens to an operation no rule covers. Deny by default. */
    default: z.enum(['deny', 'review']).default('deny'),
    rules: z.array(ruleSchema).default([]),
    /**
     * Global guardrail modes. Unless set here every guardrail is `block`, but
     * `sensitive-predicate`, which is `off` (it refuses queries that worked before masking
     * was configured, so a deployment switches it on).
     */
    guardrails: guardrailModes.default({}),
  })
  .strict()
  .superRefine((p, ctx) => {
    const seen = new Set<string>();
    p.rules.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: 'custom', message: `rule name "${r.name}" is used twice`, path: ['rules', i, 'name'] });
      seen.add(r.name);
    });
  });

export type PolicyRuleConfig = z.infer<typeof ruleSchema>;
export type PolicyConfig = z.infer<typeof policySchema>;
export type ApproverSpecConfig = z.infer<typeof approverSpecSchema>;

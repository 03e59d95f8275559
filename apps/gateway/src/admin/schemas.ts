import { GUARDRAIL_NAMES, MAX_GRANT_MS, OperationClass, type ApprovalStatus, type Hazard } from '@sluice/core';
import { z } from 'zod';

/** Every status a review request can have, in the order of its life. */
export const STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'executed', 'rejected', 'expired', 'abandoned'];

/** The longest grant, in minutes. */
export const MAX_GRANT_MINUTES = Math.floor(MAX_GRANT_MS / 60_000);

const OPERATIONS = Object.values(OperationClass) as [OperationClass, ...OperationClass[]];

const reason = z
  .string()
  .trim()
  .min(1, 'give a reason, or leave the field out')
  .max(1000, 'keep the reason under 1000 characters');

const minutes = z
  .number({ error: 'expected a number of minutes' })
  .int('expected a whole number of minutes')
  .min(1, 'expected at least 1 minute')
  .max(MAX_GRANT_MINUTES, `grants last at most ${MAX_GRANT_MINUTES} minutes (30 days)`);

const operation = z.enum(OPERATIONS, {
  error: (issue) => `unknown operation class ${JSON.stringify(issue.input)}; use one of ${OPERATIONS.join(', ')}`,
});

const guardrail = z.enum(GUARDRAIL_NAMES as [Hazard, ...Hazard[]], {
  error: (issue) => `unknown guardrail ${JSON.stringify(issue.input)}; the guardrails are ${GUARDRAIL_NAMES.join(', ')}`,
});

/** As in the policy's rules: `table`, `schema.table`, `*` matching any run of characters. */
const objectPattern = z
  .string()
  .min(1)
  .regex(/^[^.\s]+(\.[^.\s]+)?$/, 'expected table, schema.table or a pattern with * such as billing.* or *.secrets');

const name = z.string().trim().min(1, 'expected a non-empty name').max(200, 'expected a name of at most 200 characters');

/** POST /v1/approvals/:id/approve */
export const approveBody = z
  .object({
    reason: reason.optional(),
    /** Also grant the requester what the request covers, for this many minutes. */
    grantMinutes: minutes.optional(),
  })
  .strict();

/** POST /v1/approvals/:id/reject */
export const rejectBody = z.object({ reason: reason.optional() }).strict();

/** POST /v1/grants */
export const grantBody = z
  .object({
    subject: name,
    targets: z.array(name).max(100).optional(),
    operations: z.array(operation).min(1, 'name at least one operation class, for example ["write"]'),
    objects: z.array(objectPattern).max(100).optional(),
    guardrails: z.array(guardrail).optional(),
    minutes,
    reason: reason.optional(),
  })
  .strict();

export type ApproveBody = z.infer<typeof approveBody>;
export type RejectBody = z.infer<typeof rejectBody>;
export type GrantBody = z.infer<typeof grantBody>;

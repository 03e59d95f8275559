/**
 * Schemas for the `identities` section of the gateway config: static tokens, trusted OIDC
 * issuers and the failed-login limits. Unknown keys are errors, and every message says what
 * was expected. No message ever repeats a token value.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { looksLikeJwt } from './jwt-shape.js';
import { IdentityKind } from './types.js';

const KINDS = [IdentityKind.Human, IdentityKind.Agent, IdentityKind.Service] as const;

/** Asymmetric JWS algorithms a JWKS can serve. Symmetric (HS*) and `none` are never accepted. */
export const OIDC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
export type OidcAlgorithm = (typeof OIDC_ALGORITHMS)[number];

export const DEFAULT_OIDC_ALGORITHMS: readonly OidcAlgorithm[] = ['RS256', 'ES256', 'PS256', 'EdDSA'];

/** A strict object whose unknown-key error names the key and lists the allowed ones. */
function strictObject<S extends z.core.$ZodLooseShape>(shape: S, where: string) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown ${issue.keys.length === 1 ? 'key' : 'keys'} ${issue.keys.map((k) => `"${k}"`).join(', ')} in ${where}; allowed keys: ${allowed}`
        : `${where} must be a mapping of keys to values`,
  });
}

function requiredString(name: string, what = 'a non-empty string') {
  return z
    .string({ error: (issue) => (issue.input === undefined ? `${name} is required (${what})` : `${name} must be ${what}`) })
    .min(1, { error: `${name} must be ${what}` });
}

function httpUrl(name: string) {
  return z.url({
    protocol: /^https?$/,
    error: (issue) =>
      issue.input === undefined ? `${name} is required (an http or https URL)` : `${name} must be an http or https URL`,
  });
}

const kindSchema = (name: string) =>
  z.enum(KINDS, {
    error: (issue) =>
      issue.input === undefined ? `${name} is required (one of ${KINDS.join(', ')})` : `${name} must be one of ${KINDS.join(', ')}`,
  });

const groupsSchema = z
  .array(requiredString('each group', 'a non-empty string'), { error: 'groups must be a list of group names' })
  .default([]);

const EXPIRES_AT_MESSAGE =
  'expiresAt must be an ISO 8601 date-time with a time zone (e.g. 2027-01-01T00:00:00Z) or a date (e.g. 2027-01-01)';

const expiresAtSchema = z
  .union([z.date(), z.iso.datetime({ offset: true }), z.iso.date()], { error: EXPIRES_AT_MESSAGE })
  .transform((value) => (value instanceof Date ? value : new Date(value)));

export const tokenEntrySchema = strictObject(
  {
    subject: requiredString('subject', 'the identity this token stands for, e.g. alice@example.com'),
    kind: kindSchema('kind'),
    groups: groupsSchema,
    token: z
      .string({ error: 'token must be a string (the plain secret, usually given as ${ENV_VAR})' })
      .min(1, { error: 'token is empty; if it comes from an environment variable, check that the variable is set' })
      .refine((value) => !looksLikeJwt(value), {
        error: 'token has the shape of a JWT, so it would be verified as an OIDC token; choose a different secret',
      })
      .optional(),
    tokenSha256: z
      .string({ error: 'tokenSha256 must be a string of 64 hexadecimal characters' })
      .regex(/^[0-9a-fA-F]{64}$/, { error: 'tokenSha256 must be the SHA-256 of the token as 64 hexadecimal characters' })
      .transform((hex) => hex.toLowerCase())
      .optional(),
    expiresAt: expiresAtSchema.optional(),
  },
  'a tokens entry',
).check((ctx) => {
  const { token, tokenSha256 } = ctx.value;
  if ((token === undefined) === (tokenSha256 === undefined)) {
    ctx.issues.push({
      code: 'custom',
      input: ctx.value,
      path: [],
      message: 'give exactly one of token or tokenSha256',
    });
  }
});

const AUDIENCE_MESSAGE = 'audience must be a non-empty string or a non-empty list of non-empty strings';

export const oidcIssuerSchema = strictObject(
  {
    issuer: httpUrl('issuer'),
    audience: z.union(
      [
        z.string().min(1, { error: AUDIENCE_MESSAGE }),
        z.array(z.string({ error: AUDIENCE_MESSAGE }).min(1, { error: AUDIENCE_MESSAGE })).min(1, { error: AUDIENCE_MESSAGE }),
      ],
      {
        error: (issue) =>
          issue.input === undefined
            ? 'audience is required (a string, or a list of strings, the tokens must be issued for)'
            : AUDIENCE_MESSAGE,
      },
    ),
    jwksUri: httpUrl('jwksUri').optional(),
    groupsClaim: requiredString('groupsClaim', 'a claim name or dotted path such as realm_access.roles').default('groups'),
    usernameClaim: requiredString('usernameClaim', 'a claim name or dotted path').default('sub'),
    kind: kindSchema('kind').default(IdentityKind.Human),
    kindClaim: requiredString('kindClaim', 'a claim name or dotted path').optional(),
    algorithms: z
      .array(
        z.enum(OIDC_ALGORITHMS, {
          error: `each algorithm must be one of ${OIDC_ALGORITHMS.join(', ')} (symmetric algorithms are not accepted)`,
        }),
        { error: 'algorithms must be a list of JWS algorithm names' },
      )
      .min(1, { error: 'algorithms must name at least one algorithm' })
      .default([...DEFAULT_OIDC_ALGORITHMS]),
    clockToleranceSeconds: z
      .number({ error: 'clockToleranceSeconds must be a whole number of seconds' })
      .int({ error: 'clockToleranceSeconds must be a whole number of seconds' })
      .min(0, { error: 'clockToleranceSeconds must not be negative' })
      .max(3600, { error: 'clockToleranceSeconds must be at most 3600' })
      .default(30),
  },
  'an oidc entry',
);

function positiveSeconds(name: string, fallback: number) {
  return z
    .number({ error: `${name} must be a positive whole number` })
    .int({ error: `${name} must be a positive whole number` })
    .min(1, { error: `${name} must be at least 1` })
    .default(fallback);
}

export const failedLoginsSchema = strictObject(
  {
    maxAttempts: positiveSeconds('maxAttempts', 10),
    windowSeconds: positiveSeconds('windowSeconds', 60),
    lockoutSeconds: positiveSeconds('lockoutSeconds', 60),
  },
  'failedLogins',
).prefault({});

export const identitiesSchema = strictObject(
  {
    tokens: z
      .array(tokenEntrySchema, { error: 'tokens must be a list of token entries' })
      .default([])
      .check((ctx) => {
        const seen = new Map<string, number>();
        ctx.value.forEach((entry, index) => {
          const digest = entry.tokenSha256 ?? (entry.token === undefined ? undefined : sha256Hex(entry.token));
          if (digest === undefined) return;
          const first = seen.get(digest);
          if (first === undefined) {
            seen.set(digest, index);
            return;
          }
          ctx.issues.push({
            code: 'custom',
            input: entry,
            path: [index],
            message: `this entry has the same secret as tokens[${first}]; every token must be unique`,
          });
        });
      }),
    oidc: z
      .array(oidcIssuerSchema, { error: 'oidc must be a list of issuer entries' })
      .default([])
      .check((ctx) => {
        const seen = new Map<string, number>();
        ctx.value.forEach((entry, index) => {
          const first = seen.get(entry.issuer);
          if (first === undefined) {
            seen.set(entry.issuer, index);
            return;
          }
          ctx.issues.push({
            code: 'custom',
            input: entry,
            path: [index, 'issuer'],
            message: `issuer ${entry.issuer} is already configured in oidc[${first}]; list each issuer once`,
          });
        });
      }),
    failedLogins: failedLoginsSchema,
  },
  'identities',
);

/**
 * Parses one entry with `schema`, for constructors that accept entries built in code as well
 * as parsed config. Throws an Error naming the entry and what is wrong with it.
 */
export function parseEntry<T extends z.ZodType>(schema: T, entry: unknown, where: string): z.output<T> {
  const result = schema.safeParse(entry);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) =>
    issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message,
  );
  throw new Error(`${where} is not valid: ${problems.join('; ')}`);
}

function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

export type IdentitiesConfig = z.output<typeof identitiesSchema>;
export type IdentitiesConfigInput = z.input<typeof identitiesSchema>;
export type TokenConfig = z.output<typeof tokenEntrySchema>;
export type TokenConfigInput = z.input<typeof tokenEntrySchema>;
export type OidcIssuerConfig = z.output<typeof oidcIssuerSchema>;
export type OidcIssuerConfigInput = z.input<typeof oidcIssuerSchema>;
export type FailedLoginsConfig = z.output<typeof failedLoginsSchema>;

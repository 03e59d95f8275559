/**
 * The gateway's `masking:` section: which columns are sensitive and how each is masked, the
 * free-text columns the content detectors always scan, the detectors, the key of the `hash`
 * strategy and who sees clear values. Column patterns are names, not types: the dialect finds
 * the columns they match and turns a strategy into a value valid for each column's type.
 */
import { z } from 'zod';
import { namedRecord, narrowing } from '../util/schema.js';
import { DETECTOR_NAMES, type DetectorKind } from './detectors.js';
import { MASK_STRATEGIES } from './strategies.js';

export const maskStrategySchema = z.enum(MASK_STRATEGIES, {
  error: (issue) => `unknown masking strategy ${JSON.stringify(issue.input)}; use one of ${MASK_STRATEGIES.join(', ')}`,
});

/** `schema.table.column` or `table.column` (any schema), `*` matching any run of characters. */
export const columnPatternSchema = z
  .string()
  .regex(/^[^.\s]+\.[^.\s]+(\.[^.\s]+)?$/, 'expected schema.table.column or table.column, with * wildcards (for example public.customers.email or *.*.ssn)');

const detectorSwitches = namedRecord(DETECTOR_NAMES, z.boolean({ error: 'switch a detector with true or false' }), 'detector', 'detectors');


export const maskingSchema = z
  .object({
    /** Present and not switched off, the section masks; `enabled: false` keeps it for later. */
    enabled: z.boolean().default(true),
    /**
     * Secret of the `hash` strategy (at least 16 characters), given here, as the name of an
     * environment variable or as a file; at most one of the three. Without one a random key
     * is made per process (with a warning): hashed values then change on every restart.
     */
    hashKey: z.string().min(16, 'use a hash key of at least 16 characters').optional(),
    hashKeyEnv: z.string().min(1).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected the name of an environment variable, such as SLUICE_MASK_KEY').optional(),
    hashKeyFile: z.string().min(1).optional(),
    /** Sensitive columns and how each is masked. */
    columns: z
      .array(
        z
          .object({
            column: columnPatternSchema,
            strategy: maskStrategySchema.default('redact'),
            /** Target names (globs); absent means every target. */
            targets: narrowing(z.string().min(1), 'targets').optional(),
            /** Recorded in the audit trail; default `column:<pattern>`. */
            name: z.string().min(1).regex(/^[A-Za-z0-9_.:*-]+$/, 'use letters, digits and _ . : * -').optional(),
          })
          .strict(),
      )
      .default([]),
    /** Free-text columns whose values are always scanned by the detectors. */
    scan: z.array(columnPatternSchema).default([]),
    /** Content detectors, each on unless switched off. */
    detectors: detectorSwitches.default({}),
    /** How a detected value is masked. */
    detectorStrategy: maskStrategySchema.default('partial'),
    /** Identities that see clear values (configured columns and detectors; policy `mask` rules still apply). */
    exempt: z
      .object({
        subjects: z.array(z.string().min(1)).default([]),
        groups: z.array(z.string().min(1)).default([]),
        kinds: z.array(z.enum(['human', 'agent', 'service'])).default([]),
      })
      .strict()
      .default({ subjects: [], groups: [], kinds: [] }),
  })
  .strict()
  .refine((m) => [m.hashKey, m.hashKeyEnv, m.hashKeyFile].filter((k) => k !== undefined).length <= 1, {
    message: 'give the hash key one way: hashKey, hashKeyEnv or hashKeyFile',
  });

export type MaskingConfig = z.input<typeof maskingSchema> & Partial<z.output<typeof maskingSchema>>;
export type DetectorSwitches = Partial<Record<DetectorKind, boolean>>;

import { identitiesSchema } from '@sluice/core';
import { z } from 'zod';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, 'expected host:port, for example 127.0.0.1:6432')
  .refine((v) => {
    const port = Number(v.slice(v.lastIndexOf(':') + 1));
    return port >= 0 && port <= 65535;
  }, 'the port must be between 0 and 65535');

export const configSchema = z
  .object({
    /** Listen addresses by dialect. */
    listen: z
      .object({
        postgres: hostPort.optional(),
      })
      .strict()
      .refine((l) => Object.values(l).some(Boolean), 'at least one listener is needed, for example listen.postgres: 127.0.0.1:6432'),
    /** Databases behind the gateway. Dialect-specific keys are checked by the dialect. */
    targets: z
      .array(
        z
          .object({
            name: z
              .string()
              .min(1)
              .regex(/^[A-Za-z0-9_.-]+$/, 'use letters, digits, _ . and - (clients name the target as their database)'),
            dialect: z.enum(['postgres']),
          })
          .passthrough(),
      )
      .min(1, 'configure at least one target'),
    identities: identitiesSchema,
    audit: z
      .object({
        /** Directory of the embedded, hash-chained audit log. */
        dir: z.string().default('./.sluice/audit'),
        /** Longest time a read's audit record may wait for its group commit. */
        groupCommitMs: z.number().int().min(0).max(1000).default(50),
      })
      .strict()
      .default({ dir: './.sluice/audit', groupCommitMs: 50 }),
    /** TLS towards clients. */
    tls: z
      .object({
        certFile: z.string(),
        keyFile: z.string(),
        /** Refuse clients that do not use TLS. */
        require: z.boolean().default(false),
      })
      .strict()
      .optional(),
    limits: z
      .object({
        maxMessageBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
        authTimeoutMs: z.number().int().positive().default(15_000),
      })
      .strict()
      .default({ maxMessageBytes: 64 * 1024 * 1024, authTimeoutMs: 15_000 }),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

export type GatewayConfig = z.infer<typeof configSchema>;

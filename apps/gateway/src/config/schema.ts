import { approverSpecSchema, identitiesSchema, maskingSchema, policySchema } from '@sluice/core';
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
        mysql: hostPort.optional(),
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
            dialect: z.enum(['postgres', 'mysql']),
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
    /**
     * Let clients on a loopback address send their token in clear without TLS where the
     * dialect asks for it in clear (MySQL's mysql_clear_password). Off: such clients need TLS.
     */
    allowPlaintextLoopback: z.boolean().default(false),
    limits: z
      .object({
        maxMessageBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
        authTimeoutMs: z.number().int().positive().default(15_000),
      })
      .strict()
      .default({ maxMessageBytes: 64 * 1024 * 1024, authTimeoutMs: 15_000 }),
    /** Who may do what: rules, guardrails, the default (deny). */
    policy: policySchema.default({ default: 'deny', rules: [], guardrails: {} }),
    /** Sensitive columns, content detectors and who sees clear values. Off when absent. */
    masking: maskingSchema.optional(),
    /** Inline approvals of statements held for review, and time-boxed grants. */
    approvals: z
      .object({
        /** Directory of the approvals journal (pending requests survive a restart as abandoned). */
        dir: z.string().default('./.sluice/approvals'),
        /** How long a held statement waits for a decision before it is refused. */
        timeoutSeconds: z.number().int().min(1).max(86_400).default(300),
        /** Who may approve (rules with effect review may name their own) and create grants. */
        approvers: approverSpecSchema.optional(),
        /** Where to announce new requests and decisions. */
        notify: z
          .array(
            z.union([
              z
                .object({
                  webhook: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
                  /** HMAC-SHA256 key for the X-Sluice-Signature header. */
                  secret: z.string().min(16, 'use a secret of at least 16 characters').optional(),
                  timeoutMs: z.number().int().positive().max(60_000).optional(),
                })
                .strict(),
              z
                .object({
                  slack: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
                  timeoutMs: z.number().int().positive().max(60_000).optional(),
                })
                .strict(),
            ]),
          )
          .default([]),
      })
      .strict()
      .default({ dir: './.sluice/approvals', timeoutSeconds: 300, notify: [] }),
    /** The HTTP admin API (approvals, grants), for example 127.0.0.1:7070. Off when absent. */
    admin: hostPort.optional(),
    /** Where `sluice start` writes its process id, for `sluice reload`. */
    pidFile: z.string().default('./.sluice/sluice.pid'),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .default({ level: 'info' }),
  })
  .strict();

export type GatewayConfig = z.infer<typeof configSchema>;

/** The host (without IPv6 brackets) and port of a `host:port` address such as `listen.postgres` or `admin`. */
export function splitHostPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  if (at <= 0) throw new Error(`expected host:port, got "${value}"`);
  const port = Number(value.slice(at + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`no valid port in "${value}"`);
  return { host: value.slice(0, at).replace(/^\[|\]$/g, ''), port };
}

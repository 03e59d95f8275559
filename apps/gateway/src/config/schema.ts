import { approverSpecSchema, identitiesSchema, maskingSchema, policySchema, sessionLimitsSchema } from '@sluice/core';
import { z } from 'zod';
import { checkListenTls, listenTlsSchema, tlsSchema } from './tls.js';

const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, 'expected host:port, for example 127.0.0.1:6432')
  .refine((v) => {
    const port = Number(v.slice(v.lastIndexOf(':') + 1));
    return port >= 0 && port <= 65535;
  }, 'the port must be between 0 and 65535');

/** A replica id: what an operator can type, and what fits in a log line and an application_name. */
export const REPLICA_ID = /^[A-Za-z0-9_.:-]{1,100}$/;

/** The embedded lineage store's file; with a shared `store`, lineage goes there instead. */
export const DEFAULT_LINEAGE_STORE = './.sluice/lineage.db';

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
    /**
     * A PostgreSQL database shared by several gateway replicas: the audit trail (one chain per
     * replica), approvals and grants, failed-login lockouts and (unless lineage.store says
     * otherwise) lineage. Absent: embedded stores on this machine (audit.dir, approvals.dir).
     */
    store: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL, for example postgres://sluice@db:5432/sluice')
      .optional(),
    /**
     * This gateway's name among the replicas sharing `store` (its audit chain, the owner of its
     * held statements). Unique per running gateway. Default: the host name.
     */
    replicaId: z
      .string()
      .regex(REPLICA_ID, 'use 1 to 100 letters, digits, _ . : and -')
      .optional(),
    audit: z
      .object({
        /** Directory of the embedded, hash-chained audit log. */
        dir: z.string().default('./.sluice/audit'),
        /** Longest time a read's audit record may wait for its group commit. */
        groupCommitMs: z.number().int().min(0).max(1000).default(50),
        /**
         * While a shared store cannot be reached: `refuse` every statement (fail closed), or
         * `allow-reads`: reads run and their records are written when the store is back
         * (privileged statements, approvals and new sessions are still refused).
         */
        whenStoreUnavailable: z.enum(['refuse', 'allow-reads']).default('refuse'),
      })
      .strict()
      .prefault({}),
    /** TLS towards clients: every listener's default (see listenTls). */
    tls: tlsSchema.optional(),
    /** TLS per listener (certificate, require, client CA), over the defaults in tls. */
    listenTls: listenTlsSchema.optional(),
    /**
     * Let clients on a loopback address send their token in clear without TLS where the
     * dialect asks for it in clear (MySQL's mysql_clear_password). Off: such clients need TLS.
     */
    allowPlaintextLoopback: z.boolean().default(false),
    /**
     * Sizes, timeouts and rates (docs/configuration.md#limits). Counted per gateway process:
     * with N replicas the effective connection and rate limits are up to N times these.
     */
    limits: sessionLimitsSchema
      .extend({
        /** Largest client message (a PostgreSQL message, a MySQL command joined across its packets). */
        maxMessageBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
        authTimeoutMs: z.number().int().positive().default(15_000),
        /** A session whose client sends nothing for this long (outside a transaction) is ended. 0: off. */
        idleSessionTimeoutMs: z.number().int().min(0).default(0),
        /** A session idle this long inside an open transaction is ended (the transaction rolls back). 0: off. */
        idleInTransactionTimeoutMs: z.number().int().min(0).default(0),
        /** On SIGTERM/SIGINT, how long running statements may take to finish before their sessions are ended. */
        shutdownGraceMs: z.number().int().min(0).max(3_600_000).default(30_000),
        /** Per-dialect overrides of maxMessageBytes. */
        postgres: z.object({ maxMessageBytes: z.number().int().min(1024).optional() }).strict().optional(),
        mysql: z.object({ maxMessageBytes: z.number().int().min(1024).optional() }).strict().optional(),
      })
      .strict()
      .prefault({}),
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
    /**
     * Column-level lineage: who and which job read or wrote which columns, kept in a store the
     * gateway answers `sluice lineage` from, and sent as OpenLineage run events.
     */
    lineage: z
      .object({
        enabled: z.boolean().default(true),
        /** A SQLite file (embedded, the default) or a postgres:// URL of a shared store. */
        store: z.string().min(1).default(DEFAULT_LINEAGE_STORE),
        /** How long lineage is kept. */
        retentionDays: z.number().int().min(1).max(36_500).default(90),
        /** The OpenLineage namespace of the gateway's jobs. */
        namespace: z.string().min(1).default('sluice'),
        /**
         * Who may read every identity's lineage on the admin API (default: the global approvers);
         * any identity may read its own.
         */
        readers: approverSpecSchema.optional(),
        /** How often lineage is written to the store and run growth reported. */
        flushIntervalMs: z.number().int().min(50).max(60_000).default(1000),
        /** OpenLineage run events. Off when absent. */
        openlineage: z
          .object({
            /** Base URL of a Marquez-compatible API, for example http://marquez:5000. */
            url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as http://marquez:5000' }).optional(),
            /** Path events are posted to. */
            endpoint: z.string().startsWith('/', 'expected a path such as /api/v1/lineage').default('/api/v1/lineage'),
            /** Environment variable holding a bearer token for the API. */
            apiKeyEnv: z.string().min(1).optional(),
            timeoutMs: z.number().int().positive().max(120_000).default(10_000),
            /** Directory of the queue that keeps events while the API is down. */
            queueDir: z.string().default('./.sluice/openlineage'),
            /** Largest size of that queue; past it new events are dropped (and counted). */
            maxQueueBytes: z.number().int().min(1024).default(64 * 1024 * 1024),
            /** A file events are appended to, one JSON event per line. */
            file: z.string().min(1).optional(),
          })
          .strict()
          .refine((o) => o.url !== undefined || o.file !== undefined, 'set lineage.openlineage.url (an HTTP API) or lineage.openlineage.file, or both')
          .optional(),
      })
      .strict()
      .default({ enabled: true, store: './.sluice/lineage.db', retentionDays: 90, namespace: 'sluice', flushIntervalMs: 1000 }),
    /**
     * OpenTelemetry traces and metrics, exported as the standard OTEL_* environment variables
     * say (OTLP over HTTP by default). `auto`: on when an OTLP endpoint or an exporter is set
     * in the environment.
     */
    telemetry: z
      .object({
        enabled: z.union([z.boolean(), z.literal('auto')]).default('auto'),
        /** Service name when OTEL_SERVICE_NAME is not set. */
        serviceName: z.string().min(1).default('sluice'),
        /** Serve the metrics at /metrics on the admin listener (needs `admin`), with or without OTLP. */
        prometheus: z.boolean().default(true),
      })
      .strict()
      .default({ enabled: 'auto', serviceName: 'sluice', prometheus: true }),
    /**
     * The HTTP admin API (approvals, grants), health probes (/healthz, /readyz) and Prometheus
     * metrics (/metrics), for example 127.0.0.1:7070. Off when absent.
     */
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
  .strict()
  .superRefine(checkListenTls);

export type GatewayConfig = z.infer<typeof configSchema>;

/** The host (without IPv6 brackets) and port of a `host:port` address such as `listen.postgres` or `admin`. */
export function splitHostPort(value: string): { host: string; port: number } {
  const at = value.lastIndexOf(':');
  if (at <= 0) throw new Error(`expected host:port, got "${value}"`);
  const port = Number(value.slice(at + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`no valid port in "${value}"`);
  return { host: value.slice(0, at).replace(/^\[|\]$/g, ''), port };
}

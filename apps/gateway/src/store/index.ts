/**
 * The gateway's stores, as the config selects them: embedded on this machine (the default), or
 * in one PostgreSQL database shared by several replicas (`store: postgres://…`).
 */
import { hostname } from 'node:os';
import { FileAuditStore, MemoryFailureLimiter, redactUrlPassword, type AuditStore, type FailureLimiter } from '@sluice/core';
import type { Logger } from 'pino';
import { REPLICA_ID, type GatewayConfig } from '../config/schema.js';
import { DEFAULT_STORE_SCHEMA } from './pg-transaction.js';
import { openPostgresAuditStore } from './postgres-audit.js';
import { PostgresFailureLimiter } from './postgres-failure-limiter.js';

export interface GatewayStores {
  readonly audit: AuditStore;
  readonly failureLimiter: FailureLimiter;
  /** Where the audit trail is, for messages (a password in a URL redacted). */
  readonly auditWhere: string;
  /** The config key that names it, for messages. */
  readonly auditKey: 'store' | 'audit.dir';
  /** This gateway's replica id (with a shared store), else undefined. */
  readonly replicaId: string | undefined;
  /** The shared store's URL, when there is one. */
  readonly sharedUrl: string | undefined;
  /** Why the shared store cannot be used now, or null (also null without a shared store). */
  problem(): string | null;
  /** Closes what the audit store does not own (the audit store is closed by its owner). */
  closeAuxiliary(): Promise<void>;
}

/** This gateway's name among replicas: `replicaId`, else the host name (made into a valid id). */
export function replicaIdOf(config: GatewayConfig): string {
  if (config.replicaId !== undefined) return config.replicaId;
  const host = hostname().replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 100);
  return REPLICA_ID.test(host) ? host : 'gateway';
}

export async function openStores(config: GatewayConfig, logger: Logger): Promise<GatewayStores> {
  const url = config.store;
  if (url === undefined) {
    const audit = await FileAuditStore.open({ dir: config.audit.dir, groupCommitMs: config.audit.groupCommitMs, logger });
    return {
      audit,
      failureLimiter: new MemoryFailureLimiter(config.identities.failedLogins),
      auditWhere: config.audit.dir,
      auditKey: 'audit.dir',
      replicaId: undefined,
      sharedUrl: undefined,
      problem: () => null,
      closeAuxiliary: async () => undefined,
    };
  }
  const replicaId = replicaIdOf(config);
  const audit = await openPostgresAuditStore({
    url,
    replicaId,
    logger,
    schema: DEFAULT_STORE_SCHEMA,
    groupCommitMs: config.audit.groupCommitMs,
    deferWhileUnavailable: config.audit.whenStoreUnavailable === 'allow-reads',
  });
  let failureLimiter: PostgresFailureLimiter;
  try {
    failureLimiter = await PostgresFailureLimiter.open({ url, logger, schema: DEFAULT_STORE_SCHEMA, ...config.identities.failedLogins });
  } catch (err) {
    await audit.close().catch(() => undefined);
    throw err;
  }
  return {
    audit,
    failureLimiter,
    auditWhere: `${redactUrlPassword(url)} (replica ${replicaId})`,
    auditKey: 'store',
    replicaId,
    sharedUrl: url,
    problem: () => (audit.deferring ? `${audit.problem ?? 'the shared store cannot be reached'} (reads run meanwhile)` : audit.problem),
    closeAuxiliary: () => failureLimiter.close(),
  };
}

import { createHash } from 'node:crypto';
import net from 'node:net';
import { dirname } from 'node:path';
import {
  type Approvals,
  type ApproverSpec,
  type Authenticator,
  CompositeAuthenticator,
  compileMasking,
  type MaskingRuntime,
  type DialectListener,
  Governor,
  type NotifierConfig,
  OidcAuthenticator,
  openApprovals,
  Policy,
  redactUrlPassword,
  withDeadline,
  type SecretIdentifier,
  type Target,
  TokenAuthenticator,
} from '@sluice/core';
import type { Logger } from 'pino';
import { startAdminServer, type AdminServer } from './admin/server.js';
import { evaluateReadiness, registerGatewayGauges, type ReadinessCheck } from './admin/health.js';
import { ObservabilityError, startObservability, type Observability } from './observability.js';
import { dialects } from './dialects.js';
import { splitHostPort, type GatewayConfig } from './config/schema.js';
import { loadListenerTls, type ListenerTls } from './tls.js';
import { openStores, type GatewayStores } from './store/index.js';
import { openPostgresApprovalBackend } from './store/postgres-approvals.js';
import type { LoadedConfig } from './config/load.js';

export interface ListeningAddress {
  readonly dialect: string;
  readonly host: string;
  readonly port: number;
}

export interface RunningGateway {
  readonly addresses: readonly ListeningAddress[];
  readonly governor: Governor;
  readonly approvals: Approvals;
  /** The admin API's base URL, when `admin` is configured. */
  readonly adminUrl: string | undefined;
  /**
   * Applies a new, validated config without a restart: policy, identities, approvers and the
   * review timeout. Settings that need a restart are named in the message and left as they are.
   */
  reload(next: LoadedConfig): { readonly ok: boolean; readonly message: string };
  /** Records in the audit trail that a reload was refused (the file did not validate). */
  reloadRefused(file: string, message: string): void;
  /** Stops accepting, ends sessions, flushes the audit trail. */
  close(): Promise<void>;
}

export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StartupError';
  }
}

function approverSpecOf(config: GatewayConfig): ApproverSpec {
  return config.approvals.approvers ?? { groups: [], subjects: [] };
}

function notifiersOf(config: GatewayConfig): NotifierConfig[] {
  return config.approvals.notify.map((n) =>
    'webhook' in n
      ? { kind: 'webhook' as const, url: n.webhook, ...(n.secret ? { secret: n.secret } : {}), ...(n.timeoutMs ? { timeoutMs: n.timeoutMs } : {}) }
      : { kind: 'slack' as const, url: n.slack, ...(n.timeoutMs ? { timeoutMs: n.timeoutMs } : {}) },
  );
}

function authenticatorOf(config: GatewayConfig, logger: Logger): CompositeAuthenticator {
  return new CompositeAuthenticator({
    tokens: new TokenAuthenticator(config.identities.tokens),
    ...(config.identities.oidc.length > 0 ? { oidc: new OidcAuthenticator(config.identities.oidc, { logger }) } : {}),
  });
}

/** True when both configs take the hash key from the same place (so a reload keeps a generated one). */
function sameKeySource(a: GatewayConfig, b: GatewayConfig): boolean {
  const key = (c: GatewayConfig) => JSON.stringify([c.masking?.hashKey, c.masking?.hashKeyEnv, c.masking?.hashKeyFile]);
  return key(a) === key(b);
}

/** SHA-256 of the validated policy section: the audit trail says which policy was in force. */
function policyDigest(config: GatewayConfig): string {
  return createHash('sha256').update(JSON.stringify(config.policy)).digest('hex');
}

/** Settings a reload cannot change, compared as JSON. */
const RESTART_KEYS = ['store', 'replicaId', 'listen', 'targets', 'audit', 'tls', 'listenTls', 'allowPlaintextLoopback', 'limits', 'admin', 'pidFile', 'lineage', 'telemetry'] as const;

/** Longest wait for lineage and telemetry to write what they hold at shutdown. */
const OBSERVABILITY_CLOSE_MS = 15_000;

/** Composes core, dialects and listeners from a validated config. */
export async function startGateway(loaded: LoadedConfig, logger: Logger): Promise<RunningGateway> {
  const { config } = loaded;
  // One TLS context per listener (tls merged with listenTls.<dialect>), loaded before anything opens.
  const listenerTls = new Map<string, ListenerTls>();
  for (const [dialectName, address] of Object.entries(config.listen)) {
    if (!address) continue;
    try {
      listenerTls.set(dialectName, loadListenerTls(config, dialectName));
    } catch (cause) {
      throw new StartupError((cause as Error).message, { cause });
    }
  }

  let stores: GatewayStores;
  try {
    stores = await openStores(config, logger);
  } catch (cause) {
    const where = config.store !== undefined ? `${redactUrlPassword(config.store)} (store)` : `${config.audit.dir} (audit.dir)`;
    throw new StartupError(`cannot open the audit store at ${where}: ${redactUrlPassword((cause as Error).message)}`, { cause });
  }
  const audit = stores.audit;
  const closeStores = async (): Promise<void> => {
    try {
      await audit.close();
    } finally {
      await stores.closeAuxiliary();
    }
  };

  try {
    await audit.append(
      {
        type: 'config',
        time: new Date().toISOString(),
        dialect: 'sluice',
        action: 'loaded',
        file: loaded.file,
        policyDigest: policyDigest(config),
        rules: config.policy.rules.length,
      },
      { durable: true },
    );
  } catch (cause) {
    await audit.close().catch(() => undefined);
    await stores.closeAuxiliary();
    throw new StartupError(`cannot write to the audit store at ${stores.auditWhere} (${stores.auditKey}): ${redactUrlPassword((cause as Error).message)}`, { cause });
  }

  let approvals: Approvals;
  try {
    approvals = await openApprovals({
      ...(stores.sharedUrl !== undefined
        ? {
            backend: await openPostgresApprovalBackend({ url: stores.sharedUrl, replicaId: stores.replicaId!, logger: logger.child({ component: 'approvals-store' }) }),
            replicaId: stores.replicaId!,
          }
        : { dir: config.approvals.dir }),
      audit,
      logger: logger.child({ component: 'approvals' }),
      approvers: approverSpecOf(config),
      notifiers: notifiersOf(config),
    });
  } catch (cause) {
    await closeStores();
    const where = stores.sharedUrl !== undefined ? `${redactUrlPassword(stores.sharedUrl)} (store)` : `${config.approvals.dir} (approvals.dir)`;
    throw new StartupError(`cannot open the approvals store at ${where}: ${redactUrlPassword((cause as Error).message)}`, { cause });
  }

  let observability: Observability;
  try {
    observability = await startObservability(config, logger);
  } catch (cause) {
    await approvals.close();
    await closeStores();
    if (cause instanceof ObservabilityError) throw new StartupError(cause.message, { cause });
    throw cause;
  }

  // The authenticator is replaced on reload; the listeners and the admin API go through this.
  let authenticator = authenticatorOf(config, logger);
  const currentAuthenticator: Authenticator & SecretIdentifier = {
    authenticate: (c) => authenticator.authenticate(c),
    identify: (secret, address) => authenticator.identify(secret, address),
  };
  const failureLimiter = stores.failureLimiter;
  let governor: Governor;
  try {
    governor = new Governor({
      authenticator: currentAuthenticator,
      audit,
      failureLimiter,
      logger,
      policy: new Policy(config.policy, { approvers: approverSpecOf(config) }),
      ...(config.masking && config.masking.enabled !== false ? { masking: compileMasking(config.masking, { logger, baseDir: dirname(loaded.file) }) } : {}),
      approvals,
      reviewTimeoutMs: config.approvals.timeoutSeconds * 1000,
      observers: observability.observers,
      limits: config.limits,
    });
  } catch (err) {
    await observability.close();
    await approvals.close();
    await closeStores();
    throw err;
  }

  const targetsByDialect = new Map<string, Map<string, Target<unknown>>>();
  for (const t of loaded.targets) {
    let m = targetsByDialect.get(t.dialect);
    if (!m) targetsByDialect.set(t.dialect, (m = new Map()));
    m.set(t.name, t);
  }

  const servers: net.Server[] = [];
  const listeners: DialectListener[] = [];
  const addresses: ListeningAddress[] = [];
  try {
    for (const [dialectName, address] of Object.entries(config.listen)) {
      if (!address) continue;
      const dialect = dialects.get(dialectName)!;
      const targets = targetsByDialect.get(dialectName) ?? new Map<string, Target<unknown>>();
      const listener = dialect.createListener({
        governor,
        logger: logger.child({ dialect: dialectName }),
        resolveTarget: (name) => targets.get(name),
        targetNames: () => [...targets.keys()],
        tls: listenerTls.get(dialectName)?.context,
        requireTls: listenerTls.get(dialectName)?.requireTls ?? false,
        ...(listenerTls.get(dialectName)?.clientCertificates ? { clientCertificates: listenerTls.get(dialectName)!.clientCertificates! } : {}),
        allowPlaintextLoopback: config.allowPlaintextLoopback,
        limits: { ...config.limits, maxMessageBytes: config.limits[dialectName as 'postgres' | 'mysql']?.maxMessageBytes ?? config.limits.maxMessageBytes },
      });
      const { host, port } = splitHostPort(address);
      const server = net.createServer({ noDelay: true }, (socket) => listener.accept(socket));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(new StartupError(`cannot listen on ${address} (listen.${dialectName}): ${err.code ?? err.message}`, { cause: err })),
        );
        server.listen(port, host, () => resolve());
      });
      server.on('error', (err) => logger.error({ err }, 'listener error'));
      const bound = server.address() as net.AddressInfo;
      servers.push(server);
      listeners.push(listener);
      addresses.push({ dialect: dialectName, host, port: bound.port });
    }
  } catch (err) {
    for (const s of servers) s.close();
    await observability.close();
    await approvals.close();
    await closeStores();
    throw err;
  }

  // Readiness (GET /readyz) and the gateway's gauges. A shared store adds its check to this list.
  let shuttingDown = false;
  const readinessChecks: ReadinessCheck[] = [
    {
      name: 'shutdown',
      check: () => (shuttingDown ? 'the gateway is shutting down and its sessions are draining; send new connections to another replica' : undefined),
    },
    {
      name: 'listeners',
      check: () => {
        const down = addresses.filter((_, i) => !servers[i]!.listening).map((a) => `${a.dialect} (${a.host}:${a.port})`);
        return down.length > 0 ? `not accepting connections: ${down.join(', ')}; see the gateway log` : undefined;
      },
    },
    {
      name: 'audit',
      check: () => {
        if (audit.healthy) return undefined;
        if (stores.sharedUrl !== undefined) {
          return `${stores.problem() ?? 'the shared store cannot write'}: statements are refused until it answers again (the gateway reconnects by itself)`;
        }
        return 'the audit store cannot write, so statements are refused: see the gateway log for the error, fix the store (disk space, permissions of audit.dir), then restart the gateway';
      },
    },
  ];
  if (observability.meter) {
    registerGatewayGauges(observability.meter, {
      auditHealthy: () => audit.healthy,
      pendingApprovals: () => approvals.list({ status: 'pending' }).length,
      listeners: () => addresses.map((a, i) => ({ dialect: a.dialect, accepting: servers[i]!.listening })),
    });
  }

  let admin: AdminServer | undefined;
  if (config.admin) {
    try {
      admin = await startAdminServer({
        address: config.admin,
        approvals,
        authenticator: currentAuthenticator,
        failureLimiter,
        logger: logger.child({ component: 'admin' }),
        approvers: approverSpecOf(config),
        targetNames: () => loaded.targets.map((t) => t.name),
        ...(observability.lineageStore ? { lineage: observability.lineageStore } : {}),
        ...(config.lineage.readers ? { lineageReaders: config.lineage.readers } : {}),
        readiness: () => evaluateReadiness(readinessChecks),
        ...(observability.prometheus ? { metrics: observability.prometheus } : {}),
      });
      if (observability.prometheus) logger.info({ url: `${admin.url}/metrics` }, 'Prometheus metrics are served on the admin listener');
    } catch (err) {
      for (const s of servers) s.close();
      await Promise.all(listeners.map((l) => l.close()));
      await observability.close();
      await approvals.close();
      await closeStores();
      const e = err as NodeJS.ErrnoException;
      throw new StartupError(`cannot start the admin API on ${config.admin} (admin): ${e.code ?? e.message}`, { cause: err });
    }
  }

  let active = config;
  const recordConfig = (action: 'reloaded' | 'reload-refused', file: string, reason: string, next?: GatewayConfig): void => {
    audit
      .append(
        {
          type: 'config',
          time: new Date().toISOString(),
          dialect: 'sluice',
          action,
          file,
          ...(next ? { policyDigest: policyDigest(next), rules: next.policy.rules.length } : {}),
          reason,
        },
        { durable: true },
      )
      .catch((err: unknown) => logger.error({ err }, 'audit store could not record a configuration change'));
  };

  let closing: Promise<void> | undefined;
  return {
    addresses,
    governor,
    approvals,
    adminUrl: admin?.url,
    reload(next) {
      const nextConfig = next.config;
      const ignored: string[] = RESTART_KEYS.filter((k) => JSON.stringify(active[k]) !== JSON.stringify(nextConfig[k]));
      if (active.approvals.dir !== nextConfig.approvals.dir) ignored.push('approvals.dir');
      if (JSON.stringify(active.approvals.notify) !== JSON.stringify(nextConfig.approvals.notify)) ignored.push('approvals.notify');
      let policy: Policy;
      let nextAuthenticator: CompositeAuthenticator;
      let masking: MaskingRuntime | undefined;
      try {
        policy = new Policy(nextConfig.policy, { approvers: approverSpecOf(nextConfig) });
        nextAuthenticator = authenticatorOf(nextConfig, logger);
        // The hash key stays the same across reloads unless the config changes it: hashed
        // values must keep lining up with those clients already have.
        masking = nextConfig.masking && nextConfig.masking.enabled !== false
          ? compileMasking(nextConfig.masking, { logger, baseDir: dirname(next.file), ...(governor.masking && sameKeySource(active, nextConfig) ? { previousKey: governor.masking.hashKey } : {}) })
          : undefined;
      } catch (err) {
        const message = `the new configuration was refused, the old one stays: ${(err as Error).message}`;
        recordConfig('reload-refused', next.file, message);
        return { ok: false, message };
      }
      governor.setPolicy(policy);
      governor.setMasking(masking);
      governor.setReviewTimeoutMs(nextConfig.approvals.timeoutSeconds * 1000);
      authenticator = nextAuthenticator;
      if (JSON.stringify(active.approvals.approvers) !== JSON.stringify(nextConfig.approvals.approvers)) {
        // Who may approve each request travels with the request (from the policy); who may
        // create grants is fixed when the approvals service opens.
        ignored.push('approvals.approvers (for grants; reviews use the new approvers)');
      }
      active = {
        ...active,
        policy: nextConfig.policy,
        masking: nextConfig.masking,
        identities: nextConfig.identities,
        approvals: { ...active.approvals, timeoutSeconds: nextConfig.approvals.timeoutSeconds, approvers: nextConfig.approvals.approvers },
      };
      const rules = `${policy.ruleCount} rule(s)`;
      const note = ignored.length > 0 ? `; changes to ${ignored.join(', ')} need a restart and were not applied` : '';
      const message = `configuration reloaded from ${next.file}: policy with ${rules}, ${nextConfig.identities.tokens.length} token(s), ${nextConfig.identities.oidc.length} OIDC issuer(s)${note}`;
      recordConfig('reloaded', next.file, message, nextConfig);
      return { ok: true, message };
    },
    reloadRefused(file, message) {
      recordConfig('reload-refused', file, message);
    },
    close: () =>
      (closing ??= (async () => {
        // /readyz answers 503 from now on; the admin listener stays up while sessions drain.
        shuttingDown = true;
        for (const s of servers) s.close();
        // Running statements may finish within the grace period; idle sessions end at once.
        await Promise.all(listeners.map((l) => l.close({ graceMs: config.limits.shutdownGraceMs })));
        await admin?.close();
        // Sessions have ended (their runs too): lineage is written, then the trail is closed.
        // Lineage gets a bounded time: a store that does not answer must not keep the audit
        // trail from being flushed and closed.
        try {
          await withDeadline(observability.close(), OBSERVABILITY_CLOSE_MS, 'closing lineage and telemetry', '');
        } catch (err) {
          logger.error({ err }, 'lineage and telemetry did not stop cleanly; closing the audit trail anyway');
        } finally {
          // Approvals end what this replica holds (a write to their store): one that fails must
          // not keep the audit trail from being closed either.
          try {
            await approvals.close();
          } finally {
            await closeStores();
          }
        }
      })()),
  };
}
